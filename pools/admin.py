"""Pools in the admin: listed and read; deleting goes through Delete Pool, so nothing here writes
a pool's state."""

from django.contrib import admin

from jobs.admin_actions import ServiceActions, service_action

from .models import ComputeNode, Pool
from .services import lifecycle, node_actions, sizing

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


def _remove_node(*, node: ComputeNode) -> None:
    """Remove Nodes, one node: it leaves its pool (its tasks requeued) and the target shrinks by one."""
    sizing.remove_nodes(pool=node.pool, node_ids=[node.name])


node_actions_in_admin = [
    service_action(node_actions.disable_scheduling, name="disable_scheduling", keyword="node", verb="Disabled",
                   description="Disable scheduling (running tasks requeued)"),
    service_action(node_actions.enable_scheduling, name="enable_scheduling", keyword="node", verb="Enabled",
                   description="Enable scheduling"),
    service_action(node_actions.reboot_node, name="reboot", keyword="node", verb="Rebooting",
                   description="Reboot (running tasks requeued)"),
    service_action(_remove_node, name="remove", keyword="node", verb="Removing",
                   description="Remove from the pool (running tasks requeued)"),
]


@admin.register(ComputeNode)
class ComputeNodeAdmin(ServiceActions, admin.ModelAdmin):
    list_display = ("name", "pool", "state", "scheduling_state", "running_tasks_count", "slots", "hostname", "pid",
                    "confined", "heartbeat_at")
    list_filter = ("state", "scheduling_state", "confined", "pool")
    search_fields = ("name", "hostname")
    list_select_related = ("pool",)
    readonly_fields = [field.name for field in ComputeNode._meta.fields]
    actions = node_actions_in_admin

    def has_add_permission(self, request):
        return False  # nodes join their pool from their agent (`manage.py worker`)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
