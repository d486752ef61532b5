"""Opening a file below a directory without following a symlink anywhere on the way.

A task can turn any name below the node root into a symlink at any moment, so a
read never checks a path and then opens it: it opens in one kernel call that
refuses a symlink at every component (openat2 with RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS), or, where the kernel lacks it, walks O_NOFOLLOW directory
descriptors. The open is the check.
"""

import ctypes
import errno
import functools
import os
import stat

_SYS_OPENAT2 = 437  # the same number on every Linux architecture (new syscalls share one table)
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _openat2(dir_fd: int, path: str, flags: int) -> int:
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
    for _ in range(8):
        fd = _libc().syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        error = ctypes.get_errno()
        if error not in (errno.EAGAIN, errno.EINTR):  # EAGAIN: a rename raced the lookup; try again
            break
    raise OSError(error, os.strerror(error), path)


@functools.cache
def _has_openat2() -> bool:
    """Whether this kernel (and its seccomp filter, in a container) lets us call openat2."""
    if not hasattr(os, "O_PATH"):
        return False
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(_openat2(root, ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
    except (OSError, AttributeError):
        return False  # ENOSYS (older kernel) or EPERM (a seccomp filter that does not know it)
    finally:
        os.close(root)
    return True


def open_beneath(dir_fd: int, parts: list[str], flags: int, *, walk: bool = False) -> int:
    """A descriptor of `parts` below the directory `dir_fd`, never through a symlink.

    A symlink at any component is ELOOP (or EXDEV); `parts` must hold no ".." (see
    split). `walk` forces the fallback, for the tests of it.
    """
    if not parts:
        return os.dup(dir_fd)
    if _has_openat2() and not walk:
        return _openat2(dir_fd, "/".join(parts), flags)
    current = dir_fd
    try:
        for name in parts[:-1]:
            try:
                following = os.open(name, DIRECTORY, dir_fd=current)
            except NotADirectoryError:
                # O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR; say ELOOP, as openat2 does.
                if stat.S_ISLNK(os.stat(name, dir_fd=current, follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), name) from None
                raise
            if current != dir_fd:
                os.close(current)
            current = following
        return os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)
