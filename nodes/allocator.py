"""The allocator: a long-running process that gives each pool the nodes its targets ask for.

Every round it reconciles, pool by pool: nodes a resizing pool lacks are made (rows
first, then the provider starts them), nodes beyond its targets are asked to leave
(their agents drain as the pool's nodeDeallocationOption says and stop), lost nodes
are forgotten and replaced, and a pool whose nodes meet its targets (or whose
resizeTimeout passed, or that was told to stop) becomes steady. What to do is the
services' (`pools.services.allocation`); how a node comes to be is its provider's
(`nodes.providers`), so a Slurm provider changes nothing here.
"""

import logging
import time

from django.db import close_old_connections

from pools.models import AllocationState, ComputeNode, Pool, PoolState
from pools.services import allocation
from pools.services.lifecycle import purge_deleted_pools

from .providers import Provider
from .signals import StopSignals

log = logging.getLogger("batchsite.allocator")

MAKE_PER_ROUND = 20  # nodes a pool gets started in one round


class Allocator:
    def __init__(self, providers: dict[str, Provider], *, interval: float = 1.0):
        self.providers = providers
        self.interval = interval
        self.signals = StopSignals()
        self.pool_of: dict[str, int] = {}  # the pool of each node it started, for when one ends

    def refill(self) -> None:
        """Pools short of their targets begin resizing (as after a restart: the nodes an earlier
        allocator started left with it), unless their last resize was stopped."""
        for pool in Pool.objects.filter(provider__in=list(self.providers), state=PoolState.ACTIVE):
            allocation.needs_a_node(pool)

    def run(self) -> None:
        self.signals.install()
        log.info("allocator started; providers: %s", ", ".join(self.providers))
        self.refill()
        try:
            while not self.signals.take():
                close_old_connections()
                try:
                    self.step()
                except Exception:  # a bad round must not stop every pool's allocation
                    log.exception("allocation round failed")
                time.sleep(self.interval)
        finally:
            for provider in self.providers.values():
                stop_all = getattr(provider, "stop_all", None)
                if stop_all:
                    stop_all()
            log.info("allocator stopped")

    def step(self) -> None:
        self.notice_ended()
        pools = Pool.objects.filter(provider__in=list(self.providers)).select_related("account")
        for pool in pools:
            self.reconcile(pool, self.providers[pool.provider])
        purge_deleted_pools()

    def notice_ended(self) -> None:
        """Nodes whose processes ended without leaving their pool: crashed, or never started."""
        for provider in self.providers.values():
            for ended in provider.ended():
                pool_pk = self.pool_of.pop(ended.name, None)
                node = ComputeNode.objects.filter(name=ended.name).first()
                if node is not None:
                    log.warning("node %s ended: %s", ended.name, ended.message)
                    allocation.node_ended(node, ended.message)
                    pool_pk = node.pool_id
                if pool_pk is not None:  # crashed, or stopped by someone else: the pool may be short
                    allocation.needs_a_node(Pool(pk=pool_pk))

    def reconcile(self, pool: Pool, provider: Provider) -> None:
        if pool.state == PoolState.DELETING:
            provider.remove(allocation.unborn_nodes(pool))
            allocation.cancel(allocation.unborn_nodes(pool))
            return
        if allocation.forget_lost(pool, provider.name):
            allocation.needs_a_node(pool)  # lost nodes are replaced; a steady pool short of its
            # targets for another reason (a Stop Resize, a resize that timed out) stays as it is
        pool.refresh_from_db(fields=["state", "allocation_state", "allocation_state_transition_time",
                                     "target_dedicated_nodes", "target_low_priority_nodes", "resize_deallocation",
                                     "resize_timeout"])
        if pool.state == PoolState.DELETING:  # deleted since the round read it
            return
        if pool.allocation_state == AllocationState.RESIZING and not allocation.timed_out(pool):
            plan = allocation.plan(pool)
            for dedicated, n in ((True, plan.dedicated), (False, plan.low_priority)):
                if n:
                    self.make(pool, provider, n, dedicated=dedicated)
            if plan.leaving:
                provider.remove(allocation.let_go(pool, plan.leaving))
        elif pool.allocation_state != AllocationState.STEADY:  # stopping, or out of time
            unborn = allocation.unborn_nodes(pool)
            provider.remove(unborn)
            allocation.cancel(unborn)
        if allocation.settle(pool) == AllocationState.STEADY and pool.allocation_state != AllocationState.STEADY:
            log.info("pool %s is steady", pool.batch_id)

    def make(self, pool: Pool, provider: Provider, n: int, *, dedicated: bool) -> None:
        # A bounded number a round: a big resize starts its nodes over a few rounds, not all at once.
        rows = allocation.make_nodes(pool, min(n, MAKE_PER_ROUND), dedicated=dedicated, provider=provider.name)
        started = provider.create(pool, rows)
        for row in rows:
            self.pool_of[row.name] = pool.pk
            if row.name in started:
                allocation.node_launched(row, started[row.name])
        log.info("pool %s: started %d of %d node(s) this round", pool.batch_id, len(started), len(rows))
