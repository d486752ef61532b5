"""The node agent's loop: it claims tasks, runs their commands, and records how they ended.

One process, one thread; files move on staging threads, so the loop goes on reaping,
heartbeating and enforcing wall clocks while a big file moves. What the node holds,
and in which phase, is one collection (`nodes.slots`); starting, killing and reaping
a command is `nodes.processes`; what it knows of its host is `nodes.host`. Every row
changes through the services (`tasks.services`): the loop never writes one itself.
"""

import logging
import os
import select
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections

from pools import node_load
from tasks import node_tasks
from tasks import tokens as task_tokens
from tasks.files import working_dir
from tasks.models import NodeTask, Task, TaskState
from tasks.outcomes import wall_clock_expired
from tasks.rundirs import prepare_run_directory
from tasks.selectors import current_runs
from tasks.services import runs as task_runs
from tasks.services import sweeps

from .host import make_node_root_private
from .identities import IdentityRefused
from .membership import Membership, Orders
from .preparation import PreparationAndRelease
from .processes import Command, spawn, write_refusal
from .reaping import become_subreaper
from .sandbox import Containment
from .signals import StopSignals
from .slots import STAGING, Phase, Slots, StartTask, Work, node_task_key
from .start_task import PoolStartTask
from .transfers import download_resource_files, upload_output_files

log = logging.getLogger("batchsite.worker")


@dataclass
class WorkerLoop(PreparationAndRelease, PoolStartTask):
    name: str
    slots: int | None = None  # tasks run at once; by default the pool's taskSlotsPerNode
    pool: str = ""  # the pool it joins (default BATCHSITE_DEFAULT_POOL) of `account` (default account)
    account: str = ""
    poll_interval: float = 0.5  # how often an idle worker asks for work
    check_interval: float = 1.0  # how often it asks whether its runs were ended elsewhere
    grace: float = 10.0  # how long a stopping worker lets its runs finish before requeueing them
    exit_when_idle: bool = False  # for tests and one-shot use: stop when no work is left
    containment: Containment | None = None  # how commands run; by default this machine's sandbox

    def __post_init__(self):
        if self.containment is None:
            self.containment = Containment.for_worker()
        self.work = Slots()
        self.stager = ThreadPoolExecutor(max_workers=max(2, self.slots or 2), thread_name_prefix="staging")
        self.stopping = False
        self.stop_deadline = None
        self.signals = StopSignals()
        self.next_claim = self.next_check = self.next_heartbeat = 0.0
        self.claimed_total = 0
        self.rebooting = False  # asked to reboot: it claims nothing until its runs are over
        self.membership = Membership(self.name, pool=self.pool, account=self.account, slots=self.slots)

    # --- lifecycle -----------------------------------------------------------------

    def run(self) -> None:
        if self.containment.confined:
            become_subreaper()  # to reap each sandbox's init for its usage (nodes.sandbox)
        make_node_root_private()
        self.signals.install()  # first: a stop asked for while the node joins is honoured, not fatal
        self.register()
        log.info("node %s joined pool %s with %d slot(s); tasks %s", self.name, self.membership.pool_id,
                 self.slots, self.containment.describe())
        try:
            while not self.finished():
                self.step()
        finally:
            self.shutdown()
            log.info("worker %s stopped (%d task runs)", self.name, self.claimed_total)

    def register(self) -> None:
        self.membership.join(self.containment)
        self.slots = self.membership.slots
        self.launch_start_task()

    def notice_signals(self, now: float) -> None:
        """The first signal stops claiming and gives the runs their grace; another ends the grace."""
        new = self.signals.take()
        if new and not self.stopping:
            log.info("stopping: no new tasks; %d running get %.0fs to finish", self.busy(), self.grace)
            self.stopping, self.stop_deadline = True, now + self.grace
            self.membership.start_leaving()
            new -= 1
        if new:
            log.warning("second signal: requeueing running tasks now")
            self.stop_deadline = now

    def finished(self) -> bool:
        return self.stopping and not self.owes()

    def active(self) -> bool:
        """Anything running, waiting for a preparation, or moving files."""
        return bool(self.work)

    def owes(self) -> bool:
        """Work a node that stops or reboots waits for: all but the pool's start task (which
        may run for ever; it is killed, and runs again after a reboot)."""
        return any(not isinstance(work.row, StartTask) for work in self.work)

    def busy(self) -> int:
        return self.work.busy()

    def shutdown(self) -> None:
        self.abandon_runs()
        self.stager.shutdown(wait=False, cancel_futures=True)
        self.membership.leave()
        sweeps.settle_jobs()  # jobs that waited for this worker's release task need not wait any more

    def abandon_runs(self) -> None:
        """Kill what still runs and put every task this node holds back in the queue (requeueCount + 1).

        Tasks whose files are still moving go back too: a thread cannot be stopped, and
        what it writes is the next run's to overwrite.
        """
        runs = [work.run for work in self.work.in_phase(Phase.RUNNING)]
        for run in runs:
            run.kill()
        for run in runs:
            run.proc.wait()
            run.close()
        if attempts := {work.row.pk: work.attempt for work in self.work.tasks()}:
            log.info("requeued %d running task(s)", task_runs.requeue_tasks(node_id=self.name, attempts=attempts))
        self.work.clear()

    # --- the loop ------------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        self.notice_signals(now)
        self.reap()
        self.finish_staging()
        self.enforce_deadlines(now)
        if now >= self.next_check:
            self.next_check = now + self.check_interval
            self.cancel_ended_runs()
            if not self.stopping:
                self.start_due_releases()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + settings.BATCHSITE_HEARTBEAT_SECONDS
            # The worker keeps one connection between heartbeats (opening one per claim
            # cost SQLite's pragmas every time); here it drops a connection that broke.
            close_old_connections()
            self.obey(self.membership.beat(self.load()), now)
            sweeps.sweep()
        if self.rebooting and not self.owes():
            self.rebooting = False
            self.abandon_runs()  # the start task, if it still runs: it starts afresh
            self.membership.rebooted()
            self.launch_start_task()
        if self.stopping:
            if now >= self.stop_deadline:
                self.abandon_runs()
            else:
                self.wait(min(0.2, self.stop_deadline - now))
            return
        if self.busy() < self.slots and now >= self.next_claim and not self.rebooting:
            if self.claim_and_launch() == 0:
                self.next_claim = now + self.poll_interval
                if self.exit_when_idle and not self.active():
                    self.start_due_releases()  # ended jobs may still want this worker's release
                    if not self.active():
                        self.stopping, self.stop_deadline = True, now
                        return
            else:
                return  # there may be more: claim again before sleeping
        self.wait(self.timeout(now))

    def obey(self, orders: Orders, now: float) -> None:
        """Leave the pool, or reboot, when asked: runs the service ended are killed now
        (requeue, terminate); others (taskcompletion, retaineddata) are waited for."""
        if orders.leave and not self.stopping:
            log.info("node %s is leaving its pool; %d run(s) %s", self.name, self.busy(),
                     "end now" if orders.at_once else "may finish")
            self.stopping, self.stop_deadline = True, now if orders.at_once else float("inf")
        if orders.reboot and not self.rebooting:
            self.rebooting = True
            if orders.at_once:
                self.abandon_runs()

    def load(self) -> node_load.Load:
        return node_load.Load(tasks=self.work.running_tasks(), slots=self.busy())

    def timeout(self, now: float) -> float:
        moments = [self.next_check, self.next_heartbeat]
        if self.busy() < self.slots:
            moments.append(self.next_claim)
        moments += [work.run.deadline for work in self.work.in_phase(Phase.RUNNING) if work.run.deadline]
        return max(0.0, min(moments) - now)

    def wait(self, timeout: float) -> None:
        """Sleep until a child exits or `timeout` passes (a little while only, when files are moving)."""
        if self.work.in_phase(*STAGING):
            timeout = min(timeout, 0.05)
        runs = [work.run for work in self.work.in_phase(Phase.RUNNING)]
        fds = [run.pidfd for run in runs if run.pidfd is not None]
        if fds and len(fds) == len(runs):
            select.select(fds, [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05) if runs else timeout)

    # --- from claim to record ------------------------------------------------------

    def claim_and_launch(self) -> int:
        claim = task_runs.claim_tasks(node_id=self.name, limit=self.slots - self.busy(), holding=self.load())
        waiting = [task for task in claim if task.state == TaskState.PREPARING]
        for task in waiting:  # before the preparation starts: one that ends at once finds them
            self.work.add(Work(task, Phase.WAITING))
        # The claim decided that the job must be prepared here; this node only knows
        # whether it is preparing it already.
        if claim.prepare and not self.work.holds(node_task_key(claim.job.pk, node_tasks.PREPARATION)):
            self.launch_node_task(claim.job, node_tasks.PREPARATION)
        for task in claim:
            if task.state != TaskState.PREPARING:
                self.launch(task, Command.of_task(task))
        self.claimed_total += len(claim)
        return len(claim)

    def launch(self, row: Task | NodeTask, command: Command) -> None:
        """Start a claimed task or a node task, once its resource files are in (a failed download fails it)."""
        work = Work(row, Phase.STAGING_IN, command)
        try:
            work.run_as = self.containment.identity(command.user_identity)
        except IdentityRefused as refused:  # the node has no such user
            write_refusal(command.directory, refused.failure["message"])
            self.end(work, None, refused.failure)
            return
        if not command.resource_files:
            self.start(work)
            return
        # Downloads go into a `wd` that is no link.
        for fd in prepare_run_directory(command.directory, work.run_as.owner):
            os.close(fd)
        work.transfer = self.stager.submit(download_resource_files, command.resource_files, command.directory,
                                           command.account, work.run_as)
        self.work.add(work)

    def start(self, work: Work) -> None:
        task = work.row
        wants_token = isinstance(task, Task) and task_tokens.wants_token(task)
        extra = {"AZ_BATCH_AUTHENTICATION_TOKEN": task_tokens.issue(task)} if wants_token else {}
        run, failure = spawn(self.containment, self.name, work.command, work.run_as, extra)
        if run is None:
            log.info("%s could not start: %s", work.label, failure["message"])
            self.end(work, None, failure)
            return
        work.run, work.phase = run, Phase.RUNNING
        self.work.add(work)
        log.log(logging.DEBUG if work.takes_slot else logging.INFO, "%s started (pid %d)", work.label, run.proc.pid)

    def finish_staging(self) -> None:
        """Carry on with what the staging threads have finished."""
        for work in self.work.in_phase(*STAGING):
            if not work.transfer.done():
                continue
            try:
                failure = work.transfer.result()
            except Exception as exc:  # a bug in staging must not take the worker down
                log.exception("staging for %s failed", work.label)
                failure = {"category": "servererror", "code": "StagingFailed", "message": str(exc)}
            work.transfer = None
            if work.phase == Phase.STAGING_OUT:
                self.end(work, work.run.exit_code, work.run.failure or failure)
            elif failure:
                self.end(work, None, failure)
            else:
                self.start(work)

    def reap(self) -> None:
        """Record every run that has ended, the tasks' all in one transaction."""
        ended = []
        # Preparation and release tasks first: a preparation's end may start the tasks waiting for it.
        for work in sorted(self.work.in_phase(Phase.RUNNING), key=lambda work: work.takes_slot):
            run = work.run
            if run.poll() is None:
                continue
            run.close()
            if not work.takes_slot:
                self.end(work, run.exit_code, run.failure)
            elif work.cancelled:
                self.work.remove(work)
            elif outputs := work.row.output_files:  # the task is running until its outputs are up
                task, succeeded = work.row, run.failure is None and run.exit_code == 0
                work.phase = Phase.STAGING_OUT
                work.transfer = self.stager.submit(upload_output_files, outputs, working_dir(task),
                                                   task.job.account.name, succeeded)
            else:
                self.work.remove(work)
                ended.append(task_runs.RunEnd(work.row, work.attempt, run.exit_code, run.failure, run.usage))
        self.record(ended)

    def end(self, work: Work, exit_code: int | None, failure: dict | None) -> None:
        """Record how `work` ended: it could not start, or its run is over and its outputs are up."""
        self.work.remove(work)
        if isinstance(work.row, NodeTask):
            self.node_task_ended(work.row, exit_code, failure)
        elif isinstance(work.row, StartTask):
            self.start_task_ended(work.row, exit_code, failure)
        else:
            usage = work.run.usage if work.run else None
            self.record([task_runs.RunEnd(work.row, work.attempt, exit_code, failure, usage)])

    def record(self, ended: list[task_runs.RunEnd]) -> None:
        """The ends of runs, in one transaction, with what the node still runs."""
        if not ended:
            return
        for end, outcome in zip(ended, task_runs.finish_tasks(ended, node_id=self.name, holding=self.load())):
            log.info("task %s/%s exited %s: %s", end.task.job.batch_id, end.task.batch_id, end.exit_code,
                     outcome or "no longer ours")

    def enforce_deadlines(self, now: float) -> None:
        for work in self.work.in_phase(Phase.RUNNING):
            run = work.run
            if run.deadline and now >= run.deadline and run.failure is None:
                run.failure = wall_clock_expired(run.limit)
                run.kill()

    def cancel_ended_runs(self) -> None:
        """Kill runs that were terminated, deleted or requeued by someone else; free the slots of
        tasks that were ended while they waited for their job's preparation."""
        held = [work for work in self.work.in_phase(Phase.RUNNING, Phase.WAITING)
                if work.takes_slot and not work.cancelled]
        if not held:
            return
        current = current_runs(node_id=self.name, attempts={work.row.pk: work.attempt for work in held})
        for work in held:
            if work.row.pk in current:
                continue
            if work.phase == Phase.WAITING:
                self.work.remove(work)  # nothing of it runs
            else:
                work.cancelled = True
                work.run.kill()
