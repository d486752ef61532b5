"""Admin actions that call a service for each selected object: one shape for jobs and tasks."""

from django.contrib import admin, messages

from batchapi.errors import BatchError


def service_action(service, *, name: str, description: str, verb: str, keyword: str):
    """An action calling `service(**{keyword: obj})` per object; refusals become messages."""

    @admin.action(description=description)
    def action(modeladmin, request, queryset):
        done = 0
        for obj in queryset:
            try:
                service(**{keyword: obj})
                done += 1
            except BatchError as error:
                modeladmin.message_user(request, f"{obj.batch_id}: {error.message}", messages.WARNING)
        modeladmin.message_user(request, f"{verb} {done} {keyword}(s).")

    action.__name__ = name  # the admin knows an action by its function's name
    return action
