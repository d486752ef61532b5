"""Reads of pools that the API, the pages and the services share."""

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from batchapi.errors import node_not_found, pool_being_deleted, pool_not_found
from batchapi.ids import find_by_id
from tasks.models import Task

from .models import ComputeNode, Pool, PoolState

RECENT_TASKS = 5  # a node's recentTasks: its newest runs, as many as Batch shows
# What a node's recent task shows on the wire (pools.serializers renders it).
RECENT_TASK_COLUMNS = ("pk", "batch_id", "state", "node_id", "job", "job__batch_id", "start_time", "end_time",
                       "exit_code", "result", "failure_info", "retry_count", "last_retry_time", "requeue_count",
                       "last_requeue_time")


def find_pool(account, pool_id: str, *, only=None) -> Pool | None:
    """Pool `pool_id` of `account` (ids are unique without regard to case), or None."""
    pool = find_by_id(Pool.objects.filter(account=account), pool_id, only=only)
    if pool is not None:
        pool.account = account
    return pool


def get_pool(account, pool_id: str, *, only=None) -> Pool:
    """As `find_pool`, or 404 PoolNotFound (also when another account has such a pool)."""
    pool = find_pool(account, pool_id, only=only)
    if pool is None:
        raise pool_not_found(pool_id)
    return pool


def check_pool_active(pool: Pool) -> None:
    """A pool being deleted takes no more changes."""
    if pool.state == PoolState.DELETING:
        raise pool_being_deleted(pool.batch_id)


def get_node(pool: Pool, node_id: str, *, only=None) -> ComputeNode:
    """Node `node_id` of `pool`, or 404 NodeNotFound."""
    nodes = ComputeNode.objects.filter(pool=pool, name=node_id)
    node = (nodes.only(*only) if only else nodes).first()
    if node is None:
        raise node_not_found(node_id)
    return node


def recent_tasks(account, pool: Pool, names: list[str]) -> dict[str, list[Task]]:
    """The newest runs (at most RECENT_TASKS) on each node of `names`, newest first: one query.

    Only tasks of the pool's own jobs: a node's id may have served another pool, or another
    account's, before it joined this one.
    """
    if not names:
        return {}
    newest = Window(RowNumber(), partition_by=F("node_id"), order_by=[F("start_time").desc(), F("pk").desc()])
    rows = (Task.objects.filter(node_id__in=names, start_time__isnull=False, job__account=account,
                                job__pool_key=pool.key)
            .select_related("job").only(*RECENT_TASK_COLUMNS).annotate(newest=newest)
            .filter(newest__lte=RECENT_TASKS).order_by("node_id", "newest"))
    found: dict[str, list[Task]] = {}
    for task in rows:
        found.setdefault(task.node_id, []).append(task)
    return found
