"""A job's life: Add, Update, Terminate, Disable, Enable and Delete Job, and what its counts allow.

A job's end moves its tasks (running tasks end when it terminates), and its
tasks' ends move the job (`settle_job`). Both directions run through this module:
the task services call `settle_job` and the job actions here; this module moves a
job's tasks itself and adds only the job manager, so it imports no task service
that imports it.
"""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from batchapi.errors import BatchError, invalid_property
from batchapi.ids import id_key
from pools.models import Pool, PoolState
from pools.services.lifecycle import auto_pool_id, create_pool, delete_pool, ensure_pool
from tasks import counts
from tasks.models import RUNNING_STATES, Task, TaskResult, TaskState
from tasks.node_tasks import release_pending
from tasks.outcomes import TASK_ENDED, files_expire_after, run_time_until
from tasks.services.adding import add_task

from .. import events
from ..models import OPEN_STATES, Job, JobState, OnAllTasksComplete, pool_id_of
from ..selectors import check_job_open, lock_open_job
from ..transitions import move

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


def create_job(*, spec: dict, job_manager: dict | None = None, auto_pool: dict | None = None) -> Job:
    """Add Job: the job row and its count rows, together. `spec` names the job's account.

    `job_manager` (Task field values of its jobManagerTask, validated by the
    caller) is added as the job's first task, so that it is the first to run:
    tasks are claimed oldest first. `auto_pool` (Pool field values of its
    poolInfo.autoPoolSpecification) is the pool made for the job, with it.
    """
    if bool(spec.get("job_manager_task")) != (job_manager is not None):
        raise ValueError("a job with a jobManagerTask is created with its task's fields (job_manager), "
                         "and only such a job")
    auto_spec = (spec.get("pool_info") or {}).get("autoPoolSpecification")
    if bool(auto_spec) != (auto_pool is not None):
        raise ValueError("a job with an autoPoolSpecification is created with its pool's fields (auto_pool), "
                         "and only such a job")
    now = timezone.now()
    pool_id = auto_pool_id(auto_spec) if auto_spec else pool_id_of(spec.get("pool_info"))
    try:
        with transaction.atomic():
            job = Job.objects.create(
                key=id_key(spec["batch_id"]), state=JobState.ACTIVE, state_transition_time=now,
                start_time=now, creation_time=now, last_modified=now, pool_key=id_key(pool_id),
                auto_pool_id=pool_id if auto_spec else "", **spec,
            )
            counts.create_shards(job)
            if auto_spec:
                create_pool(spec={**auto_pool, "account": job.account, "batch_id": pool_id,
                                  "made_for_job": job.batch_id})
            else:
                ensure_pool(job.account, pool_id, for_job=job.batch_id)
            if job_manager is not None:
                add_task(job=job, spec=job_manager)
            events.job_changed(job.pk)
            settle_job(job)  # onAllTasksComplete terminatejob: no tasks counts as all complete
    except IntegrityError:
        if Job.objects.filter(account=spec["account"], key=id_key(spec["batch_id"])).exists():
            raise job_exists(spec["batch_id"]) from None
        raise
    return job


def update_job(*, job: Job, changes: dict, replace: bool = False) -> Job:
    """Update Job (PATCH: the given fields) or Replace Job (PUT: unspecified fields reset)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    values = {**(UPDATABLE if replace else {}), **changes}
    with transaction.atomic():
        lock_open_job(job)
        if "pool_info" in values and (values["pool_info"] or {}).get("autoPoolSpecification"):
            if not job.auto_pool_id:  # the job's auto pool stays what it was made
                raise invalid_property("poolInfo", "an autoPoolSpecification is given when the job is added")
            values["pool_info"] = job.pool_info
        elif "pool_info" in values:
            pool_id = pool_id_of(values["pool_info"])
            values["pool_key"] = id_key(pool_id)
            ensure_pool(job.account, pool_id, for_job=job.batch_id)
        values["last_modified"] = timezone.now()
        Job.objects.filter(pk=job.pk).update(**values)
        events.job_changed(job.pk)
        settle_job(job)
    job.refresh_from_db()
    return job


def _move(job: Job, state: str, *, from_states, **extra) -> bool:
    return bool(move(Job.objects.filter(pk=job.pk), state, from_states=from_states, job_pk=job.pk, **extra))


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
    with transaction.atomic():
        if not _move(job, JobState.TERMINATING, from_states=OPEN_STATES,
                     terminate_reason=reason or "UserTerminate"):
            check_job_open(Job.objects.get(pk=job.pk).state)  # raises the error that fits
        terminate_running_tasks_of_job(job=job)
        _complete_when_released(job)
    job.refresh_from_db()


def _complete_when_released(job: Job) -> None:
    """A terminating job completes once no live worker still owes it its release task."""
    if not release_pending(job) and _move(job, JobState.COMPLETED, from_states=(JobState.TERMINATING,),
                                          end_time=timezone.now()):
        _end_auto_pool(job)


def _end_auto_pool(job: Job) -> None:
    """The pool made for the job goes with it, unless its autoPoolSpecification says keepAlive."""
    job = Job.objects.only("pk", "account", "pool_info", "auto_pool_id").get(pk=job.pk)
    spec = (job.pool_info or {}).get("autoPoolSpecification") or {}
    if not job.auto_pool_id or spec.get("keepAlive"):
        return
    pool = Pool.objects.filter(account_id=job.account_id, key=id_key(job.auto_pool_id),
                               state=PoolState.ACTIVE).first()
    if pool is not None:
        delete_pool(pool=pool)


def disable_job(*, job: Job, disable_tasks: str) -> None:
    """Disable Job: no new task is scheduled; the running ones are requeued, terminated or waited for.

    The job is `disabling` while running tasks remain (only `wait` leaves any) and
    becomes `disabled` when the last ends (`settle_job`).
    """
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


def delete_job(*, job: Job) -> None:
    """Delete Job: the job goes to `deleting` now; `sweeps.purge_deleted_jobs` removes it after.

    Removing a million tasks is not work for a request, so it happens in bounded
    chunks in the background (workers run the purge in their housekeeping), after
    the job's release task has run on its workers. Running tasks end now, so their
    workers kill them at once.
    """
    with transaction.atomic():
        if not _move(job, JobState.DELETING, from_states=[s for s in JobState if s != JobState.DELETING]):
            raise BatchError("JobBeingDeleted", "The specified job is being deleted.", 409)
        terminate_running_tasks_of_job(job=job)
        _end_auto_pool(job)


# --- the job's tasks, all at once ---------------------------------------------------------


def terminate_running_tasks_of_job(*, job: Job) -> int:
    """Complete every running task of a job as ended (Terminate Job, Disable Job with terminate)."""
    now = timezone.now()
    return move(Task.objects.filter(job=job), TaskState.COMPLETED, from_states=RUNNING_STATES, job_pk=job.pk,
                result=TaskResult.FAILURE, now=now, end_time=now, failure_info=TASK_ENDED,
                run_time=run_time_until(now), files_expire_at=files_expire_after(now))


def requeue_running_tasks_of_job(*, job: Job) -> int:
    """Put every running task of a job back to active (Disable Job with requeue)."""
    now = timezone.now()
    return move(Task.objects.filter(job=job), TaskState.ACTIVE, from_states=RUNNING_STATES, job_pk=job.pk,
                now=now, requeue_count=F("requeue_count") + 1, last_requeue_time=now)
