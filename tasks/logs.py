"""Reading a task's stdout and stderr for the dashboard: by byte range, never whole.

A viewer opens on the last 64 KiB (a 1 GB file opens as fast as a small one),
loads earlier chunks on request, and follows new bytes from an offset.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from .files import task_dir

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

    @property
    def slug(self) -> str:
        return self.name.split(".")[0]

    @property
    def has_earlier(self) -> bool:
        return self.start > 0


def log_path(task, name: str) -> Path:
    if name not in LOG_NAMES:
        raise ValueError(name)
    return task_dir(task) / name


def size_of(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def read_before(task, name: str, end: int | None = None, chunk: int = CHUNK) -> LogChunk:
    """The chunk that ends at `end` (the file's end when None), starting on a line boundary."""
    path = log_path(task, name)
    size = size_of(path)
    end = size if end is None else max(0, min(end, size))
    start = max(0, end - chunk)
    data = b""
    if end > start:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        if start > 0:
            # Begin at the first whole line, unless the chunk is one long line.
            newline = data.find(b"\n")
            if 0 <= newline < len(data) - 1:
                data, start = data[newline + 1:], start + newline + 1
    return LogChunk(name, data.decode("utf-8", "replace"), start, end, size)


def read_after(task, name: str, offset: int, *, whole_lines: bool) -> tuple[LogChunk, int]:
    """New output from `offset`: (the chunk, bytes skipped because too much came at once).

    With `whole_lines` (the task still runs), a trailing partial line waits for
    its end, unless it is long already.
    """
    path = log_path(task, name)
    size = size_of(path)
    if size < offset:  # the file was rewritten (a retry starts a new run): start again
        offset = 0
    skipped = 0
    if size - offset > FOLLOW_LIMIT:
        skipped, offset = size - FOLLOW_LIMIT - offset, size - FOLLOW_LIMIT
    data = b""
    if size > offset:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(size - offset)
        if whole_lines and not data.endswith(b"\n"):
            cut = data.rfind(b"\n")
            if cut >= 0:
                data = data[: cut + 1]
            elif len(data) < 8192:
                data = b""
    return LogChunk(name, data.decode("utf-8", "replace"), offset, offset + len(data), size), skipped
