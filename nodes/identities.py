"""Who a command runs as: a Unix user of this node, and why a task may not have the one it asks for."""

import os
import pwd
from dataclasses import dataclass

from tasks.rundirs import Owner

ADMIN, NONADMIN = "admin", "nonadmin"


class IdentityRefused(Exception):
    """A task asked to run as a user this node does not offer; becomes its failureInfo."""

    def __init__(self, user: str, reason: str):
        super().__init__(reason)
        self.failure = {"category": "usererror", "code": "NodeUserNotFound",
                        "message": f"The task cannot run as user {user!r}: {reason}",
                        "details": [{"name": "UserName", "value": user}]}


@dataclass(frozen=True)
class RunAs:
    """A Unix user a command runs as; `root_inside`: as root of a user namespace of its own."""

    name: str
    uid: int
    gid: int
    root_inside: bool = False

    @property
    def owner(self) -> Owner:
        """Who the files the worker makes for the run belong to."""
        return Owner(self.uid, self.gid)

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> "RunAs":
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def current(cls) -> "RunAs":
        try:
            return cls.of(pwd.getpwuid(os.getuid()))
        except KeyError:  # a uid with no name (in some containers)
            return cls(str(os.getuid()), os.getuid(), os.getgid())
