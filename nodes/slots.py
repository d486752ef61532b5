"""What this node's slots hold: one entry per piece of work, and the phase it is in.

A task takes its slots (requiredSlots, 1 unless it says) from its claim until its run is recorded: while its resource
files come in, while it waits for its job's preparation on this node, while it
runs, and while its output files go out. A job's preparation or release task takes
none: Batch runs it beside the job's tasks, not instead of one.
"""

import enum
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from tasks.models import NodeTask, Task

from .identities import RunAs
from .processes import Command, Run


@dataclass(eq=False)
class StartTask:
    """The pool's start task as this node runs it: `attempt` moves on with every run."""

    spec: dict
    account: str
    pool_id: str
    attempt: int = 1


class Phase(enum.Enum):
    STAGING_IN = "staging-in"  # its resource files are coming in, on a staging thread
    WAITING = "waiting-for-preparation"  # claimed `preparing`: the job's preparation runs here first
    RUNNING = "running"
    STAGING_OUT = "staging-out"  # its run has ended; it is recorded once its outputs are up


STAGING = (Phase.STAGING_IN, Phase.STAGING_OUT)


@dataclass(eq=False)
class Work:
    """A task, or a job's preparation or release task, between its claim (or start) and its record."""

    row: Task | NodeTask | StartTask
    phase: Phase
    command: Command | None = None  # None while it waits for the preparation
    run_as: RunAs | None = None
    run: Run | None = None  # from RUNNING on
    transfer: Future | None = None  # in a staging phase: the thread's, its outcome the failure or None
    cancelled: bool = False  # the run was ended elsewhere (terminated, deleted, requeued): not ours to record

    @property
    def key(self) -> tuple:
        row = self.row
        if isinstance(row, StartTask):
            return START_TASK
        return ("task", row.pk) if isinstance(row, Task) else ("node", row.job_id, row.kind)

    @property
    def takes_slot(self) -> bool:
        return isinstance(self.row, Task)

    @property
    def attempt(self) -> int:
        return self.row.attempt

    @property
    def label(self) -> str:
        row = self.row
        if isinstance(row, Task):
            return f"task {row.job.batch_id}/{row.batch_id}"
        if isinstance(row, StartTask):
            return f"pool {row.pool_id}: start task"
        return f"job {row.job.batch_id}: {row.kind} task"


START_TASK = ("start",)


def node_task_key(job_pk: int, kind: str) -> tuple:
    return ("node", job_pk, kind)


class Slots:
    """Every piece of work on this node, by key; the loop changes an entry's phase as it moves on."""

    def __init__(self):
        self._work: dict[tuple, Work] = {}

    def __iter__(self) -> Iterator[Work]:
        return iter(list(self._work.values()))  # a copy: the loop adds and removes while it walks

    def __bool__(self) -> bool:
        return bool(self._work)

    def add(self, work: Work) -> Work:
        self._work[work.key] = work
        return work

    def remove(self, work: Work) -> None:
        if self._work.get(work.key) is work:  # not a later entry of the same key (a preparation started again)
            del self._work[work.key]

    def holds(self, key: tuple) -> bool:
        return key in self._work

    def busy(self) -> int:
        """Slots taken: each task takes its requiredSlots."""
        return sum(work.row.required_slots for work in self._work.values() if work.takes_slot)

    def running_tasks(self) -> int:
        return sum(work.takes_slot for work in self._work.values())

    def in_phase(self, *phases: Phase) -> list[Work]:
        return [work for work in self._work.values() if work.phase in phases]

    def waiting_for(self, job_pk: int) -> list[Work]:
        """The job's tasks waiting for its preparation on this node."""
        return [work for work in self.in_phase(Phase.WAITING) if work.row.job_id == job_pk]

    def tasks(self) -> list[Work]:
        return [work for work in self._work.values() if isinstance(work.row, Task)]

    def clear(self) -> None:
        self._work.clear()
