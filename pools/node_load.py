"""What a node runs now, as its agent reports it: its running tasks and slots, and idle ↔ running (↔ offline).

Called inside the transactions that claim tasks and record run ends (so a node is
`running` from the claim that gave it work), and with every heartbeat, which
repairs anything a lost report left behind. The agent's word is the truth here:
only it knows which of its processes still run.
"""

from dataclasses import dataclass

from django.db.models import F

from jobs.transitions import move

from .models import ComputeNode, NodeState, SchedulingState


@dataclass(frozen=True)
class Load:
    tasks: int = 0
    slots: int = 0


def report(node_id: str, load: Load, *, started: int = 0, succeeded: int = 0) -> None:
    """Node `node_id` now runs `load`; it `started` and saw `succeeded` that many more task runs."""
    values = dict(running_tasks_count=load.tasks, running_task_slots_count=load.slots)
    if started:
        values["total_tasks_run"] = F("total_tasks_run") + started
    if succeeded:
        values["total_tasks_succeeded"] = F("total_tasks_succeeded") + succeeded
    nodes = ComputeNode.objects.filter(name=node_id)
    if load.tasks:
        moved = move(nodes, NodeState.RUNNING, from_states=(NodeState.IDLE,), **values)
    else:  # empty: idle, or offline once its scheduling is disabled
        moved = (move(nodes.filter(scheduling_state=SchedulingState.ENABLED), NodeState.IDLE,
                      from_states=(NodeState.RUNNING,), **values)
                 or move(nodes.filter(scheduling_state=SchedulingState.DISABLED), NodeState.OFFLINE,
                         from_states=(NodeState.RUNNING, NodeState.IDLE), **values))
    if not moved:
        nodes.update(**values)  # already so, or in a state that its load does not change
