"""The worker's writes into task directories: never through a link a task left there.

A task may turn any name below its directory into a symlink (to /etc, say), and
a worker writes there as root: stdout.txt and stderr.txt for each run, `wd`,
resource files. So every write goes through directory descriptors, one
component at a time, each opened without following a link (a link is an error,
never a way out), and every file is made anew (O_CREAT | O_EXCL | O_NOFOLLOW),
owned by the user the run is for (fchown on the descriptor, never a path).
The path down to a task directory is the worker's own; only what is below it
is the task's.
"""

import errno
import logging
import os
import secrets
import shutil
import stat
import subprocess
from pathlib import Path

log = logging.getLogger("batchsite.worker")

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Owner:
    """Who the files made for a run belong to: (uid, gid), or None to leave them the worker's."""

    def __init__(self, uid: int | None = None, gid: int | None = None):
        self.ids = (uid, gid) if uid is not None and uid != os.geteuid() else None

    def take(self, fd: int) -> None:
        if self.ids:
            os.fchown(fd, *self.ids)


WORKER = Owner()


def remove_tree(path: Path | str, *, dir_fd: int | None = None) -> None:
    """Remove a directory tree a task made, however deep, never following a link.

    shutil.rmtree recurses (on Python 3.11): a task that nests a few thousand
    folders would make it raise RecursionError, in the worker's loop. GNU rm walks
    any depth; it is the fallback.
    """
    try:
        shutil.rmtree(path, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:  # what cannot go stays; it must not stop the worker
        log.warning("could not remove %s: %s", path, exc)
    except RecursionError:
        where = f"/proc/{os.getpid()}/fd/{dir_fd}/{path}" if dir_fd is not None else str(path)
        subprocess.run(["rm", "-rf", "--one-file-system", "--", where], check=False, capture_output=True)


def make_private(folder: Path) -> bool:
    """Close `folder` to everyone but us (0700) where it is open to others; False where it is
    open and not ours to close."""
    if not folder.is_dir() or not folder.stat().st_mode & 0o077:
        return True
    if folder.stat().st_uid != os.geteuid():
        return False
    folder.chmod(0o700)
    return True


def open_directory(path: Path) -> int:
    """A descriptor of a directory whose last component a task may have replaced (never followed)."""
    return os.open(path, DIRECTORY)


def prepare_run_directory(directory: Path, owner: Owner = WORKER) -> tuple[int, int]:
    """Make `directory` ready for a run and open its stdout.txt and stderr.txt: (fd, fd).

    An earlier run of the same task may have left anything behind: `wd`,
    stdout.txt or stderr.txt replaced by symlinks to files of the worker's (which
    opening "stdout.txt" for writing would then truncate), or by FIFOs. So the
    three are made anew, relative to the directory, never followed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = open_directory(directory)
    try:
        # Open to all (the worker's umask is 077): bubblewrap enters the directory with no
        # capabilities, before it becomes the task user. Outside the sandbox the node
        # root above (0700) keeps everyone else out.
        os.fchmod(fd, 0o755)
        owner.take(fd)
        os.close(make_directory_at(fd, "wd", owner))
        return new_file_at(fd, "stdout.txt", owner), new_file_at(fd, "stderr.txt", owner)
    finally:
        os.close(fd)


def make_directory_at(dir_fd: int, name: str, owner: Owner = WORKER) -> int:
    """A descriptor of the directory `name` in `dir_fd`, made (owner's, 0755) if missing; a
    non-directory in its place is removed first, a symlink never followed."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        st = None
    if st is None:
        try:
            os.mkdir(name, 0o755, dir_fd=dir_fd)
        except FileExistsError:
            pass  # made meanwhile: opened below without following, whatever it is
    fd = os.open(name, DIRECTORY, dir_fd=dir_fd)
    os.fchmod(fd, 0o755)
    owner.take(fd)
    return fd


def new_file_at(dir_fd: int, name: str, owner: Owner = WORKER, mode: int = 0o644) -> int:
    """A new, empty file `name` in `dir_fd` for writing; what was there before (a file, a link,
    a FIFO, a directory) is removed, never followed."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(st.st_mode):
            remove_tree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    fd = os.open(name, NEW_FILE, mode, dir_fd=dir_fd)
    os.fchmod(fd, mode)
    owner.take(fd)
    return fd


def directories_beneath(dir_fd: int, parts: list[str], owner: Owner = WORKER) -> int:
    """A descriptor of parts below `dir_fd`, making missing directories on the way.

    A symlink on the way is an error (ELOOP): it is not ours to follow or remove.
    """
    current = os.dup(dir_fd)
    try:
        for name in parts:
            try:
                st = os.stat(name, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(name, 0o755, dir_fd=current)
                except FileExistsError:
                    pass
                else:
                    made = os.open(name, DIRECTORY, dir_fd=current)
                    owner.take(made)
                    os.close(made)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise OSError(errno.ELOOP, "a symlink is in the way", name)
            following = os.open(name, DIRECTORY, dir_fd=current)
            os.close(current)
            current = following
        return current
    except BaseException:
        os.close(current)
        raise


def write_beneath(dir_fd: int, parts: list[str], source, *, owner: Owner = WORKER, mode: int | None = None) -> None:
    """Write the stream `source` to the file `parts` below `dir_fd`, atomically.

    The file is written under a temporary name and renamed into place within one
    directory descriptor, so a symlink at the target is replaced, never written
    through, and a reader never sees half a file.
    """
    parent = directories_beneath(dir_fd, parts[:-1], owner)
    try:
        temporary = f".download-{secrets.token_hex(8)}"
        fd = os.open(temporary, NEW_FILE, 0o644, dir_fd=parent)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            os.fchmod(fd, int(str(mode), 8) if mode is not None else 0o644)
            owner.take(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temporary, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
        except OSError:
            os.unlink(temporary, dir_fd=parent)
            raise
    finally:
        os.close(parent)
