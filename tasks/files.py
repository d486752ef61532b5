"""Task directories on disk, laid out like a Batch node's, and safe reads from them.

    <node root>/workitems/<account>/<job id>/<task id>/stdout.txt
                                            /stderr.txt
                                            /wd/            the working directory
                                  /.node-<worker>/jobpreparation/…   (the same three)
                                                 /jobrelease/…

The Batch file API names files relative to the task directory ("stdout.txt",
"wd/out.csv"); nothing outside that directory can be named.

Tasks write in their directories while we read them, and a task may be hostile:
it can turn any name below the node root into a symlink at any moment. So a
read never checks a path and then opens it (the name can change in between);
it opens the task directory from the node root, and the file from the task
directory, in one kernel call each that refuses a symlink at every component
(openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS; where the kernel lacks it,
a walk of O_NOFOLLOW directory descriptors). The open is the check. What was
opened is then described by fstat of that descriptor, and only a regular file
is read: a FIFO (opened O_NONBLOCK, so opening it cannot block) or a device is
refused.
"""

import errno
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from batchapi.errors import BatchError

from .beneath import DIRECTORY, FILE, open_beneath
from .listing import FileEntry, Listing


def job_dir(job) -> Path:
    # Job ids are unique within an account only, so the account names a level.
    return Path(settings.BATCHSITE_NODE_ROOT) / "workitems" / job.account.name / job.batch_id


def task_dir(task) -> Path:
    return job_dir(task.job) / task.batch_id


def working_dir(task) -> Path:
    return task_dir(task) / "wd"


def node_task_dir(job, node_id: str, kind: str) -> Path:
    """Where one worker runs the job's preparation or release task.

    Per worker, since several may share this machine's node root; the leading
    dot keeps it apart from every task's directory (task ids have no dots).
    """
    return job_dir(job) / f".node-{node_id}" / ("jobpreparation" if kind == "preparation" else "jobrelease")


def node_dir(account_name: str, node_id: str) -> Path:
    """A compute node's own directory (the root of its node files): its start task runs in
    `startup` there. Per node and account, since several nodes share this machine's node root."""
    return Path(settings.BATCHSITE_NODE_ROOT) / "nodes" / account_name / node_id


def startup_dir(account_name: str, node_id: str) -> Path:
    """AZ_BATCH_NODE_STARTUP_DIR: where the pool's start task runs on this node."""
    return node_dir(account_name, node_id) / "startup"


def shared_dir(account_name: str) -> Path:
    """AZ_BATCH_NODE_SHARED_DIR: Batch's per-node shared directory. A Batch node serves one
    account; a Batchsite worker serves them all, so each account has its own."""
    return Path(settings.BATCHSITE_NODE_ROOT) / "shared" / account_name


def file_not_found(path: str) -> BatchError:
    return BatchError("FileNotFound", "The specified file does not exist.", 404, {"FilePath": path})


def invalid_file_path(path: str) -> BatchError:
    return BatchError("InvalidFilePath", "The file path is outside the task directory.", 400, {"FilePath": path})


def refuse_cleaned_up(task) -> None:
    """A task whose retentionTime passed has no files any more, and says so."""
    if task.files_removed_at is not None:
        # The Batch docs name the code (TaskFilesCleanedup), not the status; the
        # task is there, its files are not: 409, as for other states that forbid.
        raise BatchError("TaskFilesCleanedup", "The task's files have been cleaned up: its retention time "
                         "has passed.", 409, {"TaskId": task.batch_id})


def split(relative: str) -> list[str]:
    """The components of a path the API names, relative to the task directory.

    Refuses absolute paths, `..` and NUL; "" and "." components are dropped.
    """
    if relative.startswith("/") or "\0" in relative:
        raise invalid_file_path(relative)
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise invalid_file_path(relative)
    return parts


def open_below_root(directory: Path) -> int:
    """A descriptor of `directory` (a path below the node root), opened without following symlinks.

    The node root is the operator's (it may be a symlink); everything below it a
    task can write to, so no symlink counts there. OSError when there is no
    such directory.
    """
    root = Path(settings.BATCHSITE_NODE_ROOT)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return open_beneath(root_fd, list(directory.relative_to(root).parts), DIRECTORY)
    finally:
        os.close(root_fd)


def open_task_dir(task) -> int:
    """A descriptor of the task's directory (open_below_root)."""
    return open_below_root(task_dir(task))


class Unreadable(Exception):
    """A task file that cannot be read, and why: `missing`, `symlink` or `not-a-file`."""

    def __init__(self, reason: str, path: str):
        super().__init__(reason, path)
        self.reason, self.path = reason, path

    def batch_error(self) -> BatchError:
        if self.reason == "symlink":
            return invalid_file_path(self.path)
        return file_not_found(self.path)


class TaskFile:
    """A regular file (or, from open_entry, a directory) of a task's or node's directory, open; its
    size and times are those of the open file."""

    def __init__(self, fd: int, st: os.stat_result, name: str):
        self.fd, self.stat, self.name = fd, st, name

    @property
    def size(self) -> int:
        return 0 if self.is_directory else self.stat.st_size

    @property
    def is_directory(self) -> bool:
        return stat.S_ISDIR(self.stat.st_mode)

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.stat.st_mtime, UTC)

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.stat.st_ctime, UTC)

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`: fewer only at the end of the file."""
        parts, want = [], length
        while want > 0:
            data = os.pread(self.fd, want, offset)
            if not data:
                break
            parts.append(data)
            offset += len(data)
            want -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_file(task, relative: str) -> TaskFile:
    """Open the regular file `relative` of the task directory for reading.

    Raises BatchError InvalidFilePath for a path that leaves the directory, and
    Unreadable for a name that is missing, leads through a symlink, or is not a
    regular file (a directory, a FIFO, a device).
    """
    return open_file_in(task_dir(task), relative)


def open_file_in(where: Path, relative: str) -> TaskFile:
    """As `open_file`, in directory `where` below the node root (a node's startup directory:
    the pool's start task writes there, as hostile as any task)."""
    parts = split(relative)
    if not parts:
        raise Unreadable("not-a-file", relative)
    return regular(open_entry(where, parts, relative), relative)


def open_entry(directory: Path, parts: list[str], shown: str) -> TaskFile:
    """Open `parts` (from split) below `directory` (below the node root): a regular file or a directory.

    Raises Unreadable, naming the path as `shown`, for a name that is missing, leads
    through a symlink, or is something else (a FIFO, a device).
    """
    try:
        base = open_below_root(directory)
    except OSError:
        raise Unreadable("missing", shown) from None
    try:
        fd = open_beneath(base, parts, FILE)
    except OSError as error:
        symlink = error.errno in (errno.ELOOP, errno.EXDEV)
        raise Unreadable("symlink" if symlink else "missing", shown) from None
    finally:
        os.close(base)
    st = os.fstat(fd)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        os.close(fd)
        raise Unreadable("not-a-file", shown)
    return TaskFile(fd, st, parts[-1] if parts else "")


def regular(file: TaskFile, shown: str) -> TaskFile:
    """`file` if it is a regular file; a directory is closed and refused (Unreadable not-a-file)."""
    if file.is_directory:
        file.close()
        raise Unreadable("not-a-file", shown)
    return file


# --- listing ----------------------------------------------------------------------------------


def list_files(task, *, recursive: bool, limit: int, after: str = "", startswith: str = "") -> list[FileEntry]:
    """Files of the task directory in name order, `limit` of them after `after` (tasks.listing)."""
    try:
        root = open_task_dir(task)
    except OSError:
        return []
    listing = Listing(recursive=recursive, limit=limit, after=after, startswith=startswith)
    try:
        listing.walk(root, "", 1)
    finally:
        os.close(root)
    return listing.found


# --- ranges -------------------------------------------------------------------------------------


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` (inclusive), `bytes=a-` or `bytes=-n` as [start, end); None for the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    try:
        if unit.strip().lower() != "bytes" or not dash or "," in spec:
            raise ValueError
        if first == "":
            start, end = max(size - int(last), 0), size
        else:
            start = int(first)
            end = size if last == "" else min(int(last) + 1, size)
        if start < 0 or start > end or (start >= size and size > 0):
            raise ValueError
    except ValueError:
        raise BatchError("InvalidRange", "The range specified is invalid for the current size of the resource.",
                         416, {"Range": header}) from None
    return start, end
