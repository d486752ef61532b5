"""The worker: claims tasks, runs their command lines, records how they ended.

One process, one thread. Children are started without a shell, in a sandbox
(`nodes.sandbox`), in their own session (so Ctrl-C on the worker's terminal
does not reach them), and are awaited through pidfds, so the loop wakes the
moment a child exits. Killing a run kills its process group: unconfined, the
task's; sandboxed, bubblewrap's, and the sandbox dies with it (die-with-parent). Every state
change goes through `tasks.services`; the worker never writes a task row itself.
"""

import logging
import os
import select
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from jobs.models import Job
from tasks import node_tasks, stats
from tasks import tokens as task_tokens
from tasks.files import node_task_dir, shared_dir, task_dir, working_dir
from tasks.models import NodeTask, Task, TaskState, Worker, WorkerState
from tasks.outcomes import program_not_found, wall_clock_expired
from tasks.rundirs import prepare_run_directory
from tasks.selectors import current_runs
from tasks.services import node_tasks as node_task_runs
from tasks.services import runs as task_runs
from tasks.services import sweeps

from . import staging
from .sandbox import (
    CLEAN_ENVIRONMENT,
    TASK_UMASK,
    Containment,
    IdentityRefused,
    RunAs,
    TaskEnvironment,
    args_fd,
    become_subreaper,
    sandbox_usage,
)

log = logging.getLogger("batchsite.worker")

# What a task inherits from the worker's own environment. Nothing else: the
# worker's may hold DATABASE_URL and secrets, which are not the task's business.
# HOME, USER and TMPDIR are the task's own (below).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SHELL", "PYTHONIOENCODING")


@dataclass
class Run:
    """One run of one task, or of a job's preparation or release task, on this worker."""

    task: Task | NodeTask
    attempt: int
    proc: subprocess.Popen
    started: float
    limit: timedelta | None  # the run's maxWallClockTime
    pidfd: int | None
    failure: dict | None = None  # set when we killed it for a reason of our own
    cancelled: bool = False  # the run was ended elsewhere (terminated, deleted)
    usage: stats.Usage | None = None  # from wait4, once it has ended
    info_fd: int | None = None  # where bubblewrap told the pid of the sandbox's init (sandbox_usage)

    def poll(self) -> int | None:
        """The exit status once the child has ended (reaped with wait4, for its rusage), else None."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere already
            return self.proc.poll()
        if pid == 0:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.usage = stats.Usage.of(rusage)
        if self.info_fd is not None:
            if inside := sandbox_usage(self.info_fd):
                self.usage += stats.Usage.of(inside)
            os.close(self.info_fd)
            self.info_fd = None
        return self.proc.returncode

    @property
    def deadline(self) -> float | None:
        return self.started + self.limit.total_seconds() if self.limit else None


def exit_code_of(returncode: int) -> int:
    """A shell's convention: killed by signal N is exit code 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def environment(job: Job, node_id: str, *, task_id: str, directory: Path, own: list[dict], run_as: RunAs,
                confined: bool) -> dict[str, str]:
    """What a task (or the job's preparation or release task) finds in its environment."""
    node_root = settings.BATCHSITE_NODE_ROOT
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    # The worker's home is hidden from tasks (credentials live there): a task's home is its directory.
    user = "root" if run_as.root_inside else run_as.name
    env.update({"HOME": str(directory), "USER": user, "LOGNAME": user})
    if confined:
        env["TMPDIR"] = "/tmp"  # the sandbox's own
    for setting in [*job.common_environment_settings, *own]:
        env[setting["name"]] = setting.get("value") or ""
    env.update({
        "AZ_BATCH_ACCOUNT_NAME": job.account.name,
        "AZ_BATCH_POOL_ID": (job.pool_info or {}).get("poolId", "local"),
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": str(node_root),
        "AZ_BATCH_NODE_SHARED_DIR": str(shared_dir(job.account.name)),
        "AZ_BATCH_JOB_ID": job.batch_id,
        "AZ_BATCH_TASK_ID": task_id,
        "AZ_BATCH_TASK_DIR": str(directory),
        "AZ_BATCH_TASK_WORKING_DIR": str(directory / "wd"),
        "AZ_BATCH_ACCOUNT_URL": settings.BATCHSITE_ACCOUNT_URL,
    })
    if job.job_preparation_task:
        prep = node_task_dir(job, node_id, node_tasks.PREPARATION)
        env["AZ_BATCH_JOB_PREP_DIR"], env["AZ_BATCH_JOB_PREP_WORKING_DIR"] = str(prep), str(prep / "wd")
    return env


def sandbox_binds(job: Job, node_id: str, directory: Path) -> tuple[list[Path], list[Path]]:
    """What a sandboxed run may see of the node, (writable, read-only): its own directory,
    its account's shared directory, and its job's preparation directory on this node (as
    Batch defines them). The preparation's is read-only for tasks: the worker writes
    there as root when the preparation runs again, never beside a task that could
    swap its folders; the release task, run when every task has ended, may write it.
    """
    shared = shared_dir(job.account.name)
    if not shared.is_dir():
        shared.mkdir(parents=True, exist_ok=True)
        shared.chmod(0o1777)  # every task user of the account writes there, as in /tmp
    writable, read_only = [directory, shared], []
    if job.job_preparation_task:
        prep = node_task_dir(job, node_id, node_tasks.PREPARATION)
        if prep != directory:
            prep.mkdir(parents=True, exist_ok=True)
            release = node_task_dir(job, node_id, node_tasks.RELEASE)
            (writable if directory == release else read_only).append(prep)
    return writable, read_only


def start_process(containment: Containment, command_line: str, directory: Path, env: dict[str, str], *,
                  run_as: RunAs, binds: tuple[list[Path], list[Path]]) -> tuple[subprocess.Popen | None, str,
                                                                                 int | None]:
    """Start a command line (no shell) in directory/wd with stdout.txt and stderr.txt beside it.

    The process, or None and why it could not start (also written to stderr.txt);
    and, for a sandboxed one, where to learn what it used (`sandbox_usage`).
    """
    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        argv, error = [], f"the command line cannot be split: {exc}"
    else:
        error = "" if argv else "the command line is empty"
    workdir = directory / "wd"
    writable, read_only = binds
    if not error and not containment.visible_program(argv[0], path=env.get("PATH", os.defpath), cwd=workdir,
                                                     binds=writable + read_only):
        error = "No such file or directory"
    proc = info_read = None
    try:
        out, err = prepare_run_directory(directory, run_as.owner)
    except (OSError, RecursionError) as exc:  # what an earlier run left cannot be cleared: this run fails
        return None, f"the task's directory cannot be made ready: {exc}", None
    try:
        if not error:
            info_read, info_write = os.pipe() if containment.confined else (None, None)
            variables = TaskEnvironment(env)
            command = containment.command(argv, directory=directory, binds=writable, read_only=read_only,
                                          run_as=run_as, env=variables, info_fd=info_write)
            command, args = args_fd(command) if containment.confined else (command, None)
            try:
                proc = subprocess.Popen(
                    command, cwd=workdir, env=CLEAN_ENVIRONMENT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True, close_fds=True, umask=TASK_UMASK,
                    pass_fds=[fd for fd in (info_write, args, variables.fd) if fd is not None],
                )
            except (OSError, ValueError) as exc:  # not executable, bad interpreter, a NUL in an argument ...
                error = f"{getattr(exc, 'strerror', None) or exc}"
            finally:
                variables.close()
                for fd in (info_write, args):
                    if fd is not None:
                        os.close(fd)
            if proc is None and info_read is not None:
                os.close(info_read)
                info_read = None
        if error:
            os.write(err, f"batchsite: cannot start {argv[0] if argv else 'the task'}: {error}\n".encode())
    finally:
        os.close(out)
        os.close(err)
    return proc, error, info_read


def program_of(command_line: str) -> str:
    try:
        return (shlex.split(command_line) or [""])[0]
    except ValueError:
        return ""


def write_refusal(directory: Path, message: str) -> None:
    """Why a run did not start, in its stderr.txt (made anew, through no link)."""
    out, err = prepare_run_directory(directory)
    os.close(out)
    with os.fdopen(err, "w") as f:
        f.write(f"batchsite: {message}\n")


def download_resource_files(resource_files: list, directory: Path, account: str, run_as: RunAs) -> dict | None:
    """Staging work (on a thread): fetch the resource files; the failure (also in stderr.txt) if one failed.

    The directory was made ready for the run first (`prepare_run_directory`), and
    every write goes through no link (tasks.rundirs).
    """
    try:
        staging.download(resource_files, directory / "wd", account=account, owner=run_as.owner)
    except staging.StagingError as exc:
        write_refusal(directory, f"{exc}: {exc.failure['details']}")
        log.info("%s: %s", directory, exc)
        return exc.failure
    return None


def upload_output_files(output_files: list, workdir: Path, account: str, succeeded: bool) -> dict | None:
    """Staging work (on a thread): upload what the run qualifies for; the failure if one could not go."""
    try:
        staging.upload(output_files, workdir, account=account, succeeded=succeeded)
    except staging.StagingError as exc:
        log.info("%s: %s", workdir, exc)
        return exc.failure
    return None


@dataclass
class Staged:
    """Files moving on a staging thread, and what the loop does with the outcome (a failure or None)."""

    future: Future
    then: Callable[[dict | None], None]
    holds_slot: bool  # a task's download or upload takes its slot; a preparation's takes none
    task: Task | None = None  # the task whose run waits on it (requeued if the worker stops)


@dataclass
class WorkerLoop:
    name: str
    slots: int = 1
    poll_interval: float = 0.5  # how often an idle worker asks for work
    check_interval: float = 1.0  # how often it asks whether its runs were ended elsewhere
    grace: float = 10.0  # how long a stopping worker lets its runs finish before requeueing them
    exit_when_idle: bool = False  # for tests and one-shot use: stop when no work is left
    containment: Containment | None = None  # how commands run; by default this machine's sandbox
    runs: dict[int, Run] = field(default_factory=dict)  # by task pk
    # The job's preparation and release runs, by (job pk, kind); they take no slot.
    node_runs: dict[tuple[int, str], Run] = field(default_factory=dict)
    # Tasks claimed in `preparing`, by job pk, waiting for the preparation on this worker.
    held: dict[int, list[Task]] = field(default_factory=dict)
    # Resource files coming in and outputs going out, on threads: the loop goes on
    # reaping, heartbeating and enforcing wall clocks while a big file moves.
    staging: dict[tuple, Staged] = field(default_factory=dict)

    def __post_init__(self):
        if self.containment is None:
            self.containment = Containment.for_worker()
        self.stager = ThreadPoolExecutor(max_workers=max(2, self.slots), thread_name_prefix="staging")
        self.stopping = False
        self.stop_deadline = None
        self.next_claim = self.next_check = self.next_heartbeat = 0.0
        self.claimed_total = 0

    # --- lifecycle -----------------------------------------------------------------

    def run(self) -> None:
        if self.containment.confined:
            become_subreaper()  # to reap each sandbox's init for its usage (nodes.sandbox)
        make_node_root_private()
        self.register()
        self.install_signal_handlers()
        log.info("worker %s started with %d slot(s); tasks %s", self.name, self.slots, self.containment.describe())
        try:
            while not self.finished():
                self.step()
        finally:
            self.shutdown()
            log.info("worker %s stopped (%d task runs)", self.name, self.claimed_total)

    def register(self) -> None:
        now = timezone.now()
        stale_before = now - settings.BATCHSITE_WORKER_TIMEOUT
        hostname = socket.gethostname()
        with transaction.atomic():
            existing = Worker.objects.select_for_update().filter(name=self.name).first()
            if (existing and existing.state != WorkerState.STOPPED and existing.heartbeat_at > stale_before
                    and not predecessor_is_dead(existing, hostname)):
                raise RuntimeError(f"a worker named {self.name!r} is alive (pid {existing.pid} on "
                                   f"{existing.hostname}); give this one another --name")
            Worker.objects.update_or_create(name=self.name, defaults=dict(
                hostname=hostname, pid=os.getpid(), slots=self.slots, state=WorkerState.RUNNING,
                started_at=now, heartbeat_at=now, confined=self.containment.confined,
                containment=self.containment.describe(), process_key=process_key(os.getpid())))
        # Runs left behind by an earlier life of this name go back to the queue; the
        # release tasks it did not finish are owed again.
        if requeued := task_runs.requeue_tasks(node_id=self.name):
            log.warning("requeued %d task(s) left running by an earlier worker %s", requeued, self.name)
        node_task_runs.forget_unfinished_releases(self.name)

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
        return self.stopping and not self.active()

    def active(self) -> bool:
        """Anything running, waiting for a preparation, or moving files."""
        return bool(self.runs or self.node_runs or self.held or self.staging)

    def busy(self) -> int:
        """Slots taken: running tasks, tasks waiting for their job's preparation, tasks moving files."""
        return (len(self.runs) + sum(len(tasks) for tasks in self.held.values())
                + sum(1 for staged in self.staging.values() if staged.holds_slot))

    def shutdown(self) -> None:
        self.abandon_runs()
        self.stager.shutdown(wait=False, cancel_futures=True)
        Worker.objects.filter(name=self.name).update(state=WorkerState.STOPPED, heartbeat_at=timezone.now())
        sweeps.settle_jobs()  # jobs that waited for this worker's release task need not wait any more

    def abandon_runs(self) -> None:
        """Kill what still runs and put its tasks back in the queue (requeueCount + 1)."""
        attempts = {pk: run.attempt for pk, run in self.runs.items()}
        attempts.update({t.pk: t.attempt for tasks in self.held.values() for t in tasks})
        # Tasks whose files are still moving go back too (a thread cannot be stopped; what
        # it writes is the next run's to overwrite).
        attempts.update({s.task.pk: s.task.attempt for s in self.staging.values() if s.task is not None})
        every = [*self.runs.values(), *self.node_runs.values()]
        for run in every:
            self.kill(run)
        for run in every:
            run.proc.wait()
            self.close(run)
        if attempts:
            n = task_runs.requeue_tasks(node_id=self.name, attempts=attempts)
            log.info("requeued %d running task(s)", n)
        self.runs.clear()
        self.node_runs.clear()
        self.held.clear()
        self.staging.clear()

    # --- the loop ------------------------------------------------------------------

    def step(self) -> None:
        now = time.monotonic()
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
            self.heartbeat()
            self.housekeeping()
        if self.stopping:
            if now >= self.stop_deadline:
                self.abandon_runs()
            else:
                self.wait(min(0.2, self.stop_deadline - now))
            return
        if self.busy() < self.slots and now >= self.next_claim:
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

    def timeout(self, now: float) -> float:
        moments = [self.next_check, self.next_heartbeat]
        if self.busy() < self.slots:
            moments.append(self.next_claim)
        moments += [run.deadline for run in self.every_run() if run.deadline]
        return max(0.0, min(moments) - now)

    def every_run(self) -> list[Run]:
        return [*self.runs.values(), *self.node_runs.values()]

    def wait(self, timeout: float) -> None:
        """Sleep until a child exits or `timeout` passes (a little while only, when files are moving)."""
        if self.staging:
            timeout = min(timeout, 0.05)
        runs = self.every_run()
        fds = [run.pidfd for run in runs if run.pidfd is not None]
        if fds and len(fds) == len(runs):
            select.select(fds, [], [], timeout)
        else:
            time.sleep(min(timeout, 0.05) if runs else timeout)

    def claim_and_launch(self) -> int:
        tasks = task_runs.claim_tasks(node_id=self.name, limit=self.slots - self.busy())
        if tasks.prepare and not self.node_task_busy(tasks.job, node_tasks.PREPARATION):
            self.launch_node_task(tasks.job, node_tasks.PREPARATION)
        for task in tasks:
            if task.state == TaskState.PREPARING:
                self.held.setdefault(task.job_id, []).append(task)
            else:
                self.launch(task)
        self.claimed_total += len(tasks)
        return len(tasks)

    def launch(self, task: Task) -> None:
        """Start a claimed task, once its resource files are in (a failed download fails it)."""
        directory = task_dir(task)
        run_as = self.identity(task.user_identity, directory)
        if isinstance(run_as, dict):  # refused
            task_runs.finish_task(task=task, attempt=task.attempt, exit_code=None, failure=run_as)
        elif task.resource_files:
            for fd in prepare_run_directory(directory, run_as.owner):  # downloads go into a `wd` that is no link
                os.close(fd)
            self.stage(("in", task.pk), partial(download_resource_files, task.resource_files, directory,
                                                task.job.account.name, run_as),
                       partial(self.start, task, run_as), task=task)
        else:
            self.start(task, run_as, None)

    def identity(self, user_identity: dict | None, directory: Path) -> RunAs | dict:
        """Who a command runs as, or the failureInfo saying why the node has no such user."""
        try:
            return self.containment.identity(user_identity)
        except IdentityRefused as refused:
            write_refusal(directory, refused.failure["message"])
            return refused.failure

    def start(self, task: Task, run_as: RunAs, failure: dict | None) -> None:
        attempt = task.attempt
        if failure:
            task_runs.finish_task(task=task, attempt=attempt, exit_code=None, failure=failure)
            return
        extra = {"AZ_BATCH_AUTHENTICATION_TOKEN": task_tokens.issue(task)} if task_tokens.wants_token(task) else {}
        run, failure = self.spawn(task, attempt, task.job, task_id=task.batch_id, directory=task_dir(task),
                                  command_line=task.command_line, own_env=task.environment_settings,
                                  run_as=run_as, limit=task.max_wall_clock_time, extra_env=extra)
        if run is None:
            log.info("task %s/%s could not start: %s", task.job.batch_id, task.batch_id, failure["message"])
            task_runs.finish_task(task=task, attempt=attempt, exit_code=None, failure=failure)
            return
        self.runs[task.pk] = run
        log.debug("task %s/%s started (pid %d)", task.job.batch_id, task.batch_id, run.proc.pid)

    def spawn(self, row: Task | NodeTask, attempt: int, job: Job, *, task_id: str, directory: Path,
              command_line: str, own_env: list[dict], run_as: RunAs, limit: timedelta | None,
              extra_env: dict | None = None) -> tuple[Run | None, dict]:
        """Start a command of the job in its directory, as `run_as`, in the sandbox.

        Its run, or None and the failureInfo saying why it could not start.
        """
        env = environment(job, self.name, task_id=task_id, directory=directory, own=own_env, run_as=run_as,
                          confined=self.containment.confined)
        env.update(extra_env or {})
        proc, error, info_fd = start_process(self.containment, command_line, directory, env, run_as=run_as,
                                             binds=sandbox_binds(job, self.name, directory))
        if proc is None:
            return None, program_not_found(program_of(command_line), error)
        return Run(task=row, attempt=attempt, proc=proc, started=time.monotonic(), limit=limit,
                   pidfd=self.pidfd(proc.pid), info_fd=info_fd), {}

    def stage(self, key: tuple, work: Callable[[], dict | None], then: Callable[[dict | None], None], *,
              task: Task | None = None, holds_slot: bool = True) -> None:
        self.staging[key] = Staged(self.stager.submit(work), then, holds_slot, task)

    def finish_staging(self) -> None:
        """Carry on with what the staging threads have finished."""
        for key, staged in list(self.staging.items()):
            if staged.future.done():
                del self.staging[key]
                try:
                    failure = staged.future.result()
                except Exception as exc:  # a bug in staging must not take the worker down
                    log.exception("staging %s failed", key)
                    failure = {"category": "servererror", "code": "StagingFailed", "message": str(exc)}
                staged.then(failure)

    # --- the job's preparation and release tasks -------------------------------------

    def start_due_releases(self) -> None:
        for job in node_tasks.releases_due(self.name):
            if not self.node_task_busy(job, node_tasks.RELEASE):
                self.launch_node_task(job, node_tasks.RELEASE)

    def node_task_busy(self, job: Job, kind: str) -> bool:
        """Whether this worker runs the job's preparation or release now, or fetches its files."""
        return (job.pk, kind) in self.node_runs or ("node", job.pk, kind) in self.staging

    def launch_node_task(self, job: Job, kind: str) -> None:
        row = node_task_runs.start(job, self.name, kind)
        spec = node_tasks.spec_of(job, kind) or {}
        directory = node_task_dir(job, self.name, kind)
        run_as = self.identity(spec.get("userIdentity"), directory)
        if isinstance(run_as, dict):  # refused
            self.node_task_ended(row, row.attempt, None, run_as)
        elif spec.get("resourceFiles"):
            for fd in prepare_run_directory(directory, run_as.owner):  # downloads go into a `wd` that is no link
                os.close(fd)
            self.stage(("node", job.pk, kind), partial(download_resource_files, spec["resourceFiles"], directory,
                                                       job.account.name, run_as),
                       partial(self.start_node_task, job, kind, row, run_as), holds_slot=False)
        else:
            self.start_node_task(job, kind, row, run_as, None)

    def start_node_task(self, job: Job, kind: str, row: NodeTask, run_as: RunAs, failure: dict | None) -> None:
        if failure:
            self.node_task_ended(row, row.attempt, None, failure)
            return
        spec = node_tasks.spec_of(job, kind) or {}
        run, failure = self.spawn(row, row.attempt, job, task_id=node_tasks.task_id_of(job, kind),
                                  directory=node_task_dir(job, self.name, kind),
                                  command_line=spec.get("commandLine", ""),
                                  own_env=spec.get("environmentSettings") or [],
                                  run_as=run_as, limit=node_tasks.wall_clock_limit(job, kind))
        if run is None:
            log.info("job %s: %s task could not start: %s", job.batch_id, kind, failure["message"])
            self.node_task_ended(row, row.attempt, None, failure)
            return
        self.node_runs[(job.pk, kind)] = run
        log.info("job %s: %s task started (pid %d)", job.batch_id, kind, run.proc.pid)

    def node_task_ended(self, row: NodeTask, attempt: int, exit_code: int | None, failure: dict | None) -> None:
        job = row.job
        outcome = node_task_runs.finish(row, attempt, exit_code, failure)
        log.info("job %s: %s task exited %s: %s", job.batch_id, row.kind, exit_code, outcome or "no longer ours")
        if row.kind != node_tasks.PREPARATION:
            return
        if outcome == "retried":
            self.launch_node_task(job, row.kind)
            return
        held = self.held.pop(job.pk, [])
        if outcome == "succeeded":
            for task in task_runs.start_prepared_tasks(held):
                self.launch(task)
        elif held:  # failed for good (or no longer ours): the tasks go back for other workers
            task_runs.requeue_tasks(node_id=self.name, attempts={t.pk: t.attempt for t in held})

    @staticmethod
    def pidfd(pid: int) -> int | None:
        try:
            return os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, or an old kernel: we poll instead
            return None

    def reap(self) -> None:
        """Record every run that has ended, the tasks' all in one transaction."""
        for key, run in list(self.node_runs.items()):
            returncode = run.poll()
            if returncode is not None:
                del self.node_runs[key]
                self.close(run)
                self.node_task_ended(run.task, run.attempt, exit_code_of(returncode), run.failure)
        ended = []
        for pk, run in list(self.runs.items()):
            returncode = run.poll()
            if returncode is None:
                continue
            del self.runs[pk]
            self.close(run)
            if run.cancelled:
                continue
            exit_code = exit_code_of(returncode)
            if run.task.output_files:  # the task is running until its outputs are up
                succeeded = run.failure is None and exit_code == 0
                self.stage(("out", pk), partial(upload_output_files, run.task.output_files, working_dir(run.task),
                                                run.task.job.account.name, succeeded),
                           partial(self.uploaded, run, exit_code), task=run.task)
            else:
                ended.append(task_runs.RunEnd(run.task, run.attempt, exit_code, run.failure, run.usage))
        self.record(ended)

    def uploaded(self, run: Run, exit_code: int, failure: dict | None) -> None:
        self.record([task_runs.RunEnd(run.task, run.attempt, exit_code, run.failure or failure, run.usage)])

    @staticmethod
    def record(ended: list[task_runs.RunEnd]) -> None:
        """The ends of runs, in one transaction."""
        if not ended:
            return
        for end, outcome in zip(ended, task_runs.finish_tasks(ended)):
            log.info("task %s/%s exited %d: %s", end.task.job.batch_id, end.task.batch_id, end.exit_code,
                     outcome or "no longer ours")

    def enforce_deadlines(self, now: float) -> None:
        for run in self.every_run():
            if run.deadline and now >= run.deadline and run.failure is None:
                run.failure = wall_clock_expired(run.limit)
                self.kill(run)

    def cancel_ended_runs(self) -> None:
        """Kill runs that were terminated, deleted or requeued by someone else."""
        if not self.runs:
            return
        attempts = {pk: run.attempt for pk, run in self.runs.items()}
        current = current_runs(node_id=self.name, attempts=attempts)
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
        sweeps.sweep()

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
        if run.info_fd is not None:  # ended without being polled (abandoned): still reap its sandbox
            sandbox_usage(run.info_fd)
            os.close(run.info_fd)
            run.info_fd = None


def process_key(pid: int) -> str:
    """Which process `pid` is, in words no other process shares: this boot, this PID
    namespace, the pid and the moment it started (in clock ticks since boot, which no
    change of the wall clock moves); "" where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        started = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""
    return f"{boot}/{namespace}/{pid}/{started}"


def predecessor_is_dead(worker: Worker, hostname: str) -> bool:
    """Whether the process a Worker row names has provably ended: it ran on this host, in
    this boot and PID namespace, and no process of its pid and start time lives.

    A worker restarted by a supervisor right after a crash may then take its name at
    once, instead of waiting for the heartbeat to expire.
    """
    here = process_key(os.getpid()).rsplit("/", 2)[0]
    if worker.hostname != hostname or not here or worker.process_key.rsplit("/", 2)[0] != here:
        return False  # another machine's (or container's) process: only its heartbeat can tell
    return process_key(worker.pid) != worker.process_key  # gone, or its pid is another's now


def make_node_root_private() -> None:
    """The node root holds every account's task directories (open to all inside, for the
    sandbox): it is the worker's alone, wherever it is (an NFS mount outside the data
    directory, say)."""
    root = Path(settings.BATCHSITE_NODE_ROOT)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if root.stat().st_mode & 0o077:
        if root.stat().st_uid == os.geteuid():
            root.chmod(0o700)
        else:
            log.warning("the node root %s is open to others and not ours to close: every account's task "
                        "directories can be read there", root)


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
