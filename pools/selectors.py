"""Reads of pools that the API, the pages and the services share."""

from batchapi.errors import BatchError
from batchapi.ids import id_key

from .models import Pool, PoolState


def pool_not_found(pool_id: str) -> BatchError:
    return BatchError("PoolNotFound", "The specified pool does not exist.", 404, {"PoolId": pool_id})


def find_pool(account, pool_id: str, *, only=None) -> Pool | None:
    """Pool `pool_id` of `account` (ids are unique without regard to case), or None."""
    pools = Pool.objects.filter(account=account, key=id_key(pool_id))
    if only:
        pools = pools.only(*only)
    pool = pools.first()
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
        raise BatchError("PoolBeingDeleted", "The specified pool has been marked for deletion and is being "
                         "deleted.", 409, {"PoolId": pool.batch_id})
