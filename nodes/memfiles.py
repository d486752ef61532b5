"""What passes into a sandbox through memory files, never on a command line: the task's
environment and bubblewrap's options.

The command line of a process is there for every user of the host to read, for
as long as it runs; a task's environment holds its token.
"""

import os
import re
import shlex

# All that bubblewrap and setpriv (root, before the drop) see of an environment.
CLEAN_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TaskEnvironment:
    """A task's environment, set only once every privilege is gone.

    bubblewrap and setpriv run as root before the drop and would obey the loader's
    and the C library's variables (LD_PRELOAD; LANGUAGE, for the catalogues of their
    messages...), so they get CLEAN_ENVIRONMENT. The task's variables go in a memory
    file, not on a command line (which every user of the host can read, and which
    would show the task's token); after the drop `/bin/sh` reads them from it and
    runs the program. A name no shell can set (rare: `MY-VAR`) is set
    by `env` on the command line instead.
    """

    def __init__(self, env: dict[str, str]):
        self.fd = os.memfd_create("task-environment", os.MFD_CLOEXEC)
        lines = [f"export {name}={shlex.quote(value)}\n" for name, value in env.items() if SHELL_NAME.fullmatch(name)]
        os.write(self.fd, "".join(lines).encode("utf-8", "surrogateescape"))
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.odd = [f"{name}={value}" for name, value in env.items() if not SHELL_NAME.fullmatch(name)]

    def setter(self, env_program: str = "/usr/bin/env") -> list[str]:
        """What goes before the task's argv: a shell that takes on the environment, then runs it."""
        # (The program inherits the descriptor, of its own environment: dash closes none above 9.)
        script = f'unset PATH LC_ALL; . /dev/fd/{self.fd}; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *([env_program, "--", *self.odd] if self.odd else [])]

    def close(self) -> None:
        os.close(self.fd)


def args_fd(argv: list[str]) -> tuple[list[str], int]:
    """bubblewrap's arguments through a memory file (`--args FD`), not its command line.

    The command line of a process is there for every user of the host to read, for
    as long as it runs, and bubblewrap's (its sandbox's first process shares it)
    would show what the sandbox hides and where; the task's environment is never
    on it (TaskEnvironment).
    """
    end = argv.index("--")  # the options go in the file; the command stays (bubblewrap wants it so)
    fd = os.memfd_create("bwrap-args", os.MFD_CLOEXEC)
    os.write(fd, b"".join(os.fsencode(arg) + b"\0" for arg in argv[1:end]))
    os.lseek(fd, 0, os.SEEK_SET)
    return [argv[0], "--args", str(fd), *argv[end:]], fd
