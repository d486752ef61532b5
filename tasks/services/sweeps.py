"""Housekeeping: what any worker sweeps up every heartbeat, in bounded chunks.

Each sweep is safe to run from many workers at once: every change in it is a
compare-and-set or an idempotent delete.
"""

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from batchapi.errors import BatchError
from jobs import events
from jobs.models import OPEN_STATES, Job, JobState, OnAllTasksComplete
from jobs.services.lifecycle import settle_job, terminate_job, terminate_running_tasks_of_job
from jobs.transitions import count
from pools import node_counts
from pools.models import AGENT_STATES, ComputeNode
from pools.services.lifecycle import purge_deleted_pools
from pools.services.nodes import lose_nodes

from .. import counts
from ..files import job_dir, task_dir
from ..models import RUNNING_STATES, Task
from ..node_tasks import release_pending
from ..rundirs import remove_tree
from .runs import requeue_tasks

log = logging.getLogger(__name__)


def sweep(*, purge_for: float = 0.5) -> None:
    """Every sweep, once. Deleted jobs go in chunks for at most `purge_for` seconds, so a
    million-task delete neither blocks the worker nor takes for ever."""
    requeue_dead_workers()
    end_runs_of_ended_jobs()
    settle_jobs()  # wall clocks, and what a race between two finishing workers left unresolved
    remove_expired_task_files()  # retentionTime
    counts.thin_samples()
    node_counts.thin_samples()
    deadline = time.monotonic() + purge_for
    while purge_deleted_jobs() and time.monotonic() < deadline:
        pass
    purge_deleted_pools()


def requeue_dead_workers() -> int:
    """Nodes whose heartbeat stopped are lost (`unknown`) and their tasks requeued; so are tasks
    left running on a node that is no longer in any pool. Any worker may do this."""
    cutoff = timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT
    suspects = ComputeNode.objects.filter(state__in=AGENT_STATES, heartbeat_at__lt=cutoff).only(
        "pk", "name", "heartbeat_at")
    total = lose_nodes(suspects)
    # The partial index task_running_on_node holds only running tasks: a short read.
    holders = set(Task.objects.filter(state__in=RUNNING_STATES).values_list("node_id", flat=True).distinct())
    if not holders:
        return total
    gone = holders - set(ComputeNode.objects.filter(name__in=holders).values_list("name", flat=True))
    for node_id in sorted(gone):
        n = requeue_tasks(node_id=node_id)
        log.warning("node %s is in no pool; requeued %d task(s) it held", node_id, n)
        total += n
    return total


def end_runs_of_ended_jobs() -> int:
    """End tasks still running in a job that has completed.

    On PostgreSQL a claim that commits just after Terminate Job ended the job's
    running tasks can leave a run behind; workers sweep for such strays in their
    housekeeping, and the worker running one then sees it ended and kills it.
    """
    ended = Job.objects.filter(state__in=[JobState.COMPLETED, JobState.TERMINATING],
                               tasks__state__in=RUNNING_STATES).distinct()
    total = 0
    for job in ended:
        with transaction.atomic():
            total += terminate_running_tasks_of_job(job=job)
    return total


def settle_jobs() -> int:
    """Settle open jobs that may be due, and end jobs past their maxWallClockTime."""
    due = Job.objects.filter(state__in=[*OPEN_STATES, JobState.TERMINATING]).filter(
        Q(state__in=[JobState.DISABLING, JobState.TERMINATING])
        | Q(on_all_tasks_complete=OnAllTasksComplete.TERMINATE_JOB))
    settled = 0
    for job in due.only("pk", "batch_id")[:100]:
        with transaction.atomic():
            settle_job(job)
        settled += 1
    now = timezone.now()
    limited = Job.objects.filter(state__in=OPEN_STATES, max_wall_clock_time__isnull=False)
    for job in limited.only("pk", "batch_id", "start_time", "max_wall_clock_time"):
        if job.start_time + job.max_wall_clock_time <= now:
            try:
                terminate_job(job=job, reason="MaxWallClockTimeExpiry")
            except BatchError:
                pass  # it ended meanwhile
            settled += 1
    return settled


def remove_expired_task_files(*, limit: int = 200) -> int:
    """Delete the directories of completed tasks whose retentionTime has passed.

    The rows stay; their files API then answers TaskFilesCleanedup. A task
    reactivated meanwhile is left alone (its expiry was cleared).
    """
    now = timezone.now()
    due = list(Task.objects.filter(files_expire_at__lte=now, files_removed_at=None)
               .select_related("job__account").only("pk", "batch_id", "job__batch_id", "job__account__name")
               .order_by("files_expire_at")[:limit])
    removed = 0
    for task in due:
        if Task.objects.filter(pk=task.pk, files_expire_at__lte=now, files_removed_at=None).update(
                files_removed_at=now):
            remove_tree(task_dir(task))
            removed += 1
    return removed


def purge_deleted_jobs(*, chunk: int = 5000) -> int:
    """Remove one chunk of the tasks of jobs being deleted; the job row once none is left.

    Returns how many rows went, so callers can loop until 0. Safe to run from many
    workers at once: each delete is idempotent.
    """
    removed = 0
    for job in Job.objects.filter(state=JobState.DELETING).only("pk", "batch_id")[:10]:
        if release_pending(job):
            continue  # its workers run its release task first
        with transaction.atomic():
            pks = list(Task.objects.filter(job_id=job.pk).values_list("pk", flat=True)[:chunk])
            if pks:
                # Counts stay exact to the end, like everywhere else.
                chunk_rows = Task.objects.filter(pk__in=pks)
                delta = dict.fromkeys((*counts.FIELDS, *counts.EXTRA_FIELDS), 0)
                groups = chunk_rows.values("state", "result").annotate(n=Count("pk"), slots=Sum("required_slots"))
                for row in groups.order_by():
                    for k, v in counts.bucket(row["state"], row["result"]).items():
                        delta[k] -= v * row["n"]
                        delta[counts.EXTRA[k]] -= v * (row["slots"] - row["n"])
                removed += chunk_rows.delete()[0]
                count(job.pk, delta)
                continue
        remove_tree(job_dir(job))
        with transaction.atomic():
            removed += Job.objects.filter(pk=job.pk, state=JobState.DELETING).delete()[0]
            events.job_changed(job.pk)
        log.info("job %s deleted", job.batch_id)
    return removed
