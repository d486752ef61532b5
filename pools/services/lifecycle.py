"""A pool's life: Add, Patch, Update Properties, Delete Pool, and the purge after a delete.

Nodes join and leave pools through their own services; until a pool has as many
nodes as its targets say, its allocation state is `resizing`.
"""

import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import BatchAccount
from batchapi.errors import BatchError, pool_being_deleted
from batchapi.ids import id_key
from jobs.models import OPEN_STATES, Job
from jobs.transitions import move, remove_nodes

from .. import node_counts
from ..models import AGENT_STATES, AllocationState, ComputeNode, NodeState, Pool, PoolState
from ..selectors import check_pool_active, find_pool

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
            pool = Pool.objects.create(
                key=id_key(spec["batch_id"]), state=PoolState.ACTIVE, state_transition_time=now,
                allocation_state=allocation, allocation_state_transition_time=now,
                creation_time=now, last_modified=now, **spec)
            node_counts.create_shards(pool)
            return pool
    except IntegrityError:
        if Pool.objects.filter(account=spec["account"], key=id_key(spec["batch_id"])).exists():
            raise pool_exists(spec["batch_id"]) from None
        raise


def automatic_pool_spec(account: BatchAccount, pool_id: str, *, for_job: str = "") -> dict:
    """The pool Batchsite makes on its own: on this machine, one node of BATCHSITE_WORKER_SLOTS slots."""
    return dict(account=account, batch_id=pool_id, vm_size=settings.BATCHSITE_LOCAL_VM_SIZE,
                target_dedicated_nodes=1, task_slots_per_node=settings.BATCHSITE_WORKER_SLOTS,
                provider="local", made_for_job=for_job)


def auto_pool_id(spec: dict) -> str:
    """A new id for a job's auto pool: its autoPoolIdPrefix and a GUID, as Batch makes them."""
    prefix = spec.get("autoPoolIdPrefix")
    return f"{prefix}_{uuid.uuid4()}" if prefix else str(uuid.uuid4())


def ensure_pool(account: BatchAccount, pool_id: str, *, for_job: str = "") -> Pool | None:
    """Pool `pool_id` of `account`; made on the local provider if it does not exist and
    BATCHSITE_AUTO_POOLS allows (the default pool always may be), else None."""
    pool = find_pool(account, pool_id)
    if pool is not None:
        return pool
    if not (settings.BATCHSITE_AUTO_POOLS or id_key(pool_id) == id_key(settings.BATCHSITE_DEFAULT_POOL)):
        return None
    try:
        pool = create_pool(spec=automatic_pool_spec(account, pool_id, for_job=for_job))
    except BatchError:  # made meanwhile by someone else
        return find_pool(account, pool_id)
    log.info("made pool %s in account %s%s", pool_id, account.name, f" for job {for_job}" if for_job else "")
    return pool


def ensure_pools_of_open_jobs() -> int:
    """Make the missing pools of open jobs, as `ensure_pool` would have when they were added: jobs
    of a database from before pools name pools that no one made. How many were made."""
    made = 0
    missing = (Job.objects.filter(state__in=OPEN_STATES).exclude(pool_key="")
               .values_list("account_id", "pool_key").distinct().order_by())
    for account_id, key in missing:
        if not Pool.objects.filter(account_id=account_id, key=key).exists():
            job = Job.objects.filter(account_id=account_id, pool_key=key).only("batch_id").first()
            if ensure_pool(BatchAccount.objects.get(pk=account_id), key, for_job=job.batch_id):
                made += 1
    return made


def pool_for_node(account_name: str, pool_id: str, *, make: bool = True) -> Pool | None:
    """The pool a node joins (with `make`, made as `ensure_pool` may, for a node started by hand)."""
    account = BatchAccount.objects.filter(name=account_name).first()
    if account is None:
        if account_name != settings.BATCHSITE_DEFAULT_ACCOUNT or not make:
            return None
        account, _ = BatchAccount.objects.get_or_create(name=account_name)
    return ensure_pool(account, pool_id) if make else find_pool(account, pool_id)


def _change(pool: Pool, values: dict) -> Pool:
    with transaction.atomic():
        current = Pool.objects.select_for_update().get(pk=pool.pk)
        check_pool_active(current)
        if "azure_settings" in values:  # merged here, under the lock: two patches lose nothing
            values = {**values, "azure_settings": {**(current.azure_settings or {}), **values["azure_settings"]}}
        Pool.objects.filter(pk=pool.pk).update(last_modified=timezone.now(), **values)
    pool.refresh_from_db()
    return pool


# What its nodes are made of: Batch lets these change only while the pool has no node.
WHILE_EMPTY = {"vm_size": "vmSize", "task_slots_per_node": "taskSlotsPerNode",
               "node_fill_type": "taskSchedulingPolicy"}


def patch_pool(*, pool: Pool, changes: dict) -> Pool:
    """Patch Pool: the given properties change, the others stay."""
    unknown = set(changes) - PATCHABLE
    if unknown:
        raise ValueError(f"not patchable: {sorted(unknown)}")
    current = Pool.objects.filter(pk=pool.pk).values(*WHILE_EMPTY).first() or {}
    changed = [wire for field, wire in WHILE_EMPTY.items() if field in changes and changes[field] != current.get(field)]
    if changed and ComputeNode.objects.filter(pool_id=pool.pk).exists():
        raise BatchError("OperationInvalidForCurrentState",
                         "The specified operation is not valid for the current state of the resource.", 409,
                         {"PoolId": pool.batch_id,
                          "Reason": f"{', '.join(changed)} may change only while the pool has no node"})
    return _change(pool, changes)


def update_pool_properties(*, pool: Pool, changes: dict) -> Pool:
    """Update Properties: the start task and metadata are replaced; one left out is removed."""
    unknown = set(changes) - set(REPLACED) - {"azure_settings"}
    if unknown:
        raise ValueError(f"not replaceable: {sorted(unknown)}")
    return _change(pool, {**REPLACED, **changes})


def delete_pool(*, pool: Pool) -> None:
    """Delete Pool: the pool goes to `deleting` now and its nodes leave (their running tasks
    are requeued, as Batch does); once none is left, `purge_deleted_pools` removes it."""
    with transaction.atomic():
        if not move(Pool.objects.filter(pk=pool.pk), PoolState.DELETING, from_states=(PoolState.ACTIVE,)):
            raise pool_being_deleted(pool.batch_id)
        # Nodes with an agent leave (it requeues their runs); those not joined yet are the
        # allocator's to cancel, and one that joins now is refused (nodes.join_pool).
        move(ComputeNode.objects.filter(pool=pool), NodeState.LEAVING_POOL, deallocation="requeue",
             from_states=[s for s in AGENT_STATES if s != NodeState.LEAVING_POOL])


def purge_deleted_pools() -> int:
    """Remove the pools being deleted whose nodes have all left (housekeeping). Nodes with no
    agent to leave (lost, or never started) are forgotten first."""
    remove_nodes(ComputeNode.objects.filter(pool__state=PoolState.DELETING).exclude(state__in=AGENT_STATES))
    removed = 0
    for pool in Pool.objects.filter(state=PoolState.DELETING, nodes__isnull=True).only("pk", "batch_id")[:100]:
        _, by_model = Pool.objects.filter(pk=pool.pk, state=PoolState.DELETING, nodes__isnull=True).delete()
        if by_model.get(Pool._meta.label):  # not its count rows and samples, deleted with it
            removed += 1
            log.info("pool %s deleted", pool.batch_id)
    return removed
