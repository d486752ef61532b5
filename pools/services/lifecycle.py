"""A pool's life: Add, Patch, Update Properties, Delete Pool, and the purge after a delete.

Nodes join and leave pools through their own services; until a pool has as many
nodes as its targets say, its allocation state is `resizing`.
"""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from batchapi.errors import BatchError, pool_being_deleted
from batchapi.ids import id_key
from jobs.transitions import move

from ..models import AllocationState, Pool, PoolState
from ..selectors import check_pool_active

log = logging.getLogger(__name__)

# What Update Properties (POST …/updateproperties) replaces, and what it resets when left out.
REPLACED = {"start_task": None, "metadata": []}
# What Patch Pool may change (those given). What Add Pool set may change only while the
# pool has no node, which every pool has not, so far; Azure's settings merge into those stored.
PATCHABLE = {"start_task", "metadata", "azure_settings", "display_name", "vm_size", "task_slots_per_node",
             "node_fill_type"}


def pool_exists(batch_id: str) -> BatchError:
    return BatchError("PoolExists", "The specified pool already exists.", 409, {"PoolId": batch_id})


def allocation_for(target_dedicated: int, target_low_priority: int, current: int = 0) -> str:
    """A pool short of (or over) its targets is resizing until its nodes catch up."""
    return AllocationState.STEADY if target_dedicated + target_low_priority == current else AllocationState.RESIZING


def create_pool(*, spec: dict) -> Pool:
    """Add Pool. `spec` names the pool's account and holds validated Pool field values."""
    now = timezone.now()
    allocation = allocation_for(spec.get("target_dedicated_nodes", 0), spec.get("target_low_priority_nodes", 0))
    try:
        with transaction.atomic():
            return Pool.objects.create(
                key=id_key(spec["batch_id"]), state=PoolState.ACTIVE, state_transition_time=now,
                allocation_state=allocation, allocation_state_transition_time=now,
                creation_time=now, last_modified=now, **spec)
    except IntegrityError:
        if Pool.objects.filter(account=spec["account"], key=id_key(spec["batch_id"])).exists():
            raise pool_exists(spec["batch_id"]) from None
        raise


def _change(pool: Pool, values: dict) -> Pool:
    with transaction.atomic():
        current = Pool.objects.select_for_update().get(pk=pool.pk)
        check_pool_active(current)
        if "azure_settings" in values:  # merged here, under the lock: two patches lose nothing
            values = {**values, "azure_settings": {**(current.azure_settings or {}), **values["azure_settings"]}}
        Pool.objects.filter(pk=pool.pk).update(last_modified=timezone.now(), **values)
    pool.refresh_from_db()
    return pool


def patch_pool(*, pool: Pool, changes: dict) -> Pool:
    """Patch Pool: the given properties change, the others stay."""
    unknown = set(changes) - PATCHABLE
    if unknown:
        raise ValueError(f"not patchable: {sorted(unknown)}")
    return _change(pool, changes)


def update_pool_properties(*, pool: Pool, changes: dict) -> Pool:
    """Update Properties: the start task and metadata are replaced; one left out is removed."""
    unknown = set(changes) - set(REPLACED) - {"azure_settings"}
    if unknown:
        raise ValueError(f"not replaceable: {sorted(unknown)}")
    return _change(pool, {**REPLACED, **changes})


def delete_pool(*, pool: Pool) -> None:
    """Delete Pool: the pool goes to `deleting` now; its nodes leave, then `purge_deleted_pools` removes it."""
    with transaction.atomic():
        if not move(Pool.objects.filter(pk=pool.pk), PoolState.DELETING, from_states=(PoolState.ACTIVE,)):
            raise pool_being_deleted(pool.batch_id)


def purge_deleted_pools() -> int:
    """Remove the pools being deleted (housekeeping). No node belongs to a pool yet, so none waits."""
    removed = 0
    for pool in Pool.objects.filter(state=PoolState.DELETING).only("pk", "batch_id")[:100]:
        removed += Pool.objects.filter(pk=pool.pk, state=PoolState.DELETING).delete()[0]
        log.info("pool %s deleted", pool.batch_id)
    return removed
