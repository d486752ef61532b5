"""What users ask of a node: Disable and Enable Scheduling, Reboot, and leaving the pool.

What becomes of the tasks a node runs follows Batch's options (nodeDisableSchedulingOption,
nodeRebootOption, nodeDeallocationOption): `requeue` puts them back in the queue now,
`terminate` ends them now (failed, TaskEnded), `taskcompletion` and `retaineddata` let
them finish. The node's agent sees a run ended elsewhere and kills it, and learns of
its node's new state with its next heartbeat.
"""

from django.db import transaction
from django.utils import timezone

from batchapi.errors import BatchError
from jobs import events
from jobs.transitions import move
from tasks.models import RUNNING_STATES, Task
from tasks.services.actions import terminate_task
from tasks.services.runs import requeue_tasks

from ..models import ComputeNode, NodeState, SchedulingState

OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
MAX_NODES_REMOVED = 100  # Batch's limit on one Remove Nodes
# The states a node can be asked to leave from: any but leaving already.
NOT_LEAVING = [state for state in NodeState if state != NodeState.LEAVING_POOL]


def end_runs_on(node_id: str, option: str) -> int:
    """End what node `node_id` runs as `option` says; how many runs ended now."""
    if option not in OPTIONS:
        raise ValueError(option)
    if option == "requeue":
        return requeue_tasks(node_id=node_id)
    if option == "terminate":
        ended = 0
        for task in Task.objects.filter(node_id=node_id, state__in=RUNNING_STATES).select_related("job"):
            try:
                terminate_task(task=task)
                ended += 1
            except BatchError:
                pass  # it ended meanwhile
        return ended
    return 0


def node_busy(node: ComputeNode, what: str) -> BatchError:
    return BatchError("OperationInvalidForCurrentState",
                      "The specified operation is not valid for the current state of the resource.", 409,
                      {"NodeId": node.name, "Reason": f"the node is {node.state}: it cannot {what}"})


def disable_scheduling(*, node: ComputeNode, option: str = "requeue") -> None:
    """Disable Scheduling: no new task starts there; the node is `offline` once nothing runs on it."""
    with transaction.atomic():
        ComputeNode.objects.filter(pk=node.pk).update(scheduling_state=SchedulingState.DISABLED,
                                                      last_modified=timezone.now())
        events.pool_changed(node.pool_id)
        end_runs_on(node.name, option)
        # An idle node is offline at once; a running one when its agent reports it empty.
        move(ComputeNode.objects.filter(pk=node.pk, running_tasks_count=0), NodeState.OFFLINE,
             from_states=(NodeState.IDLE, NodeState.RUNNING))


def enable_scheduling(*, node: ComputeNode) -> None:
    """Enable Scheduling: the node takes tasks again."""
    with transaction.atomic():
        ComputeNode.objects.filter(pk=node.pk).update(scheduling_state=SchedulingState.ENABLED,
                                                      last_modified=timezone.now())
        events.pool_changed(node.pool_id)
        move(ComputeNode.objects.filter(pk=node.pk), NodeState.IDLE, from_states=(NodeState.OFFLINE,))


def reboot_node(*, node: ComputeNode, option: str = "requeue") -> None:
    """Reboot: the node's runs end as `option` says, then its agent starts afresh (its start task
    runs again) and the node is idle once more."""
    with transaction.atomic():
        if not move(ComputeNode.objects.filter(pk=node.pk), NodeState.REBOOTING,
                    from_states=(NodeState.IDLE, NodeState.RUNNING, NodeState.OFFLINE, NodeState.START_TASK_FAILED,
                                 NodeState.UNUSABLE), deallocation=option):
            raise node_busy(node, "reboot")
        end_runs_on(node.name, option)


def ask_to_leave(nodes, option: str) -> list[str]:
    """The nodes of `nodes` leave their pool: they take no task, their runs end as `option` says,
    and each goes once empty (its agent stops; the allocator's provider ends what is left)."""
    names = list(nodes.exclude(state=NodeState.LEAVING_POOL).values_list("name", flat=True))
    with transaction.atomic():
        move(ComputeNode.objects.filter(name__in=names), NodeState.LEAVING_POOL, from_states=NOT_LEAVING,
             deallocation=option)
        for name in names:
            end_runs_on(name, option)
    return names
