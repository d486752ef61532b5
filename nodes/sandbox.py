"""Where a task's command runs: a bubblewrap sandbox, as an unprivileged user.

A task is hostile code. Azure Batch runs it as a non-admin auto-user unless its
`userIdentity` asks for elevation; Batchsite does the same and more. Inside the
sandbox a command sees:
- the system read-only (`/` bound read-only), its own /proc (a PID namespace:
  the worker and every other task are invisible and cannot be signalled), its
  own /tmp, /dev/shm and /run (no host socket: no database, D-Bus or container
  runtime socket to connect to), the network;
- its own task directory (writable), its account's share of the node's shared
  directory, and the job preparation directory of its job on this node (read-only);
- nothing of the service: the data directory, the database files, the secret
  key, the blob storage, every other task's directory, the service's own
  installation and the worker's home are covered by empty directories.

Who it runs as (the worker as root, the usual case):
- nonadmin (the default): a dedicated unprivileged user, `batchsite-task`, that
  the worker creates when it is missing. bubblewrap runs as root to build the
  mounts, keeps only the capabilities to change user, and `setpriv` drops to the
  task user, with no capabilities left and no way to gain any (no_new_privs);
- admin: the same user, as root of a user namespace of its own (`unshare
  --map-root-user`): uid 0 to itself, the task user to the host, so it owns no
  file and no socket of the host's root;
- a named `userName`: only a user this node lists (BATCHSITE_NODE_USERS), never
  root; anything else fails the task with NodeUserNotFound.
A worker run by an unprivileged user cannot change user: bubblewrap puts its
tasks in a user namespace of their own, which with the hidden paths and the PID
namespace keeps them from the worker's files and processes.

bubblewrap and setpriv run as root before the drop, so the task's environment
never reaches them: they run with a fixed one, and `env -i` sets the task's
only after the drop (LD_PRELOAD and the C library's message catalogues would
otherwise be read by root). bubblewrap takes its arguments from a memory file,
so the task's environment is not on its command line for the host to read.

The sandbox dies with its worker (`--die-with-parent` on each process of the
sandbox; the PID namespace ends with its first process), so a `kill -9` of the
worker ends every process its tasks started, and a requeued task never runs
beside its earlier self.

Where no sandbox can be had (no bubblewrap, user namespaces off), the worker
refuses to start unless told that tasks may run unconfined; then they run as the
worker itself, as before, and the worker says so loudly.
"""

import logging
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings

from tasks.rundirs import prepare_run_directory

from .identities import ADMIN, NONADMIN, IdentityRefused, RunAs
from .memfiles import CLEAN_ENVIRONMENT, TaskEnvironment

log = logging.getLogger("batchsite.worker")

# The worker's umask is 077 (its data is private); a task's, and the folders bubblewrap
# makes for it on the way to its directory, are the usual 022.
TASK_UMASK = 0o022


class ContainmentUnavailable(Exception):
    """This machine cannot sandbox tasks: why, in words an operator can act on."""


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
    unshare: str | None = None
    env: str = "/usr/bin/env"
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
                       setpriv=shutil.which("setpriv"), env=shutil.which("env") or "/usr/bin/env",
                       why_unconfined=str(why))

    @classmethod
    def _confined(cls, worker: RunAs, node_users: frozenset[str]) -> "Containment":
        bwrap = shutil.which(settings.BATCHSITE_BWRAP)
        if bwrap is None:
            raise ContainmentUnavailable(f"bubblewrap ({settings.BATCHSITE_BWRAP}) is not installed: "
                                         "apt-get install bubblewrap")
        setpriv = unshare = None
        nonadmin = worker
        if worker.uid == 0:
            setpriv, unshare = shutil.which("setpriv"), shutil.which("unshare")
            if setpriv is None or unshare is None:
                raise ContainmentUnavailable("setpriv or unshare (util-linux) is missing: they drop tasks to their "
                                             "user and give admin tasks a user namespace")
            nonadmin = ensure_task_user(settings.BATCHSITE_TASK_USER)
            if nonadmin.uid == 0 or nonadmin.gid == 0:
                raise ContainmentUnavailable(f"the task user {nonadmin.name!r} is root or in root's group")
        return cls(bwrap=bwrap, worker=worker, nonadmin=nonadmin, hidden=hidden_paths(), node_users=node_users,
                   setpriv=setpriv, unshare=unshare, env=shutil.which("env") or "/usr/bin/env")

    def check(self) -> None:
        """Run one command the way tasks run, so a machine that cannot is found at start, not per task."""
        with tempfile.TemporaryDirectory(prefix="batchsite-sandbox-check-") as scratch:
            directory = Path(scratch) / "task"
            for fd in prepare_run_directory(directory, self.nonadmin.owner):
                os.close(fd)
            probe = self.hidden[0] if self.hidden else Path("/nonexistent")
            # Written to, the hidden paths empty, and an admin task root of its own namespace only.
            script = 'test -w "$2/stdout.txt" && ! ls "$1"/* >/dev/null 2>&1 && test "$(id -u)" = 0'
            argv = ["/bin/sh", "-c", script, "sh", str(probe), str(directory)]
            admin = replace(self.nonadmin, root_inside=True)
            env = TaskEnvironment({"PATH": "/usr/bin:/bin"})
            try:
                command = self.command(argv, directory=directory, binds=[directory], run_as=admin, env=env)
                proc = subprocess.run(command, cwd="/", env=CLEAN_ENVIRONMENT, capture_output=True, text=True,
                                      timeout=30, umask=TASK_UMASK, pass_fds=[env.fd])
            finally:
                env.close()
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
            if entry.pw_uid == 0 or entry.pw_gid == 0:
                raise IdentityRefused(name, "tasks never run as root (nor in its group)")
            if entry.pw_uid != self.worker.uid and not self.switches_user:
                raise IdentityRefused(name, f"this worker runs as {self.worker.name} and cannot switch users")
            return RunAs.of(entry)
        elevation = str((spec.get("autoUser") or {}).get("elevationLevel") or NONADMIN).lower()
        if elevation == ADMIN and self.confined:
            return replace(self.nonadmin, root_inside=True)
        return self.nonadmin

    # --- the command line --------------------------------------------------------------------

    def command(self, argv: list[str], *, directory: Path, binds: list[Path], read_only: list[Path] = (),
                run_as: RunAs, env: "TaskEnvironment", info_fd: int | None = None) -> list[str]:
        """The argv that runs `argv` in `directory`/wd with the task's environment `env`, sandboxed
        when this worker can. Run it with CLEAN_ENVIRONMENT, passing env.fd (see TaskEnvironment).

        `binds` are writable in the sandbox, `read_only` readable. With `info_fd`,
        bubblewrap writes there the pid of the sandbox's first process (see
        `sandbox_usage`).
        """
        after = env.setter(self.env)
        if not self.confined:
            # Unconfined, the task at least dies with its worker (its direct child, that is).
            return [self.setpriv, "--pdeathsig", "KILL", "--", *after, *argv] if self.setpriv else [*after, *argv]
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                # Bounded: a tmpfs is memory. Big files belong in the task's directory.
                "--perms", "1777", "--size", str(settings.BATCHSITE_TASK_TMP_BYTES), "--tmpfs", "/tmp",
                "--perms", "1777", "--size", str(settings.BATCHSITE_TASK_TMP_BYTES), "--tmpfs", "/dev/shm",
                # Host sockets live here (the database's, D-Bus, systemd, container runtimes):
                # none is the task's. What name resolution needs comes back read-only.
                "--tmpfs", "/run", *resolver_binds()]
        covered = [Path("/tmp"), Path("/run")]
        if Path("/var/run").is_dir() and not Path("/var/run").is_symlink():
            args += ["--tmpfs", "/var/run"]
            covered.append(Path("/var/run"))
        for path in self.hidden:
            if path.is_dir():
                args += ["--tmpfs", str(path)]
                covered.append(path)
            elif path.exists():
                args += ["--ro-bind", "/dev/null", str(path)]
        made: set[Path] = set()
        mounts = [(Path(os.path.abspath(b)), "--bind") for b in binds]
        mounts += [(Path(os.path.abspath(b)), "--ro-bind") for b in read_only]
        for path, kind in sorted(mounts, key=lambda m: len(m[0].parts)):
            # The way down to a bound directory through a covered one is made afresh, open to
            # all (bubblewrap would copy the modes of the host's folders, private ones among them).
            for parent in reversed(path.parents):
                if parent not in made and any(parent != c and parent.is_relative_to(c) for c in covered):
                    args += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            args += [kind, str(path), str(path)]
        if info_fd is not None:
            args += ["--info-fd", str(info_fd)]
        args += ["--chdir", str(directory / "wd"), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                 "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if self.worker.uid != 0:
            inside = ["--uid", "0", "--gid", "0"] if run_as.root_inside else []
            return [*args, "--unshare-user", *inside, "--", *after, *argv]
        # bubblewrap keeps what setpriv needs to become the task user and to empty the
        # bounding set; after setpriv nothing is left, and no_new_privs keeps it so.
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]
        drop = [self.setpriv, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        inside = [self.unshare, "--user", "--map-root-user", "--"] if run_as.root_inside else []
        return [*args, "--", *drop, *inside, *after, *argv]

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


def resolver_binds() -> list[str]:
    """The folder /etc/resolv.conf leads to when it leads into /run (systemd-resolved,
    NetworkManager, resolvconf), read-only: tasks resolve names as the host does."""
    real = Path(os.path.realpath("/etc/resolv.conf"))
    if real.is_relative_to("/run") and real.exists():
        return ["--ro-bind", str(real.parent), str(real.parent)]
    return []


