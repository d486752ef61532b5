"""Where a task's command runs: a bubblewrap sandbox, as an unprivileged user.

A task is hostile code. Azure Batch runs it as a non-admin auto-user unless its
`userIdentity` asks for elevation; Batchsite does the same and more. Inside the
sandbox a command sees:
- the system read-only (`/` bound read-only), its own /proc (a PID namespace:
  the worker and every other task are invisible and cannot be signalled), its
  own /tmp and /dev/shm, the network;
- its own task directory (writable), its account's share of the node's shared
  directory, and the job preparation directory of its job on this node;
- nothing of the service: the data directory, the database files, the secret
  key, the blob storage, every other task's directory and the service's own
  installation are covered by empty directories.

Who it runs as (the worker as root, the usual case):
- nonadmin (the default): a dedicated unprivileged user, `batchsite-task`, that
  the worker creates when it is missing. bubblewrap runs as root to build the
  mounts, keeps only the capabilities to change user, and `setpriv` drops to the
  task user, with no capabilities left and no way to gain any (no_new_privs);
- admin: the worker's own user, still sandboxed, with every capability dropped;
- a named `userName`: only a user this node lists (BATCHSITE_NODE_USERS), never
  root; anything else fails the task with NodeUserNotFound.
A worker run by an unprivileged user cannot change user: bubblewrap puts its
tasks in a user namespace of their own, which with the hidden paths and the PID
namespace keeps them from the worker's files and processes.

The sandbox dies with its worker (`--die-with-parent` on each process of the
sandbox; the PID namespace ends with its first process), so a `kill -9` of the
worker ends every process its tasks started, and a requeued task never runs
beside its earlier self.

Where no sandbox can be had (no bubblewrap, user namespaces off), the worker
refuses to start unless told that tasks may run unconfined; then they run as the
worker itself, as before, and the worker says so loudly.
"""

import ctypes
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger("batchsite.worker")

ADMIN, NONADMIN = "admin", "nonadmin"
# The worker's umask is 077 (its data is private); a task's, and the folders bubblewrap
# makes for it on the way to its directory, are the usual 022.
TASK_UMASK = 0o022


class ContainmentUnavailable(Exception):
    """This machine cannot sandbox tasks: why, in words an operator can act on."""


class IdentityRefused(Exception):
    """A task asked to run as a user this node does not offer; becomes its failureInfo."""

    def __init__(self, user: str, reason: str):
        super().__init__(reason)
        self.failure = {"category": "usererror", "code": "NodeUserNotFound",
                        "message": f"The task cannot run as user {user!r}: {reason}",
                        "details": [{"name": "UserName", "value": user}]}


@dataclass(frozen=True)
class RunAs:
    """A Unix user a command runs as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> "RunAs":
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def current(cls) -> "RunAs":
        try:
            return cls.of(pwd.getpwuid(os.getuid()))
        except KeyError:  # a uid with no name (containments of containers)
            return cls(str(os.getuid()), os.getuid(), os.getgid())


# --- what the sandbox hides ------------------------------------------------------------


def hidden_paths() -> list[Path]:
    """Everything of the service a task must not see, outermost first.

    The data directory holds the SQLite database, the secret key, the blob storage
    and the task directories by default; each may be moved elsewhere by a setting,
    so each is named. The service's installation and the worker user's home (where
    credentials of every kind live) go too. BATCHSITE_SANDBOX_HIDE adds more.
    """
    candidates = [settings.DATA_DIR, settings.BASE_DIR, settings.BATCHSITE_NODE_ROOT,
                  settings.BATCHSITE_STORAGE_ROOT, settings.STATIC_ROOT]
    for database in settings.DATABASES.values():
        if database["ENGINE"].endswith("sqlite3") and str(database["NAME"]) != ":memory:":
            candidates.append(Path(database["NAME"]).parent)
    for storage in settings.STORAGES.values():
        if location := (storage.get("OPTIONS") or {}).get("location"):
            candidates.append(Path(location))
    if settings.MEDIA_ROOT:
        candidates.append(Path(settings.MEDIA_ROOT))
    home = Path(os.path.expanduser("~"))
    if home != Path("/"):
        candidates.append(home)
    candidates += [Path(p) for p in settings.BATCHSITE_SANDBOX_HIDE]
    chosen: list[Path] = []
    # /tmp, /dev and /proc are the sandbox's own already; "/" would hide the system.
    already = [Path("/tmp"), Path("/dev"), Path("/proc")]
    for path in sorted({Path(os.path.abspath(p)) for p in candidates}, key=lambda p: len(p.parts)):
        if path == Path("/") or any(path.is_relative_to(a) for a in [*already, *chosen]):
            continue
        chosen.append(path)
    return chosen


def is_hidden(path: Path, hidden: list[Path], binds: list[Path]) -> bool:
    path = Path(os.path.abspath(path))
    if any(path.is_relative_to(b) for b in binds):
        return False
    return any(path.is_relative_to(h) for h in hidden)


def task_python() -> str:
    """A Python interpreter sandboxed tasks can run (the demo's tasks use it).

    Not Batchsite's own: its virtualenv, often under a private home, is hidden
    from tasks. The system's, where every user may run it.
    """
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or ""):
        real = Path(os.path.realpath(candidate)) if candidate else None
        if real and real.exists() and all(os.stat(p).st_mode & 0o001 for p in [real, *real.parents]):
            return candidate
    return sys.executable  # no system Python: fine for an unconfined worker only


# --- the node's users --------------------------------------------------------------------


def ensure_task_user(name: str) -> RunAs:
    """The dedicated user nonadmin tasks run as, created (system user, no home, no shell) if missing."""
    try:
        return RunAs.of(pwd.getpwnam(name))
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                             "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True)
    try:  # another worker may have made it meanwhile: what counts is that it exists now
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ContainmentUnavailable(
            f"the task user {name!r} does not exist and could not be created ({result.stderr.strip() or 'useradd '}"
            f"exited {result.returncode}); create it, or name another in BATCHSITE_TASK_USER") from None
    log.info("created the task user %s (uid %d)", name, entry.pw_uid)
    return RunAs.of(entry)


# --- containment -----------------------------------------------------------------------------


@dataclass
class Containment:
    """How this worker runs commands: in a sandbox (bwrap set) or unconfined."""

    bwrap: str | None
    worker: RunAs
    nonadmin: RunAs
    hidden: list[Path]
    node_users: frozenset[str]
    setpriv: str | None = None
    why_unconfined: str = ""

    @property
    def confined(self) -> bool:
        return self.bwrap is not None

    @property
    def switches_user(self) -> bool:
        """Whether commands can run as a user other than the worker's (a root worker)."""
        return self.confined and self.worker.uid == 0

    def describe(self) -> str:
        if not self.confined:
            return (f"UNCONFINED ({self.why_unconfined}): tasks run as the worker's own user and can read the "
                    "service's data and secrets")[:200]
        who = f"user {self.nonadmin.name}" if self.switches_user else "the worker's user, in a user namespace"
        return f"sandboxed (bubblewrap); nonadmin tasks run as {who}"

    @classmethod
    def for_worker(cls, *, allow_unconfined: bool = False) -> "Containment":
        """This machine's containment, checked by running a command in it.

        Raises ContainmentUnavailable when tasks cannot be sandboxed and `allow_unconfined`
        was not asked for.
        """
        worker = RunAs.current()
        allow_unconfined = allow_unconfined or settings.BATCHSITE_ALLOW_UNCONFINED_TASKS
        node_users = frozenset(settings.BATCHSITE_NODE_USERS)
        try:
            containment = cls._confined(worker, node_users)
            containment.check()
            return containment
        except ContainmentUnavailable as why:
            if not allow_unconfined:
                raise
            log.warning("tasks cannot be sandboxed here (%s)", why)
            return cls(bwrap=None, worker=worker, nonadmin=worker, hidden=[], node_users=node_users,
                       setpriv=shutil.which("setpriv"), why_unconfined=str(why))

    @classmethod
    def _confined(cls, worker: RunAs, node_users: frozenset[str]) -> "Containment":
        bwrap = shutil.which(settings.BATCHSITE_BWRAP)
        if bwrap is None:
            raise ContainmentUnavailable(f"bubblewrap ({settings.BATCHSITE_BWRAP}) is not installed: "
                                         "apt-get install bubblewrap")
        setpriv = None
        nonadmin = worker
        if worker.uid == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise ContainmentUnavailable("setpriv (util-linux) is missing: it drops tasks to their user")
            nonadmin = ensure_task_user(settings.BATCHSITE_TASK_USER)
            if nonadmin.uid == 0:
                raise ContainmentUnavailable(f"the task user {nonadmin.name!r} is root")
        return cls(bwrap=bwrap, worker=worker, nonadmin=nonadmin, hidden=hidden_paths(), node_users=node_users,
                   setpriv=setpriv)

    def check(self) -> None:
        """Run one command the way tasks run, so a machine that cannot is found at start, not per task."""
        with tempfile.TemporaryDirectory(prefix="batchsite-sandbox-check-") as scratch:
            directory = Path(scratch) / "task"
            for fd in prepare_run_directory(directory):
                os.close(fd)
            self.hand_over(directory, self.nonadmin)
            probe = self.hidden[0] if self.hidden else Path("/nonexistent")
            argv = ["/bin/sh", "-c", 'test -w "$2/stdout.txt" && ! ls "$1"/* >/dev/null 2>&1', "sh", str(probe),
                    str(directory)]
            proc = subprocess.run(self.command(argv, directory=directory, binds=[directory], run_as=self.nonadmin),
                                  cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                                  timeout=30, umask=TASK_UMASK)
        if proc.returncode != 0:
            raise ContainmentUnavailable(f"bubblewrap could not run a task here (exit {proc.returncode}: "
                                         f"{proc.stderr.strip()[:300] or 'the hidden paths were visible'})")

    # --- who a task runs as ---------------------------------------------------------------

    def identity(self, user_identity: dict | None) -> RunAs:
        """The user a command with this `userIdentity` runs as; IdentityRefused if the node has none such."""
        spec = user_identity or {}
        if name := spec.get("userName"):
            name = str(name)
            if name not in self.node_users:
                raise IdentityRefused(name, "it is not one of this node's user accounts (BATCHSITE_NODE_USERS)")
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                raise IdentityRefused(name, "no such user exists on this node") from None
            if entry.pw_uid == 0:
                raise IdentityRefused(name, "tasks never run as root")
            if entry.pw_uid != self.worker.uid and not self.switches_user:
                raise IdentityRefused(name, f"this worker runs as {self.worker.name} and cannot switch users")
            return RunAs.of(entry)
        elevation = str((spec.get("autoUser") or {}).get("elevationLevel") or NONADMIN).lower()
        return self.worker if elevation == ADMIN else self.nonadmin

    # --- the command line --------------------------------------------------------------------

    def command(self, argv: list[str], *, directory: Path, binds: list[Path], run_as: RunAs,
                info_fd: int | None = None) -> list[str]:
        """The argv that runs `argv` in `directory`/wd, sandboxed when this worker can.

        With `info_fd`, bubblewrap writes there the pid of the sandbox's first process
        (see `sandbox_usage`).
        """
        if not self.confined:
            # Unconfined, the task at least dies with its worker (its direct child, that is).
            return [self.setpriv, "--pdeathsig", "KILL", "--", *argv] if self.setpriv else argv
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/dev/shm"]
        covered = [Path("/tmp")]
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
                covered.append(path)
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        made: set[Path] = set()
        for path in sorted({Path(os.path.abspath(b)) for b in binds}, key=lambda p: len(p.parts)):
            # The way down to a bound directory through a covered one is made afresh, open to
            # all (bubblewrap would copy the modes of the host's folders, private ones among them).
            for parent in reversed(path.parents):
                if parent not in made and any(parent != c and parent.is_relative_to(c) for c in covered):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += ["--bind", str(path), str(path)]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        args += ["--chdir", str(directory / "wd"), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if self.worker.uid != 0:
            return [*args, "--unshare-user", "--", *argv]
        if run_as.uid == 0:
            return [*args, "--", *argv]
        # bubblewrap keeps what setpriv needs to become the task user and to empty the
        # bounding set; after setpriv nothing is left, and no_new_privs keeps it so.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        return [*args, "--", self.setpriv, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--", *argv]

    def visible_program(self, program: str, *, path: str, cwd: Path, binds: list[Path]) -> bool:
        """Whether the program can be found as the sandbox will look for it: on the host, and
        not in a hidden folder (the sandbox sees those empty, so its PATH search goes on)."""
        if "/" in program:
            candidates = [cwd / program]
        else:
            candidates = [Path(folder or ".") / program for folder in path.split(os.pathsep)]
        for found in candidates:
            if os.path.isfile(found) and os.access(found, os.X_OK):
                if not (self.confined and is_hidden(found, self.hidden, binds)):
                    return True
        return False

    # --- files the task owns ------------------------------------------------------------------

    def hand_over(self, directory: Path, run_as: RunAs) -> None:
        """Make the task's directory (and all in it) the task user's, never following a link."""
        if run_as.uid == self.worker.uid or not self.switches_user:
            return
        os.lchown(directory, run_as.uid, run_as.gid)
        for folder, dirs, files in os.walk(directory, followlinks=False):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(folder, name), run_as.uid, run_as.gid)


# --- what a sandboxed run used -------------------------------------------------------------
#
# bubblewrap reports its command's exit status as soon as the sandbox's first
# process (its init, the one that waits for the command) has it, and exits without
# reaping that init; the CPU and I/O the command used are in the init's resource
# usage, which would be lost. So the worker is a child subreaper: the init, orphaned,
# becomes its child, and the worker reaps it for its usage.

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def sandbox_usage(info_fd: int):
    """The resource usage of the sandbox whose bubblewrap wrote `info_fd` and has ended; None if unknown."""
    try:
        data = b""
        while chunk := os.read(info_fd, 65536):
            data += chunk
        pid = int(json.loads(data)["child-pid"])
        return os.wait4(pid, 0)[2]
    except (OSError, ValueError, KeyError, TypeError):  # not our child after all, or nothing written
        return None


def prepare_run_directory(directory: Path) -> tuple[int, int]:
    """Make `directory` ready for a run and open its stdout.txt and stderr.txt: (fd, fd).

    An earlier run of the same task may have left anything behind: `wd`,
    stdout.txt or stderr.txt replaced by symlinks to files of the worker's (which
    opening "stdout.txt" for writing would then truncate), or by FIFOs. So the
    directory is opened without following a link, and the three are made anew
    relative to it, never followed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        # Open to all (the worker's umask is 077): bubblewrap enters the directory with no
        # capabilities, before it becomes the task user. Outside the sandbox the data
        # directory above keeps everyone else out.
        os.fchmod(fd, 0o755)
        _make_directory_at(fd, "wd")
        return tuple(_create_at(fd, name) for name in ("stdout.txt", "stderr.txt"))
    finally:
        os.close(fd)


def _make_directory_at(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    else:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=dir_fd)
            os.mkdir(name, 0o755, dir_fd=dir_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o755)
    finally:
        os.close(fd)


def _create_at(dir_fd: int, name: str) -> int:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    os.fchmod(fd, 0o644)
    return fd
