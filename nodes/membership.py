"""The node's place in its pool: it joins, beats its heartbeat, is asked to leave or reboot, leaves.

The agent loop (`nodes.agent`) asks this what its pool wants of it; the rows change
through the node services (`pools.services.nodes`).
"""

import logging
from dataclasses import dataclass

from pools.models import NodeState
from pools.node_load import Load
from pools.services import nodes

from .host import HostUsage, node_start

log = logging.getLogger("batchsite.worker")

# What a node asked to leave or reboot does with what it runs: the service has already
# requeued or terminated the runs for these options; the others run to their end.
ENDS_AT_ONCE = ("requeue", "terminate")


@dataclass
class Orders:
    """What the pool asks of the node, as its last heartbeat learnt."""

    leave: bool = False
    reboot: bool = False
    at_once: bool = False  # its runs are not to be waited for


@dataclass
class Membership:
    name: str
    pool: str = ""  # the pool it joins (default BATCHSITE_DEFAULT_POOL) ...
    account: str = ""  # ... of this account (default BATCHSITE_DEFAULT_ACCOUNT)
    slots: int | None = None  # tasks run at once; by default the pool's taskSlotsPerNode
    pool_id: str = ""  # the pool it joined, as its id is spelt
    account_name: str = ""  # and its account
    start_task: dict | None = None  # the pool's start task, which the node runs when it (re)starts

    def __post_init__(self):
        self.host = HostUsage()

    def join(self, containment) -> None:
        """Join the pool; raises nodes.NodeNameTaken while a live process has the name, nodes.NoSuchPool."""
        start, is_dead = node_start(self.name, containment, account=self.account, pool=self.pool, slots=self.slots)
        node = nodes.join_pool(start, predecessor_is_dead=is_dead)
        self.slots, self.pool_id = node.slots, node.pool.batch_id
        self.account_name, self.start_task = node.pool.account.name, node.pool.start_task

    def beat(self, load: Load) -> Orders:
        """Say the node lives and what it runs; learn what its pool asks of it."""
        found = nodes.heartbeat(self.name, load, usage=self.host.sample())
        if found is None:  # removed from its pool meanwhile
            return Orders(leave=True, at_once=True)
        state, option = found
        return Orders(leave=state == NodeState.LEAVING_POOL, reboot=state == NodeState.REBOOTING,
                      at_once=option in ENDS_AT_ONCE)

    def rebooted(self) -> None:
        self.start_task = nodes.rebooted(self.name)
        log.info("node %s rebooted", self.name)

    def start_task_ended(self, exit_code: int | None, failure: dict | None) -> str | None:
        return nodes.start_task_ended(self.name, exit_code, failure)

    def start_leaving(self) -> None:
        nodes.start_leaving(self.name)

    def leave(self) -> None:
        nodes.leave_pool(self.name)
