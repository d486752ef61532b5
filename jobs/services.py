"""Every change to a job: create, update, terminate, delete (and the purge after it)."""

import logging

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from batchapi.errors import BatchError, job_not_found
from batchapi.ids import id_key
from tasks import counts
from tasks.files import job_dir
from tasks.rundirs import remove_tree

from . import events
from .models import Job, JobState, OnAllTasksComplete

log = logging.getLogger(__name__)

# Fields Update Job (PATCH) may change, and what Replace Job (PUT) resets them to.
UPDATABLE = {
    "priority": 0,
    "max_parallel_tasks": -1,
    "allow_task_preemption": False,
    "max_wall_clock_time": None,
    "max_task_retry_count": 0,
    "on_all_tasks_complete": "noaction",
    "metadata": [],
    "pool_info": {},
}


def job_exists(batch_id: str) -> BatchError:
    return BatchError("JobExists", "The specified job already exists.", 409, {"JobId": batch_id})


def create_job(*, spec: dict) -> Job:
    """Add Job: the job row and its count rows, together. `spec` names the job's account."""
    now = timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                key=id_key(spec["batch_id"]), state=JobState.ACTIVE, state_transition_time=now,
                start_time=now, creation_time=now, last_modified=now, **spec,
            )
            counts.create_shards(job)
            if job.job_manager_task:
                _add_job_manager(job)
            events.job_changed(job.pk)
            settle_job(job)  # onAllTasksComplete terminatejob: no tasks counts as all complete
    except IntegrityError:
        if Job.objects.filter(account=spec["account"], key=id_key(spec["batch_id"])).exists():
            raise job_exists(spec["batch_id"]) from None
        raise
    return job


def _add_job_manager(job: Job) -> None:
    """The job manager is a task of its job, added with it so that it is the first to run.

    Tasks are claimed oldest first, so it starts before any task it adds.
    """
    from tasks.serializers import job_manager_fields
    from tasks.services import add_task

    add_task(job=job, spec=job_manager_fields(job.job_manager_task))


# States in which a job takes new tasks and changes.
OPEN_STATES = (JobState.ACTIVE, JobState.DISABLING, JobState.DISABLED, JobState.ENABLING)


def check_job_open(state: str) -> None:
    """A job that is completed, terminating or being deleted takes no more changes."""
    if state == JobState.DELETING:
        raise BatchError("JobBeingDeleted", "The specified job is being deleted.", 409)
    if state in (JobState.TERMINATING, JobState.COMPLETED):
        raise BatchError("JobCompleted", "The specified job is already in a completed state.", 409)


def lock_open_job(job: Job) -> None:
    """Lock the job's row for the rest of the transaction and check it still takes changes.

    Holding the lock (on PostgreSQL; SQLite's IMMEDIATE transaction already
    excludes other writers) means a concurrent Terminate or Delete Job waits for
    us, so nothing is added to or changed in a job that has just ended.
    """
    state = Job.objects.select_for_update().filter(pk=job.pk).values_list("state", flat=True).first()
    if state is None:
        raise job_not_found(job.batch_id)
    check_job_open(state)


def update_job(*, job: Job, changes: dict, replace: bool = False) -> Job:
    """Update Job (PATCH: the given fields) or Replace Job (PUT: unspecified fields reset)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    values = {**(UPDATABLE if replace else {}), **changes}
    with transaction.atomic():
        lock_open_job(job)
        values["last_modified"] = timezone.now()
        Job.objects.filter(pk=job.pk).update(**values)
        events.job_changed(job.pk)
        settle_job(job)
    job.refresh_from_db()
    return job


def _move(job: Job, state: str, *, from_states, **extra) -> bool:
    now = timezone.now()
    moved = Job.objects.filter(pk=job.pk, state__in=list(from_states)).update(
        state=state, previous_state=F("state"), previous_state_transition_time=F("state_transition_time"),
        state_transition_time=now, last_modified=now, **extra,
    )
    if moved:
        events.job_changed(job.pk)
    return bool(moved)


def _move_or_refuse(job: Job, state: str, *, from_states, error: BatchError) -> None:
    """Move the job, or raise what fits: JobBeingDeleted / JobCompleted if it is ending, else `error`."""
    if not _move(job, state, from_states=from_states):
        check_job_open(Job.objects.get(pk=job.pk).state)
        raise error


def terminate_job(*, job: Job, reason: str = "") -> None:
    """Terminate Job: running tasks end, active tasks are never scheduled, the job completes.

    The job is `terminating` while its running tasks are ended, here, in the same
    transaction (their workers see their runs ended and kill them), and then while
    its workers run its release task; `settle_job` completes it after the last.
    """
    from tasks.services import terminate_running_tasks_of_job

    with transaction.atomic():
        if not _move(job, JobState.TERMINATING, from_states=OPEN_STATES,
                     terminate_reason=reason or "UserTerminate"):
            check_job_open(Job.objects.get(pk=job.pk).state)  # raises the error that fits
        terminate_running_tasks_of_job(job=job)
        _complete_when_released(job)
    job.refresh_from_db()


def _complete_when_released(job: Job) -> None:
    """A terminating job completes once no live worker still owes it its release task."""
    from tasks.node_tasks import release_pending

    if not release_pending(job):
        _move(job, JobState.COMPLETED, from_states=(JobState.TERMINATING,), end_time=timezone.now())


def disable_job(*, job: Job, disable_tasks: str) -> None:
    """Disable Job: no new task is scheduled; the running ones are requeued, terminated or waited for.

    The job is `disabling` while running tasks remain (only `wait` leaves any) and
    becomes `disabled` when the last ends (`settle_job`).
    """
    from tasks.services import requeue_running_tasks_of_job, terminate_running_tasks_of_job

    if disable_tasks not in ("requeue", "terminate", "wait"):
        raise ValueError(disable_tasks)
    with transaction.atomic():
        _move_or_refuse(job, JobState.DISABLING, from_states=(JobState.ACTIVE,), error=BatchError(
            "JobNotActive", "The specified job is not in the active state.", 409))
        if disable_tasks == "requeue":
            requeue_running_tasks_of_job(job=job)
        elif disable_tasks == "terminate":
            terminate_running_tasks_of_job(job=job)
        settle_job(job)
    job.refresh_from_db()


def enable_job(*, job: Job) -> None:
    """Enable Job: a disabled job passes through `enabling` and is active again.

    There is nothing to wait for (no task ran while it was disabled), so both
    moves happen in one transaction. The Batch docs name no error code for
    enabling a job that is not disabled; we answer 409 JobNotDisabled.
    """
    with transaction.atomic():
        _move_or_refuse(job, JobState.ENABLING, from_states=(JobState.DISABLED, JobState.DISABLING),
                        error=BatchError("JobNotDisabled", "The specified job is not disabled.", 409))
        _move(job, JobState.ACTIVE, from_states=(JobState.ENABLING,))
        settle_job(job)
    job.refresh_from_db()


def settle_job(job: Job) -> None:
    """Resolve what the job's task counts now allow, in the caller's transaction.

    - `disabling` becomes `disabled` once no task runs;
    - with onAllTasksComplete terminatejob, an open job whose tasks are all
      completed terminates (AllTasksComplete). A job with no tasks counts as all
      complete, as the Batch docs say;
    - `terminating` becomes `completed` once its release tasks have run.

    Called after every change of a job's tasks; worker housekeeping calls it for
    open jobs too, so a race between two transactions (each seeing the other's
    task still running) cannot leave a job unresolved.
    """
    row = Job.objects.filter(pk=job.pk).values("state", "on_all_tasks_complete").first()
    if row is not None and row["state"] == JobState.TERMINATING:
        _complete_when_released(job)
    if row is None or row["state"] not in OPEN_STATES:
        return
    ends_when_done = row["on_all_tasks_complete"] == OnAllTasksComplete.TERMINATE_JOB
    if row["state"] != JobState.DISABLING and not ends_when_done:
        return  # the common case, after every finished task: no need to sum the counts
    now = counts.read(job.pk)
    if row["state"] == JobState.DISABLING and now.running == 0:
        _move(job, JobState.DISABLED, from_states=(JobState.DISABLING,))
    if ends_when_done and now.active == 0 and now.running == 0:
        terminate_job(job=job, reason="AllTasksComplete")


def settle_jobs() -> int:
    """Housekeeping: settle open jobs that may be due, and end jobs past their maxWallClockTime."""
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


def delete_job(*, job: Job) -> None:
    """Delete Job: the job goes to `deleting` now; `purge_deleted_jobs` removes it after.

    Removing a million tasks is not work for a request, so it happens in bounded
    chunks in the background (workers run the purge in their housekeeping), after
    the job's release task has run on its workers. Running tasks end now, so their
    workers kill them at once.
    """
    from tasks.services import terminate_running_tasks_of_job

    with transaction.atomic():
        if not _move(job, JobState.DELETING, from_states=[s for s in JobState if s != JobState.DELETING]):
            raise BatchError("JobBeingDeleted", "The specified job is being deleted.", 409)
        terminate_running_tasks_of_job(job=job)


def purge_deleted_jobs(*, chunk: int = 5000) -> int:
    """Remove one chunk of the tasks of jobs being deleted; the job row once none is left.

    Returns how many rows went, so callers can loop until 0. Safe to run from many
    workers at once: each delete is idempotent.
    """
    from tasks.models import Task
    from tasks.node_tasks import release_pending

    removed = 0
    for job in Job.objects.filter(state=JobState.DELETING).only("pk", "batch_id")[:10]:
        if release_pending(job):
            continue  # its workers run its release task first
        with transaction.atomic():
            pks = list(Task.objects.filter(job_id=job.pk).values_list("pk", flat=True)[:chunk])
            if pks:
                # Counts stay exact to the end, like everywhere else.
                chunk_rows = Task.objects.filter(pk__in=pks)
                delta = dict.fromkeys(counts.FIELDS, 0)
                for row in chunk_rows.values("state", "result").annotate(n=Count("pk")).order_by():
                    for k, v in counts.bucket(row["state"], row["result"]).items():
                        delta[k] -= v * row["n"]
                removed += chunk_rows.delete()[0]
                counts.apply(job.pk, delta)
                continue
        remove_tree(job_dir(job))
        with transaction.atomic():
            removed += Job.objects.filter(pk=job.pk, state=JobState.DELETING).delete()[0]
            events.job_changed(job.pk)
        log.info("job %s deleted", job.batch_id)
    return removed
