"""A compute node's files, as the node file API names them: relative to the node's directory.

    startup/   the pool's start task's directory on this node (stdout.txt, stderr.txt, wd/):
               tasks.files.startup_dir, AZ_BATCH_NODE_STARTUP_DIR
    shared/    the node's shared directory as its tasks see it (AZ_BATCH_NODE_SHARED_DIR):
               the pool's account's share of it (tasks.files.shared_dir)

Nothing else of the node root is named: not another node's directories, not
another account's share, not the data of the worker. Task directories, which
Batch shows under workitems/, are not mapped: a Batchsite task has one directory
whichever node ran it (the last, after a requeue), so a node cannot call it its
own; they are served by the task file API (a task's nodeInfo.taskRootDirectoryUrl).

Everything below startup/ and shared/ is written by tasks, which may be hostile:
reads and listings go through tasks.files and tasks.listing (no symlink followed
at any component, regular files only), and a delete opens the parent directory
the same way, then acts on the last name relative to it without following it
(a symlink there is removed itself, never what it points to).
"""

import errno
import os
import stat
from functools import partial
from pathlib import Path

from batchapi.errors import BatchError
from tasks.beneath import FILE, open_beneath
from tasks.files import (
    TaskFile,
    file_not_found,
    invalid_file_path,
    open_below_root,
    open_entry,
    shared_dir,
    split,
    startup_dir,
)
from tasks.listing import FileEntry, Listing, describe
from tasks.rundirs import remove_tree


def directories(account_name: str, node_id: str) -> dict[str, Path]:
    """The node's top-level directories by name, in name order."""
    tops = {"shared": shared_dir(account_name)}
    # A node id is its worker's --name: one that is not a single plain component
    # (`..`, `a/b`) would name a place beside its own directory, so it has none.
    if node_id not in ("", ".", "..") and "/" not in node_id and "\0" not in node_id:
        tops["startup"] = startup_dir(account_name, node_id)
    return tops


def locate(account_name: str, node_id: str, path: str) -> tuple[Path | None, list[str]]:
    """(the top-level directory `path` is in, its components below it); (None, []) for the node's root.

    400 InvalidFilePath for a path that leaves the node's directory (absolute, `..`);
    404 FileNotFound below no top-level directory.
    """
    parts = split(path)
    if not parts:
        return None, []
    top = directories(account_name, node_id).get(parts[0])
    if top is None:
        raise file_not_found(path)
    return top, parts[1:]


def open_node_entry(account_name: str, node_id: str, path: str) -> TaskFile:
    """Open `path` of the node: a regular file or a directory (tasks.files.open_entry).

    BatchError for a path that leaves the node's directory or is nowhere in it; Unreadable
    for one that is missing, leads through a symlink, or is neither file nor directory.
    """
    directory, parts = locate(account_name, node_id, path)
    if directory is None:
        raise file_not_found(path)
    return open_entry(directory, parts, path)


def list_node_files(account_name: str, node_id: str, *, recursive: bool, limit: int, after: str = "",
                    startswith: str = "") -> list[FileEntry]:
    """The node's files in name order (tasks.listing), `limit` of them after `after`: its
    top-level directories that exist, and with `recursive` (or a prefix naming one) what
    is in them."""
    listing = Listing(recursive=recursive, limit=limit, after=after, startswith=startswith)
    for name, directory in directories(account_name, node_id).items():
        try:
            top = open_below_root(directory)
        except OSError:
            continue  # not made yet (no start task ran), or not a directory we follow
        try:
            if not listing.visit(describe(name, os.fstat(top)), partial(os.dup, top), 1):
                break
        finally:
            os.close(top)
    return listing.found


def delete_node_file(account_name: str, node_id: str, path: str, *, recursive: bool) -> None:
    """Delete the file (or directory: empty, or with `recursive` whole) `path` of the node.

    The top-level directories are the node's and stay. BatchError: InvalidFilePath (400)
    for a path that leaves the node's directory, leads through a symlink or names a
    top-level directory; FileNotFound (404); DirectoryNotEmpty (409) for a directory with
    something in it and no `recursive`; FileDeleteFailed (409) for what cannot be removed.
    """
    directory, parts = locate(account_name, node_id, path)
    if directory is None or not parts:
        raise BatchError("InvalidFilePath", "The node's own directories cannot be deleted.", 400, {
            "FilePath": path, "Reason": "delete what is in startup or shared, not the directory itself"})
    parent = _open_parent(directory, parts, path)
    name = parts[-1]
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            os.unlink(name, dir_fd=parent)  # a symlink goes itself, never what it points to
        elif not recursive:
            os.rmdir(name, dir_fd=parent)
        else:
            remove_tree(name, dir_fd=parent)  # descriptors all the way down, no link followed
            if _exists(name, parent):
                raise OSError(errno.EBUSY, "some of it could not be removed")
    except FileNotFoundError:
        raise file_not_found(path) from None
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise BatchError("DirectoryNotEmpty", "The directory is not empty: delete it with recursive=true.",
                             409, {"FilePath": path}) from None
        raise BatchError("FileDeleteFailed", "The file could not be deleted.", 409,
                         {"FilePath": path, "Reason": error.strerror or str(error)}) from None
    finally:
        os.close(parent)


def _open_parent(directory: Path, parts: list[str], path: str) -> int:
    try:
        base = open_below_root(directory)
    except OSError:
        raise file_not_found(path) from None
    try:
        # Not O_DIRECTORY: with it, a symlink at the end says ENOTDIR, not ELOOP. fstat says what it is.
        parent = open_beneath(base, parts[:-1], FILE)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EXDEV):
            raise invalid_file_path(path) from None
        raise file_not_found(path) from None
    finally:
        os.close(base)
    if not stat.S_ISDIR(os.fstat(parent).st_mode):
        os.close(parent)
        raise file_not_found(path)
    return parent


def _exists(name: str, parent: int) -> bool:
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True

