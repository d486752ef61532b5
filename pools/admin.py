"""Pools in the admin: listed and read; deleting goes through Delete Pool, so nothing here writes
a pool's state."""

from django.contrib import admin

from jobs.admin_actions import ServiceActions, service_action

from .models import ComputeNode, Pool
from .services import lifecycle

delete = service_action(lifecycle.delete_pool, name="delete", description="Delete selected pools",
                        verb="Deleting", keyword="pool")


@admin.register(Pool)
class PoolAdmin(ServiceActions, admin.ModelAdmin):
    list_display = ("batch_id", "account", "state", "allocation_state", "vm_size", "target_dedicated_nodes",
                    "target_low_priority_nodes", "task_slots_per_node", "creation_time")
    list_filter = ("state", "allocation_state", "account")
    search_fields = ("batch_id",)
    actions = [delete]
    readonly_fields = [field.name for field in Pool._meta.fields]

    def has_add_permission(self, request):
        return False  # Add Pool is the API's (and the CLI's): it validates what a pool is

    def has_change_permission(self, request, obj=None):
        return False  # a save would write every column, the states too: changes go through the API

    def has_delete_permission(self, request, obj=None):
        return False  # the `delete` action above, through the service


@admin.register(ComputeNode)
class ComputeNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "pool", "state", "scheduling_state", "running_tasks_count", "slots", "hostname", "pid",
                    "confined", "heartbeat_at")
    list_filter = ("state", "scheduling_state", "confined", "pool")
    search_fields = ("name", "hostname")
    list_select_related = ("pool",)
    readonly_fields = [field.name for field in ComputeNode._meta.fields]

    def has_add_permission(self, request):
        return False  # nodes join their pool from their agent (`manage.py worker`)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
