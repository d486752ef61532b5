"""Admin actions that call a service for each selected object: one shape for jobs, tasks and pools."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename

from batchapi.errors import BatchError


class ServiceActions:
    """Who may run the service actions: staff with Django's change (or, to delete, delete)
    permission on the model, whatever the admin lets them edit by hand. (The admins turn
    their own change and delete views off, so those checks cannot serve here.)"""

    def has_service_change_permission(self, request) -> bool:
        return self._may(request, "change")

    def has_service_delete_permission(self, request) -> bool:
        return self._may(request, "delete")

    def _may(self, request, action: str) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def service_action(service, *, name: str, description: str, verb: str, keyword: str):
    """An action calling `service(**{keyword: obj})` per object; refusals become messages. A
    delete needs the delete permission, anything else the change permission (ServiceActions)."""

    permission = "service_delete" if name == "delete" else "service_change"

    @admin.action(description=description, permissions=[permission])
    def action(modeladmin, request, queryset):
        done = 0
        for obj in queryset:
            try:
                service(**{keyword: obj})
                done += 1
            except BatchError as error:
                modeladmin.message_user(request, f"{getattr(obj, 'batch_id', obj)}: {error.message}",
                                        messages.WARNING)
        modeladmin.message_user(request, f"{verb} {done} {keyword}(s).")

    action.__name__ = name  # the admin knows an action by its function's name
    return action
