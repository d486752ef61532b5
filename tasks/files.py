"""Task directories on disk, laid out like a Batch node's, and safe reads from them.

    <node root>/workitems/<account>/<job id>/<task id>/stdout.txt
                                            /stderr.txt
                                            /wd/            the working directory
                                  /.node-<worker>/jobpreparation/…   (the same three)
                                                 /jobrelease/…

The Batch file API names files relative to the task directory ("stdout.txt",
"wd/out.csv"); nothing outside that directory can be named.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from batchapi.errors import BatchError


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


def shared_dir(account_name: str) -> Path:
    """AZ_BATCH_NODE_SHARED_DIR: Batch's per-node shared directory. A Batch node serves one
    account; a Batchsite worker serves them all, so each account has its own."""
    return Path(settings.BATCHSITE_NODE_ROOT) / "shared" / account_name


def file_not_found(path: str) -> BatchError:
    return BatchError("FileNotFound", "The specified file does not exist.", 404, {"FilePath": path})


def refuse_cleaned_up(task) -> None:
    """A task whose retentionTime passed has no files any more, and says so."""
    if task.files_removed_at is not None:
        # The Batch docs name the code (TaskFilesCleanedup), not the status; the
        # task is there, its files are not: 409, as for other states that forbid.
        raise BatchError("TaskFilesCleanedup", "The task's files have been cleaned up: its retention time "
                         "has passed.", 409, {"TaskId": task.batch_id})


def resolve(task, relative: str) -> Path:
    """The file `relative` names inside the task directory; never a path outside it.

    Refuses absolute paths, `..` and symlinks that lead out of the directory.
    """
    root = task_dir(task).resolve()
    candidate = (root / relative.lstrip("/")).resolve()
    if relative.startswith("/") or ".." in Path(relative).parts or not candidate.is_relative_to(root):
        raise BatchError("InvalidFilePath", "The file path is outside the task directory.", 400,
                         {"FilePath": relative})
    return candidate


@dataclass(frozen=True)
class FileEntry:
    name: str  # relative to the task directory, "/"-separated
    is_directory: bool
    size: int
    modified: datetime
    created: datetime


def entry(name: str, child: os.DirEntry) -> FileEntry:
    # lstat: a symlink is described as itself, never as what it points to outside.
    st = child.stat(follow_symlinks=False)
    is_directory = child.is_dir(follow_symlinks=False)
    return FileEntry(
        name=name,
        is_directory=is_directory,
        size=0 if is_directory else st.st_size,
        modified=datetime.fromtimestamp(st.st_mtime, UTC),
        created=datetime.fromtimestamp(st.st_ctime, UTC),
    )


def list_files(task, *, recursive: bool, limit: int, after: str = "") -> list[FileEntry]:
    """Files of the task directory in name order, `limit` of them after `after`.

    Walks in sorted order and stops at `limit`, so a directory of many files is
    never listed whole for one page. Symlinks are not followed.
    """
    root = task_dir(task)
    if not root.is_dir():
        return []
    found: list[FileEntry] = []

    def walk(directory: Path) -> bool:
        try:
            children = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return True
        for child in children:
            path = Path(child.path)
            name = path.relative_to(root).as_posix()
            if name > after:
                found.append(entry(name, child))
                if len(found) >= limit:
                    return False
            if recursive and child.is_dir(follow_symlinks=False) and not walk(path):
                return False
        return True

    walk(root)
    return found


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


def read_range(path: Path, start: int, end: int, chunk: int = 64 * 1024):
    """Yield bytes [start, end) of a file in chunks: never the whole file in memory."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            data = f.read(min(chunk, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
