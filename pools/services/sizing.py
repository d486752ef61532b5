"""Resize, Stop Resize and Remove Nodes: what a pool's size should be; the allocator makes it so.

These change the pool's targets and its allocation state only; the allocator
(`nodes.allocator`) reconciles nodes with targets while the pool is `resizing`, and
settles it `steady` when they meet, when its resizeTimeout passes (with a resize
error), or when a Stop Resize asked it to (`stopping`).
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from batchapi.errors import BatchError, invalid_property, node_not_found
from jobs import events

from ..models import AllocationState, ComputeNode, Pool
from ..selectors import check_pool_active
from .node_actions import MAX_NODES_REMOVED, OPTIONS, ask_to_leave


def pool_being_resized(pool: Pool) -> BatchError:
    return BatchError("PoolBeingResized", "The specified pool is being resized.", 409, {"PoolId": pool.batch_id})


def _steady_pool(pool: Pool) -> Pool:
    """The pool, locked, if it may be resized: active, steady, not autoscaled."""
    current = Pool.objects.select_for_update().get(pk=pool.pk)
    check_pool_active(current)
    if current.allocation_state != AllocationState.STEADY:
        raise pool_being_resized(current)
    if current.enable_auto_scale:
        raise BatchError("OperationInvalidForCurrentState",
                         "The specified operation is not valid for the current state of the resource.", 409,
                         {"PoolId": current.batch_id, "Reason": "the pool scales itself (enableAutoScale)"})
    return current


def _begin(pool: Pool, **values) -> None:
    now = timezone.now()
    Pool.objects.filter(pk=pool.pk).update(allocation_state=AllocationState.RESIZING,
                                           allocation_state_transition_time=now, last_modified=now,
                                           resize_errors=[], resize_stopped=False, **values)
    events.pool_changed(pool.pk)


def resize_pool(*, pool: Pool, target_dedicated: int | None = None, target_low_priority: int | None = None,
                resize_timeout: timedelta | None = None, deallocation: str = "requeue") -> None:
    """Resize Pool: new targets (those given); nodes beyond them leave as `deallocation` says."""
    if deallocation not in OPTIONS:
        raise invalid_property("nodeDeallocationOption", f"one of {', '.join(OPTIONS)}", deallocation)
    with transaction.atomic():
        current = _steady_pool(pool)
        values = {"resize_deallocation": deallocation}
        if target_dedicated is not None:
            values["target_dedicated_nodes"] = target_dedicated
        if target_low_priority is not None:
            values["target_low_priority_nodes"] = target_low_priority
        if resize_timeout is not None:
            values["resize_timeout"] = resize_timeout
        _begin(current, **values)


def stop_resize(*, pool: Pool) -> None:
    """Stop Resize: a resizing pool stops where it is (`stopping`, then `steady`); its targets stay."""
    with transaction.atomic():
        current = Pool.objects.select_for_update().get(pk=pool.pk)
        check_pool_active(current)
        if current.allocation_state == AllocationState.RESIZING:
            now = timezone.now()
            Pool.objects.filter(pk=pool.pk).update(allocation_state=AllocationState.STOPPING,
                                                   allocation_state_transition_time=now, last_modified=now,
                                                   resize_stopped=True)
            events.pool_changed(pool.pk)


def remove_nodes(*, pool: Pool, node_ids: list[str], deallocation: str = "requeue",
                 resize_timeout: timedelta | None = None) -> None:
    """Remove Nodes: these nodes leave the pool, and its target shrinks by as many."""
    if not node_ids or len(node_ids) > MAX_NODES_REMOVED:
        raise invalid_property("nodeList", f"1 to {MAX_NODES_REMOVED} node ids", len(node_ids))
    if deallocation not in OPTIONS:
        raise invalid_property("nodeDeallocationOption", f"one of {', '.join(OPTIONS)}", deallocation)
    with transaction.atomic():
        current = _steady_pool(pool)
        nodes = ComputeNode.objects.filter(pool=current, name__in=node_ids)
        found = dict(nodes.values_list("name", "is_dedicated"))
        for node_id in node_ids:
            if node_id not in found:
                raise node_not_found(node_id)
        dedicated = sum(found.values())
        values = {"resize_deallocation": deallocation,
                  "target_dedicated_nodes": max(0, current.target_dedicated_nodes - dedicated),
                  "target_low_priority_nodes": max(0, current.target_low_priority_nodes - (len(found) - dedicated))}
        if resize_timeout is not None:
            values["resize_timeout"] = resize_timeout
        _begin(current, **values)
        ask_to_leave(nodes, deallocation)
