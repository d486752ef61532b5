"""The pool's start task on this node, for the agent loop (`nodes.agent`).

Batch runs a pool's start task on each node as it joins the pool and after every
reboot, in the node's startup directory, sandboxed like every task. With
waitForSuccess the node takes no task until it succeeds (`waitingforstarttask`), and
is `starttaskfailed` when it fails after its retries (`pools.services.nodes`).
"""

import logging

from .processes import Command
from .slots import START_TASK, StartTask

log = logging.getLogger("batchsite.worker")


class PoolStartTask:
    """Part of `nodes.agent.WorkerLoop`: it holds the node's `work`, `membership` and `launch`."""

    def launch_start_task(self, attempt: int = 1) -> None:
        membership = self.membership
        if not membership.start_task or self.work.holds(START_TASK):
            return
        row = StartTask(membership.start_task, membership.account_name, membership.pool_id, attempt)
        self.launch(row, Command.of_start_task(row.account, row.pool_id, self.name, row.spec))

    def start_task_ended(self, row: StartTask, exit_code: int | None, failure: dict | None) -> None:
        outcome = self.membership.start_task_ended(exit_code, failure)
        log.info("pool %s: start task exited %s: %s", row.pool_id, exit_code, outcome)
        if outcome == "retried":
            self.launch_start_task(row.attempt + 1)
