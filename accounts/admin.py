"""Accounts in the admin: who may see or change which account; keys are shown, not edited
(rotate them with `manage.py batch_account rotate`)."""

from django.contrib import admin

from .models import BatchAccount, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ("user",)


@admin.register(BatchAccount)
class BatchAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "created")
    search_fields = ("name",)
    inlines = (MembershipInline,)

    def get_readonly_fields(self, request, obj=None):
        return ("name", "primary_key", "secondary_key", "created") if obj else ("primary_key", "secondary_key")
