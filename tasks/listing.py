"""Listing a directory tree that a task may write to: in name order, a page at a time, never through a symlink.

Shared by the task file API (a task's directory) and the node file API (a node's
startup and shared directories). Each directory is listed through a descriptor
opened from its parent's without following a symlink, so a task that swaps a
directory for a symlink mid-walk gets it refused, not followed; entries are
lstat-ed, never opened (a FIFO cannot block the listing).

The order is the walk's: by path component (`wd` and everything below it come
before `wd-old`), which is not the order of the names as strings ("wd-old" <
"wd/a", since "-" < "/"). A page starts after the last name of the previous one
in that same order, so no entry is lost or repeated between pages.
"""

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from .beneath import DIRECTORY

MAX_DEPTH = 64  # a recursive listing goes no deeper (each level holds a descriptor while it is walked)


@dataclass(frozen=True)
class FileEntry:
    name: str  # relative to the listed tree's root, "/"-separated
    is_directory: bool
    size: int
    modified: datetime
    created: datetime
    mode: int


def describe(name: str, st: os.stat_result) -> FileEntry:
    is_directory = stat.S_ISDIR(st.st_mode)
    return FileEntry(
        name=name,
        is_directory=is_directory,
        size=0 if is_directory else st.st_size,
        modified=datetime.fromtimestamp(st.st_mtime, UTC),
        created=datetime.fromtimestamp(st.st_ctime, UTC),
        mode=st.st_mode,
    )


def entry(name: str, child: os.DirEntry) -> FileEntry:
    # lstat: a symlink is described as itself, never as what it points to outside.
    return describe(name, child.stat(follow_symlinks=False))


def order(name: str) -> list[str]:
    """The key of the walk's order: a directory, then everything below it, then its next sibling."""
    return name.split("/")


class Listing:
    """One page of a listing: at most `limit` entries after `after`, whose names start with
    `startswith`. Without `recursive`, only the level the prefix names: "" lists the top,
    "startup/" what is in startup, "startup/std" the names in startup that begin so."""

    def __init__(self, *, recursive: bool, limit: int, after: str = "", startswith: str = ""):
        self.recursive, self.limit, self.startswith = recursive, limit, startswith
        self.after = order(after) if after else None
        self.level = startswith.count("/")  # the depth a non-recursive listing shows (0: the top)
        self.found: list[FileEntry] = []

    def visit(self, described: FileEntry, open_below: Callable[[], int], depth: int) -> bool:
        """Offer one entry (and, for a directory, what is below it); False once the page is full."""
        name = described.name
        shown = self.recursive or name.count("/") == self.level
        if shown and name.startswith(self.startswith) and (self.after is None or order(name) > self.after):
            self.found.append(described)
            if len(self.found) >= self.limit:
                return False
        if described.is_directory and depth < MAX_DEPTH and self._may_hold_more(name):
            try:
                below = open_below()
            except OSError:
                return True  # swapped for a symlink or removed since: not followed
            try:
                return self.walk(below, name + "/", depth + 1)
            finally:
                os.close(below)
        return True

    def _may_hold_more(self, name: str) -> bool:
        """Whether something below directory `name` can be on this page."""
        inside = name + "/"
        if not (inside.startswith(self.startswith) or self.startswith.startswith(inside)):
            return False  # nothing below it has the prefix
        if not self.recursive and name.count("/") >= self.level:
            return False  # below the level shown
        if self.after is not None:
            parts = order(name)
            # All of it comes before `after`, unless `after` is inside it.
            if parts < self.after and self.after[:len(parts)] != parts:
                return False
        return True

    def walk(self, directory: int, prefix: str, depth: int) -> bool:
        """Visit what is in `directory` (named `prefix`, "" or ending in "/"), in name order."""
        try:
            with os.scandir(directory) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except OSError:
            return True
        for child in children:
            try:
                described = entry(prefix + child.name, child)
            except OSError:
                continue  # gone since the directory was read
            if not self.visit(described, partial(os.open, child.name, DIRECTORY, dir_fd=directory), depth):
                return False
        return True
