"""The rows about workers (Batch's nodes): a worker's life from start to stop.

Which process a row names, and whether it still lives, is the node's own knowledge
(it reads /proc there): the node passes its verdict in. Finding workers whose
heartbeat stopped, and requeueing their tasks, is a sweep (`sweeps.requeue_dead_workers`).
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import Worker, WorkerState
from .node_task_runs import forget_unfinished_releases
from .runs import requeue_tasks


class WorkerNameTaken(RuntimeError):
    """A live worker already goes by the name."""


@dataclass
class WorkerStart:
    """Who a starting worker is, as the node tells it."""

    name: str
    hostname: str
    pid: int
    slots: int
    confined: bool
    containment: str
    process_key: str


def register_worker(start: WorkerStart, *, predecessor_is_dead: Callable[[Worker], bool]) -> int:
    """Mark worker `start.name` running; how many tasks an earlier life of the name left running (requeued).

    Refused (WorkerNameTaken) while another process of the name lives: its row is not
    stopped, its heartbeat is fresh, and `predecessor_is_dead` (the node's look at the
    process the row names) cannot tell that it has ended.
    """
    now = timezone.now()
    stale_before = now - settings.BATCHSITE_WORKER_TIMEOUT
    with transaction.atomic():
        existing = Worker.objects.select_for_update().filter(name=start.name).first()
        if (existing and existing.state != WorkerState.STOPPED and existing.heartbeat_at > stale_before
                and not predecessor_is_dead(existing)):
            raise WorkerNameTaken(f"a worker named {start.name!r} is alive (pid {existing.pid} on "
                                  f"{existing.hostname}); give this one another --name")
        Worker.objects.update_or_create(name=start.name, defaults=dict(
            hostname=start.hostname, pid=start.pid, slots=start.slots, state=WorkerState.RUNNING,
            started_at=now, heartbeat_at=now, confined=start.confined, containment=start.containment,
            process_key=start.process_key))
    # Runs left behind by an earlier life of this name go back to the queue; the
    # release tasks it did not finish are owed again.
    requeued = requeue_tasks(node_id=start.name)
    forget_unfinished_releases(start.name)
    return requeued


def heartbeat(name: str) -> None:
    Worker.objects.filter(name=name).update(heartbeat_at=timezone.now())


def mark_stopping(name: str) -> None:
    """The worker claims no more; its runs get their grace to finish."""
    Worker.objects.filter(name=name).update(state=WorkerState.STOPPING)


def mark_stopped(name: str) -> None:
    Worker.objects.filter(name=name).update(state=WorkerState.STOPPED, heartbeat_at=timezone.now())
