"""Reads of pools that the API, the pages and the services share."""

from batchapi.errors import pool_being_deleted, pool_not_found
from batchapi.ids import find_by_id

from .models import Pool, PoolState


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
