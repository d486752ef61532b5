"""Starting, killing and reaping one command of a job on this node, and what it finds when it starts.

A command is a task's, or its job's preparation or release task's (`Command`). It is
started without a shell, in the sandbox (`nodes.sandbox`), in its own session (so
Ctrl-C on the worker's terminal does not reach it), and awaited through a pidfd, so
the loop wakes the moment it exits. Killing a run kills its process group:
unconfined, the command's; sandboxed, bubblewrap's, and the sandbox dies with it
(die-with-parent).
"""

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings

from jobs.models import Job
from tasks import node_tasks, stats
from tasks.files import node_task_dir, shared_dir, startup_dir, task_dir
from tasks.models import Task
from tasks.outcomes import program_not_found
from tasks.rundirs import prepare_run_directory

from .identities import RunAs
from .memfiles import CLEAN_ENVIRONMENT, TaskEnvironment, args_fd
from .reaping import sandbox_usage
from .sandbox import TASK_UMASK, Containment

# What a task inherits from the worker's own environment. Nothing else: the
# worker's may hold DATABASE_URL and secrets, which are not the task's business.
# HOME, USER and TMPDIR are the task's own (below).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SHELL", "PYTHONIOENCODING")


@dataclass
class Command:
    """What to run for a task, a job's preparation or release task, or the pool's start task, on this node."""

    account: str  # the account whose task it is
    pool_id: str  # the pool this node is in
    job: Job | None  # None for the pool's start task
    task_id: str
    directory: Path
    command_line: str
    own_env: list[dict]
    user_identity: dict | None
    resource_files: list
    limit: timedelta | None  # maxWallClockTime

    @classmethod
    def of_task(cls, task: Task) -> "Command":
        job = task.job
        return cls(job.account.name, job.pool_id, job, task.batch_id, task_dir(task),
                   task.command_line, task.environment_settings, task.user_identity, task.resource_files,
                   task.max_wall_clock_time)

    @classmethod
    def of_node_task(cls, job: Job, node_id: str, kind: str) -> "Command":
        spec = node_tasks.spec_of(job, kind) or {}
        return cls(job.account.name, job.pool_id, job, node_tasks.task_id_of(job, kind),
                   node_task_dir(job, node_id, kind), spec.get("commandLine", ""),
                   spec.get("environmentSettings") or [], spec.get("userIdentity"), spec.get("resourceFiles") or [],
                   node_tasks.wall_clock_limit(job, kind))

    @classmethod
    def of_start_task(cls, account: str, pool_id: str, node_id: str, spec: dict) -> "Command":
        """The pool's start task, as it runs on node `node_id` (in its startup directory, no wall clock)."""
        return cls(account, pool_id, None, "starttask", startup_dir(account, node_id), spec.get("commandLine", ""),
                   spec.get("environmentSettings") or [], spec.get("userIdentity"), spec.get("resourceFiles") or [],
                   None)


@dataclass
class Run:
    """One started command: its process, and what the worker learns of it."""

    proc: subprocess.Popen
    started: float
    limit: timedelta | None
    pidfd: int | None
    info_fd: int | None = None  # where bubblewrap told the pid of the sandbox's init (sandbox_usage)
    failure: dict | None = None  # set when we killed it for a reason of our own
    usage: stats.Usage | None = None  # from wait4, once it has ended

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

    @property
    def exit_code(self) -> int | None:
        """A shell's convention: killed by signal N is exit code 128 + N."""
        code = self.proc.returncode
        return code if code is None or code >= 0 else 128 - code

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        if self.info_fd is not None:  # ended without being polled (abandoned): still reap its sandbox
            sandbox_usage(self.info_fd)
            os.close(self.info_fd)
            self.info_fd = None


def spawn(containment: Containment, node_id: str, command: Command, run_as: RunAs,
          extra_env: dict[str, str]) -> tuple[Run | None, dict]:
    """Start `command` in its directory, as `run_as`, in the sandbox.

    Its run, or None and the failureInfo saying why it could not start.
    """
    env = environment(command, node_id, run_as=run_as, confined=containment.confined)
    env.update(extra_env)
    proc, error, info_fd = start_process(containment, command.command_line, command.directory, env, run_as=run_as,
                                         binds=sandbox_binds(command, node_id))
    if proc is None:
        return None, program_not_found(program_of(command.command_line), error)
    return Run(proc=proc, started=time.monotonic(), limit=command.limit, pidfd=pidfd(proc.pid), info_fd=info_fd), {}


def pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux, or an old kernel: the loop polls instead
        return None


def environment(command: Command, node_id: str, *, run_as: RunAs, confined: bool) -> dict[str, str]:
    """What a task (or the job's preparation or release task, or the pool's start task) finds in its environment."""
    node_root, job, directory = settings.BATCHSITE_NODE_ROOT, command.job, command.directory
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    # The worker's home is hidden from tasks (credentials live there): a task's home is its directory.
    user = "root" if run_as.root_inside else run_as.name
    env.update({"HOME": str(directory), "USER": user, "LOGNAME": user})
    if confined:
        env["TMPDIR"] = "/tmp"  # the sandbox's own
    for setting in [*(job.common_environment_settings if job else ()), *command.own_env]:
        env[setting["name"]] = setting.get("value") or ""
    env.update({
        "AZ_BATCH_ACCOUNT_NAME": command.account,
        "AZ_BATCH_POOL_ID": command.pool_id,
        "AZ_BATCH_NODE_ID": node_id,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": str(node_root),
        "AZ_BATCH_NODE_SHARED_DIR": str(shared_dir(command.account)),
        "AZ_BATCH_NODE_STARTUP_DIR": str(startup_dir(command.account, node_id)),
        "AZ_BATCH_TASK_DIR": str(directory),
        "AZ_BATCH_TASK_WORKING_DIR": str(directory / "wd"),
        "AZ_BATCH_ACCOUNT_URL": settings.BATCHSITE_ACCOUNT_URL,
    })
    if command.task_id != "starttask":  # Batch gives the start task no task or job id
        env["AZ_BATCH_TASK_ID"] = command.task_id
    if job is None:
        return env
    env["AZ_BATCH_JOB_ID"] = job.batch_id
    if job.job_preparation_task:
        prep = node_task_dir(job, node_id, node_tasks.PREPARATION)
        env["AZ_BATCH_JOB_PREP_DIR"], env["AZ_BATCH_JOB_PREP_WORKING_DIR"] = str(prep), str(prep / "wd")
    return env


def sandbox_binds(command: Command, node_id: str) -> tuple[list[Path], list[Path]]:
    """What a sandboxed run may see of the node, (writable, read-only): its own directory,
    its account's shared directory, and its job's preparation directory on this node (as
    Batch defines them). The preparation's is read-only for tasks: the worker writes
    there as root when the preparation runs again, never beside a task that could
    swap its folders; the release task, run when every task has ended, may write it.
    """
    job, directory = command.job, command.directory
    shared = shared_dir(command.account)
    if not shared.is_dir():
        shared.mkdir(parents=True, exist_ok=True)
        shared.chmod(0o1777)  # every task user of the account writes there, as in /tmp
    writable, read_only = [directory, shared], []
    # What the pool's start task left in the node's startup directory (tools it installed),
    # read-only for the node's tasks, as AZ_BATCH_NODE_STARTUP_DIR tells them.
    startup = startup_dir(command.account, node_id)
    if startup != directory and startup.is_dir():
        read_only.append(startup)
    if job is not None and job.job_preparation_task:
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
