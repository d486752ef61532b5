"""What a node runs now, as its agent reports it: its running tasks and slots, and idle ↔ running (↔ offline).

Called inside the transactions that claim tasks and record run ends (so a node is
`running` from the claim that gave it work), and with every heartbeat, which
repairs anything a lost report left behind. The agent's word is the truth here:
only it knows which of its processes still run.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F, Max, Min

from jobs.transitions import move

from .models import SCHEDULABLE_STATES, ComputeNode, NodeFillType, NodeState, PoolState, SchedulingState


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


@dataclass(frozen=True)
class Claimer:
    """A node that takes tasks now, and what its pool says of how."""

    pk: int
    pool_id: int
    account_id: int
    pool_key: str
    fill_type: str
    running_tasks: int
    running_slots: int


def claimer(node_id: str) -> Claimer | None:
    """Node `node_id` if it takes tasks now: idle or running, scheduling enabled, its pool active.

    Its row is locked (on PostgreSQL) until the claim commits, so that Disable Scheduling,
    Reboot or Remove Nodes comes before the claim or after it, never between its read
    and its tasks.
    """
    row = (ComputeNode.objects.select_for_update(of=("self",))
           .filter(name=node_id, state__in=SCHEDULABLE_STATES, scheduling_state=SchedulingState.ENABLED,
                   pool__state=PoolState.ACTIVE)
           .values_list("pk", "pool_id", "pool__account_id", "pool__key", "pool__node_fill_type",
                        "running_tasks_count", "running_task_slots_count").first())
    return Claimer(*row) if row else None


def share(node: Claimer, free: int) -> int:
    """How many tasks the node may take this round (at most `free`, its free slots: each task
    takes one or more), by its pool's nodeFillType.

    Nodes pull work, so the fill type decides who may take it: with `spread`, a node
    takes tasks only up to one more than the least busy node of its pool that has
    room (an idle node gets the next task before a busy one); with `pack`, only the
    busiest node that has room takes tasks (the next node gets none until it is full).
    Exact on SQLite, whose claims take turns; on PostgreSQL two nodes claiming at the
    same moment may both go first.
    """
    peers = ComputeNode.objects.filter(pool_id=node.pool_id, state__in=SCHEDULABLE_STATES,
                                       scheduling_state=SchedulingState.ENABLED,
                                       running_task_slots_count__lt=F("slots")).exclude(pk=node.pk)
    if node.fill_type == NodeFillType.PACK:
        busiest = peers.aggregate(most=Max("running_task_slots_count"))["most"]
        return free if busiest is None or busiest <= node.running_slots else 0
    least = peers.aggregate(least=Min("running_tasks_count"))["least"]
    return free if least is None else max(0, min(free, least + 1 - node.running_tasks))


# How long a task waits for the node its affinityInfo names before any node may take it, and
# how many more tasks than it may take a claim reads, to pass by those left to other nodes.
AFFINITY_WAIT = timedelta(seconds=10)
LOOKAHEAD = 4


def yield_to_affinity(tasks: list, node_id: str, now) -> list:
    """The tasks this node may take: those whose affinityInfo.affinityId names another node of
    its pool that takes tasks and has room are left to it, for AFFINITY_WAIT after they became
    active (Batch's affinity is a preference, not a promise). No query when no task names a node."""
    def wanted(task) -> str | None:
        return (task.affinity_info or {}).get("affinityId")

    others = {wanted(task) for task in tasks} - {node_id, None}
    if not others:
        return tasks
    ready = set(ComputeNode.objects.filter(name__in=others, state__in=SCHEDULABLE_STATES,
                                           scheduling_state=SchedulingState.ENABLED,
                                           running_task_slots_count__lt=F("slots")).values_list("name", flat=True))
    return [task for task in tasks
            if not (wanted(task) in ready and now - task.state_transition_time < AFFINITY_WAIT)]
