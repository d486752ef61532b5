"""What a sandboxed run used.

bubblewrap reports its command's exit status as soon as the sandbox's first
process (its init, the one that waits for the command) has it, and exits without
reaping that init; the CPU and I/O the command used are in the init's resource
usage, which would be lost. So the worker is a child subreaper: the init, orphaned,
becomes its child, and the worker reaps it for its usage.
"""

import ctypes
import json
import os
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


_unreaped: set[int] = set()  # sandbox inits not yet ended when their bubblewrap had


def sandbox_usage(info_fd: int):
    """The resource usage of the sandbox whose bubblewrap wrote `info_fd` and has ended; None if unknown.

    Hardly waits (15 ms at most): the sandbox's init ends as its bubblewrap does, and
    one that has not yet is reaped on a later call (its usage lost).
    """
    for pid in list(_unreaped):
        if _reap(pid, wait=False) is not False:
            _unreaped.discard(pid)
    try:
        os.set_blocking(info_fd, False)
        pid = int(json.loads(os.read(info_fd, 65536))["child-pid"])
    except (OSError, ValueError, KeyError, TypeError):  # nothing written: the sandbox never started
        return None
    usage = _reap(pid, wait=True)
    if usage is False:
        _unreaped.add(pid)
        return None
    return usage


def _reap(pid: int, *, wait: bool):
    """The rusage of our child `pid` once it has ended; False if it has not yet; None if it is not ours."""
    for _ in range(4 if wait else 1):  # at most 15 ms: the init ends as its bubblewrap does
        try:
            reaped, _, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if reaped:
            return usage
        if wait:
            time.sleep(0.005)
    return False
