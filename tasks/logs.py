"""Reading a task's stdout and stderr for the dashboard: by byte range, never whole.

A viewer opens on the last 64 KiB (a 1 GB file opens as fast as a small one),
loads earlier chunks on request, and follows new bytes from an offset.

Each read opens the file as the file API does (files.open_file: no symlink
followed, nothing but a regular file read), so a task that puts a symlink or a
FIFO where its stdout.txt was shows nothing of it: the viewer says so.
"""

from dataclasses import dataclass
from pathlib import Path

from . import files

CHUNK = 64 * 1024
FOLLOW_LIMIT = 256 * 1024  # at most this much new output per live update
LOG_NAMES = ("stdout.txt", "stderr.txt")


@dataclass(frozen=True)
class LogChunk:
    name: str
    text: str
    start: int  # byte offsets of the text in the file: [start, end)
    end: int
    size: int  # the file's size when read
    refused: bool = False  # the name is there but not a regular file of the task directory

    @property
    def slug(self) -> str:
        return self.name.split(".")[0]

    @property
    def has_earlier(self) -> bool:
        return self.start > 0


def open_log(task, name: str) -> files.TaskFile | None:
    """The open log file; None when it is missing. Unreadable (refused) for a symlink or a non-file.

    `task` is a task, or the directory of another run that writes the same two logs
    (a node's start task: `files.startup_dir`).
    """
    if name not in LOG_NAMES:
        raise ValueError(name)
    try:
        return files.open_file_in(task if isinstance(task, Path) else files.task_dir(task), name)
    except files.Unreadable as unreadable:
        if unreadable.reason == "missing":
            return None
        raise


def read_before(task, name: str, end: int | None = None, chunk: int = CHUNK) -> LogChunk:
    """The chunk that ends at `end` (the file's end when None), starting on a line boundary."""
    try:
        log = open_log(task, name)
    except files.Unreadable:
        return LogChunk(name, "", 0, 0, 0, refused=True)
    if log is None:
        return LogChunk(name, "", 0, 0, 0)
    with log:
        size = log.size
        end = size if end is None else max(0, min(end, size))
        start = max(0, end - chunk)
        data = log.read(start, end - start) if end > start else b""
    end = start + len(data)  # shorter if the file shrank since fstat
    if start > 0:
        # Begin at the first whole line, unless the chunk is one long line.
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data, start = data[newline + 1:], start + newline + 1
    return LogChunk(name, data.decode("utf-8", "replace"), start, end, size)


def read_after(task, name: str, offset: int, *, whole_lines: bool) -> tuple[LogChunk, int]:
    """New output from `offset`: (the chunk, bytes skipped because too much came at once).

    With `whole_lines` (the task still runs), a trailing partial line waits for
    its end, unless it is long already. A refused file yields nothing new.
    """
    try:
        log = open_log(task, name)
    except files.Unreadable:
        return LogChunk(name, "", offset, offset, 0, refused=True), 0
    size = log.size if log else 0
    if size < offset:  # the file was rewritten (a retry starts a new run): start again
        offset = 0
    skipped = 0
    if size - offset > FOLLOW_LIMIT:
        skipped, offset = size - FOLLOW_LIMIT - offset, size - FOLLOW_LIMIT
    try:
        data = log.read(offset, size - offset) if size > offset else b""
    finally:
        if log:
            log.close()
    if whole_lines and not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        if cut >= 0:
            data = data[: cut + 1]
        elif len(data) < 8192:
            data = b""
    return LogChunk(name, data.decode("utf-8", "replace"), offset, offset + len(data), size), skipped
