"""The worker: claims tasks, runs their command lines, records how they ended.

One process, one thread. Children are started without a shell in their own
session (so Ctrl-C on the worker's terminal does not reach them, and a kill
reaches their whole process group) and awaited through pidfds, so the loop
wakes the moment a child exits. Every state change goes through
`tasks.services`; the worker never writes a task row itself.
"""

import logging
import os
import select
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from batchapi import task_tokens
from jobs.services import purge_deleted_jobs, settle_jobs

from . import counts, services
from .files import task_dir, working_dir
from .models import Task, Worker, WorkerState

log = logging.getLogger("batchsite.worker")

# What a task inherits from the worker's own environment. Nothing else: the
# worker's may hold DATABASE_URL and secrets, which are not the task's business.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "SHELL",
                 "PYTHONIOENCODING", "VIRTUAL_ENV")


@dataclass
class Run:
    """One run of one task on this worker."""

    task: Task
    attempt: int
    proc: subprocess.Popen
    started: float
    deadline: float | None
    pidfd: int | None
    failure: dict | None = None  # set when we killed it for a reason of our own
    cancelled: bool = False  # the run was ended elsewhere (terminated, deleted)


def exit_code_of(returncode: int) -> int:
    """A shell's convention: killed by signal N is exit code 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def task_environment(task: Task, node_id: str) -> dict[str, str]:
    job = task.job
    node_root = settings.BATCHSITE_NODE_ROOT
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    for setting in [*job.common_environment_settings, *task.environment_settings]:
        env[setting["name"]] = setting.get("value") or ""
    env.update({
        "AZ_BATCH_ACCOUNT_NAME": "batchsite",
        "AZ_BATCH_POOL_ID": (job.pool_info or {}).get("poolId", "local"),
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": str(node_root),
        "AZ_BATCH_NODE_SHARED_DIR": str(node_root / "shared"),
        "AZ_BATCH_JOB_ID": job.batch_id,
        "AZ_BATCH_TASK_ID": task.batch_id,
        "AZ_BATCH_TASK_DIR": str(task_dir(task)),
        "AZ_BATCH_TASK_WORKING_DIR": str(working_dir(task)),
        "AZ_BATCH_ACCOUNT_URL": settings.BATCHSITE_ACCOUNT_URL,
    })
    if task_tokens.wants_token(task):
        env["AZ_BATCH_AUTHENTICATION_TOKEN"] = task_tokens.issue(task)
    return env


@dataclass
class WorkerLoop:
    name: str
    slots: int = 1
    poll_interval: float = 0.5  # how often an idle worker asks for work
    check_interval: float = 1.0  # how often it asks whether its runs were ended elsewhere
    grace: float = 10.0  # how long a stopping worker lets its runs finish before requeueing them
    exit_when_idle: bool = False  # for tests and one-shot use: stop when no work is left
    runs: dict[int, Run] = field(default_factory=dict)

    def __post_init__(self):
        self.stopping = False
        self.stop_deadline = None
        self.next_claim = self.next_check = self.next_heartbeat = 0.0
        self.claimed_total = 0

    # --- lifecycle -----------------------------------------------------------------

    def run(self) -> None:
        self.register()
        self.install_signal_handlers()
        log.info("worker %s started with %d slot(s)", self.name, self.slots)
        try:
            while not self.finished():
                self.step()
        finally:
            self.shutdown()
            log.info("worker %s stopped (%d task runs)", self.name, self.claimed_total)

    def register(self) -> None:
        now = timezone.now()
        stale_before = now - settings.BATCHSITE_WORKER_TIMEOUT
        with transaction.atomic():
            existing = Worker.objects.select_for_update().filter(name=self.name).first()
            if existing and existing.state != WorkerState.STOPPED and existing.heartbeat_at > stale_before:
                raise RuntimeError(f"a worker named {self.name!r} is alive (pid {existing.pid} on "
                                   f"{existing.hostname}); give this one another --name")
            Worker.objects.update_or_create(name=self.name, defaults=dict(
                hostname=socket.gethostname(), pid=os.getpid(), slots=self.slots,
                state=WorkerState.RUNNING, started_at=now, heartbeat_at=now))
        # Runs left behind by an earlier life of this name go back to the queue.
        if requeued := services.requeue_tasks(node_id=self.name):
            log.warning("requeued %d task(s) left running by an earlier worker %s", requeued, self.name)

    def install_signal_handlers(self) -> None:
        def on_signal(signum, frame):
            if self.stopping:
                log.warning("second signal: requeueing running tasks now")
                self.stop_deadline = time.monotonic()
            else:
                log.info("stopping: no new tasks; %d running get %.0fs to finish", len(self.runs), self.grace)
                self.stopping = True
                self.stop_deadline = time.monotonic() + self.grace
                Worker.objects.filter(name=self.name).update(state=WorkerState.STOPPING)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def finished(self) -> bool:
        return self.stopping and not self.runs

    def shutdown(self) -> None:
        self.abandon_runs()
        Worker.objects.filter(name=self.name).update(state=WorkerState.STOPPED, heartbeat_at=timezone.now())

    def abandon_runs(self) -> None:
        """Kill what still runs and put it back in the queue (requeueCount + 1)."""
        if self.runs:
            attempts = {pk: run.attempt for pk, run in self.runs.items()}
            for run in self.runs.values():
                self.kill(run)
            for run in self.runs.values():
                run.proc.wait()
                self.close(run)
            n = services.requeue_tasks(node_id=self.name, attempts=attempts)
            log.info("requeued %d running task(s)", n)
            self.runs.clear()

    # --- the loop ------------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
        self.reap()
        self.enforce_deadlines(now)
        if now >= self.next_check:
            self.next_check = now + self.check_interval
            self.cancel_ended_runs()
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + settings.BATCHSITE_HEARTBEAT_SECONDS
            self.heartbeat()
            self.housekeeping()
        if self.stopping:
            if now >= self.stop_deadline:
                self.abandon_runs()
            else:
                self.wait(min(0.2, self.stop_deadline - now))
            return
        if len(self.runs) < self.slots and now >= self.next_claim:
            if self.claim_and_launch() == 0:
                self.next_claim = now + self.poll_interval
                if self.exit_when_idle and not self.runs:
                    self.stopping, self.stop_deadline = True, now
                    return
            else:
                return  # there may be more: claim again before sleeping
        self.wait(self.timeout(now))

    def timeout(self, now: float) -> float:
        moments = [self.next_check, self.next_heartbeat]
        if len(self.runs) < self.slots:
            moments.append(self.next_claim)
        moments += [run.deadline for run in self.runs.values() if run.deadline]
        return max(0.0, min(moments) - now)

    def wait(self, timeout: float) -> None:
        """Sleep until a child exits or `timeout` passes."""
        fds = [run.pidfd for run in self.runs.values() if run.pidfd is not None]
        if fds and len(fds) == len(self.runs):
            select.select(fds, [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05) if self.runs else timeout)

    def claim_and_launch(self) -> int:
        tasks = services.claim_tasks(node_id=self.name, limit=self.slots - len(self.runs))
        for task in tasks:
            self.launch(task)
        self.claimed_total += len(tasks)
        return len(tasks)

    def launch(self, task: Task) -> None:
        attempt = task.attempt
        try:
            argv = shlex.split(task.command_line)
        except ValueError as exc:
            argv, error = [], f"the command line cannot be split: {exc}"
        else:
            error = "" if argv else "the command line is empty"
        directory = task_dir(task)
        workdir = working_dir(task)
        workdir.mkdir(parents=True, exist_ok=True)
        with open(directory / "stdout.txt", "wb") as out, open(directory / "stderr.txt", "wb") as err:
            if not error:
                try:
                    proc = subprocess.Popen(
                        argv, cwd=workdir, env=task_environment(task, self.name),
                        stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                        start_new_session=True, close_fds=True,
                    )
                except OSError as exc:  # not found, not executable, bad interpreter, ...
                    error = f"{exc.strerror or exc}"
            if error:
                err.write(f"batchsite: cannot start {argv[0] if argv else 'the task'}: {error}\n".encode())
        if error:
            log.info("task %s/%s could not start: %s", task.job.batch_id, task.batch_id, error)
            services.finish_task(task=task, attempt=attempt, exit_code=None,
                                 failure=services.program_not_found(argv[0] if argv else "", error))
            return
        limit = task.max_wall_clock_time
        started = time.monotonic()
        self.runs[task.pk] = Run(
            task=task, attempt=attempt, proc=proc, started=started,
            deadline=started + limit.total_seconds() if limit else None,
            pidfd=self.pidfd(proc.pid),
        )
        log.debug("task %s/%s started (pid %d)", task.job.batch_id, task.batch_id, proc.pid)

    @staticmethod
    def pidfd(pid: int) -> int | None:
        try:
            return os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, or an old kernel: we poll instead
            return None

    def reap(self) -> None:
        """Record every run that has ended, all in one transaction."""
        ended = []
        for pk, run in list(self.runs.items()):
            returncode = run.proc.poll()
            if returncode is None:
                continue
            del self.runs[pk]
            self.close(run)
            if not run.cancelled:
                ended.append(services.RunEnd(run.task, run.attempt, exit_code_of(returncode), run.failure))
        if not ended:
            return
        for end, outcome in zip(ended, services.finish_tasks(ended)):
            log.info("task %s/%s exited %d: %s", end.task.job.batch_id, end.task.batch_id, end.exit_code,
                     outcome or "no longer ours")

    def enforce_deadlines(self, now: float) -> None:
        for run in self.runs.values():
            if run.deadline and now >= run.deadline and run.failure is None:
                run.failure = services.wall_clock_expired(run.task.max_wall_clock_time)
                self.kill(run)

    def cancel_ended_runs(self) -> None:
        """Kill runs that were terminated, deleted or requeued by someone else."""
        if not self.runs:
            return
        attempts = {pk: run.attempt for pk, run in self.runs.items()}
        current = services.current_runs(node_id=self.name, attempts=attempts)
        for pk, run in self.runs.items():
            if pk not in current and not run.cancelled:
                run.cancelled = True
                self.kill(run)

    def heartbeat(self) -> None:
        # The worker keeps one connection between heartbeats (opening one per claim
        # cost SQLite's pragmas every time); here it drops a connection that broke.
        close_old_connections()
        Worker.objects.filter(name=self.name).update(heartbeat_at=timezone.now())

    def housekeeping(self) -> None:
        requeue_dead_workers()
        services.end_runs_of_ended_jobs()
        settle_jobs()  # wall clocks, and what a race between two finishing workers left unresolved
        counts.thin_samples()
        # Deleted jobs go in chunks for at most half a second a heartbeat, so a
        # million-task delete neither blocks this worker nor takes for ever.
        deadline = time.monotonic() + 0.5
        while purge_deleted_jobs() and time.monotonic() < deadline:
            pass

    @staticmethod
    def kill(run: Run) -> None:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @staticmethod
    def close(run: Run) -> None:
        if run.pidfd is not None:
            os.close(run.pidfd)
            run.pidfd = None


def requeue_dead_workers() -> int:
    """Requeue the tasks of workers whose heartbeat stopped; any worker may do this."""
    cutoff = timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT
    total = 0
    dead = Worker.objects.filter(state__in=[WorkerState.RUNNING, WorkerState.STOPPING], heartbeat_at__lt=cutoff)
    for worker in dead:
        # Compare-and-set on the heartbeat: a worker that came back meanwhile keeps its tasks.
        if Worker.objects.filter(pk=worker.pk, heartbeat_at=worker.heartbeat_at).update(state=WorkerState.STOPPED):
            n = services.requeue_tasks(node_id=worker.name)
            log.warning("worker %s stopped its heartbeat; requeued %d task(s)", worker.name, n)
            total += n
    return total


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
