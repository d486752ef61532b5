"""The allocator's side of a pool: which nodes to make or let go, and how a resize ends.

The allocator (`nodes.allocator`) asks `plan` what a resizing pool needs, makes node
rows (`creating`) before its provider starts them, records what the provider
did, and settles the pool: `steady` when its nodes meet its targets, when its
resizeTimeout passed (with a resize error, as Batch reports one), or after a Stop
Resize. Nodes started by hand count towards the pool's nodes but are never chosen
to leave.
"""

import secrets
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import events
from jobs.transitions import count_nodes, move, remove_nodes
from tasks.services.runs import requeue_tasks

from ..models import AllocationState, ComputeNode, NodeState, Pool, PoolState
from .node_actions import ask_to_leave

# Nodes that count towards a pool's size: all but those leaving, lost, or preempted.
GONE = (NodeState.LEAVING_POOL, NodeState.UNKNOWN, NodeState.PREEMPTED)
# Which nodes leave first when a pool shrinks: those doing least.
LEAVE_ORDER = [NodeState.CREATING, NodeState.STARTING, NodeState.START_TASK_FAILED, NodeState.UNUSABLE,
               NodeState.OFFLINE, NodeState.WAITING_FOR_START_TASK, NodeState.IDLE, NodeState.REBOOTING,
               NodeState.RUNNING]


@dataclass
class Plan:
    """What a resizing pool needs now."""

    dedicated: int = 0  # nodes to make
    low_priority: int = 0
    leaving: list[ComputeNode] = field(default_factory=list)  # nodes to let go
    by_hand: int = 0  # nodes beyond the targets that the allocator may not stop (started by hand)

    @property
    def done(self) -> bool:
        return not (self.dedicated or self.low_priority or self.leaving)


def plan(pool: Pool) -> Plan:
    nodes = list(ComputeNode.objects.filter(pool=pool).exclude(state__in=GONE))
    result = Plan()
    for dedicated, target in ((True, pool.target_dedicated_nodes), (False, pool.target_low_priority_nodes)):
        mine = [node for node in nodes if node.is_dedicated == dedicated]
        short = target - len(mine)
        if short > 0:
            setattr(result, "dedicated" if dedicated else "low_priority", short)
        elif short < 0:
            own = [node for node in mine if node.provider]  # a node started by hand stays
            own.sort(key=lambda node: (LEAVE_ORDER.index(node.state), node.running_tasks_count,
                                       -node.creation_time.timestamp()))
            result.leaving += own[:-short]
            result.by_hand += max(0, -short - len(own))
    return result


def make_nodes(pool: Pool, n: int, *, dedicated: bool, provider: str) -> list[ComputeNode]:
    """Rows for `n` new nodes, `creating`, before the provider starts them; none for a pool being
    deleted (the pool's row is locked, so a Delete Pool comes before or after, not between)."""
    now = timezone.now()
    suffix = "d" if dedicated else "p"
    with transaction.atomic():
        if not Pool.objects.select_for_update().filter(pk=pool.pk, state=PoolState.ACTIVE).exists():
            return []
        nodes = ComputeNode.objects.bulk_create(
            ComputeNode(pool=pool, name=f"{pool.key[:40]}-{secrets.token_hex(5)}-{suffix}", state=NodeState.CREATING,
                        is_dedicated=dedicated, vm_size=pool.vm_size, slots=pool.task_slots_per_node,
                        provider=provider, state_transition_time=now, creation_time=now, last_modified=now,
                        allocation_time=now)
            for _ in range(n))
        count_nodes(pool.pk, dedicated, {NodeState.CREATING: len(nodes)})
    return nodes


def node_launched(node: ComputeNode, handle: str) -> None:
    """The provider started the node (a process, a pilot job): `starting` until its agent joins."""
    with transaction.atomic():
        move(ComputeNode.objects.filter(pk=node.pk), NodeState.STARTING, from_states=(NodeState.CREATING,),
             provider_handle=handle)


def node_ended(node: ComputeNode, message: str) -> None:
    """The provider says the node's process ended without leaving its pool: the node is gone, its
    runs back in the queue, and if it never joined, the resize has an error that says why."""
    with transaction.atomic():
        never_joined = node.state in (NodeState.CREATING, NodeState.STARTING)
        if remove_nodes(ComputeNode.objects.filter(pk=node.pk, state=node.state)) and never_joined:
            add_resize_error(node.pool_id, "NodeStartFailed", f"node {node.name} did not start: {message}")
    requeue_tasks(node_id=node.name)


def add_resize_error(pool_pk: int, code: str, message: str) -> None:
    pool = Pool.objects.select_for_update().get(pk=pool_pk)
    errors = (pool.resize_errors or [])[-9:]  # the last ten say enough
    Pool.objects.filter(pk=pool_pk).update(resize_errors=[*errors, {"code": code, "message": message}],
                                           last_modified=timezone.now())
    events.pool_changed(pool_pk)


def forget_lost(pool: Pool, provider: str) -> int:
    """Forget the provider's nodes of `pool` that were lost (`unknown`: their runs were requeued
    when their heartbeat stopped); the pool makes new ones if it is short."""
    with transaction.atomic():
        return remove_nodes(ComputeNode.objects.filter(pool=pool, provider=provider, state=NodeState.UNKNOWN))


def let_go(pool: Pool, nodes: list[ComputeNode]) -> list[ComputeNode]:
    """Nodes the pool no longer needs leave it. Those whose agent has not joined yet have nobody
    to hear it: their rows go now, and the caller stops their processes (returned)."""
    unborn = [node for node in nodes if node.state in (NodeState.CREATING, NodeState.STARTING)]
    cancel(unborn)
    ask_to_leave(ComputeNode.objects.filter(pk__in=[node.pk for node in nodes if node not in unborn]),
                 pool.resize_deallocation or "requeue")
    return unborn


def cancel(nodes: list[ComputeNode]) -> None:
    """Forget nodes that never joined (still `creating` or `starting`)."""
    with transaction.atomic():
        remove_nodes(ComputeNode.objects.filter(pk__in=[node.pk for node in nodes],
                                                state__in=(NodeState.CREATING, NodeState.STARTING)))


def unborn_nodes(pool: Pool) -> list[ComputeNode]:
    return list(ComputeNode.objects.filter(pool=pool, state__in=(NodeState.CREATING, NodeState.STARTING)))


def timed_out(pool: Pool) -> bool:
    return (pool.allocation_state == AllocationState.RESIZING
            and timezone.now() - pool.allocation_state_transition_time > pool.resize_timeout)


def settle(pool: Pool) -> str:
    """Move a resizing or stopping pool to steady when it is done, timed out, or stopped; its allocation state."""
    now = timezone.now()
    with transaction.atomic():
        current = Pool.objects.select_for_update().get(pk=pool.pk)
        if current.allocation_state == AllocationState.STEADY:
            return current.allocation_state
        pending = ComputeNode.objects.filter(pool=current).filter(
            Q(state__in=(NodeState.CREATING, NodeState.STARTING, NodeState.LEAVING_POOL)))
        timed_out = now - current.allocation_state_transition_time > current.resize_timeout
        stopped = current.allocation_state == AllocationState.STOPPING
        if not (stopped or timed_out or (plan(current).done and not pending.exists())):
            return current.allocation_state
        short = timed_out and not stopped
        if by_hand := plan(current).by_hand:
            add_resize_error(current.pk, "NodesStartedByHand",
                             f"{by_hand} node(s) beyond the targets were started by hand (manage.py worker --pool): "
                             "the allocator does not stop them; stop them, or remove them (Remove Nodes)")
        if short:
            add_resize_error(current.pk, "AllocationTimedOut",
                             f"the pool did not reach its target nodes within its resizeTimeout "
                             f"({current.resize_timeout})")
        Pool.objects.filter(pk=current.pk).update(allocation_state=AllocationState.STEADY,
                                                  allocation_state_transition_time=now, last_modified=now,
                                                  resize_stopped=current.resize_stopped or short)
        events.pool_changed(current.pk)
        return AllocationState.STEADY


def needs_a_node(pool: Pool) -> None:
    """A steady pool short of its targets (a node was lost, or left) begins resizing again to
    refill itself; not one whose last resize was stopped or ran out of time."""
    with transaction.atomic():
        current = Pool.objects.select_for_update().filter(pk=pool.pk).first()
        if current and current.state == PoolState.ACTIVE and current.allocation_state == AllocationState.STEADY \
                and not current.resize_stopped and not current.enable_auto_scale and not plan(current).done:
            now = timezone.now()
            Pool.objects.filter(pk=current.pk).update(allocation_state=AllocationState.RESIZING,
                                                      allocation_state_transition_time=now, last_modified=now)
            events.pool_changed(current.pk)
