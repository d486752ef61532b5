"""What users ask of a task: Terminate, Reactivate (one, or a job's failed ones), Delete, Update."""

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from batchapi.errors import BatchError
from jobs.models import Job
from jobs.selectors import lock_open_job
from jobs.services.lifecycle import settle_job
from jobs.transitions import count, move

from .. import counts, dependencies
from ..files import task_dir
from ..models import RUNNING_STATES, Task, TaskResult, TaskState
from ..outcomes import TASK_ENDED, files_expire_after, run_time_until
from ..rundirs import remove_tree


def terminate_task(*, task: Task) -> None:
    """Terminate Task: an active or running task completes as failed (TaskEnded).

    A running task's worker sees that its run is no longer current and kills it.
    """
    with transaction.atomic():
        now, row = timezone.now(), Task.objects.filter(pk=task.pk)
        ended = dict(job_pk=task.job_id, result=TaskResult.FAILURE, now=now, end_time=now,
                     failure_info=TASK_ENDED, files_expire_at=files_expire_after(now))
        # A running task's run ends now; an active one keeps its last run's length.
        if (move(row, TaskState.COMPLETED, from_states=RUNNING_STATES, run_time=run_time_until(now), **ended)
                or move(row, TaskState.COMPLETED, from_states=(TaskState.ACTIVE,), **ended)):
            settle_job(Job(pk=task.job_id))
            return
        raise BatchError("TaskCompleted", "The specified task is already completed.", 409,
                         {"TaskId": task.batch_id})


def _reactivate(job_pk: int, failed) -> int:
    """Move failed tasks of job `job_pk` back to active, retryCount 0, their last run's outcome cleared."""
    failed = failed.filter(state=TaskState.COMPLETED, result=TaskResult.FAILURE)
    for parent in failed.filter(satisfies_dependents=True).only("pk", "job_id", "key", "int_id"):
        dependencies.unsatisfy(parent)  # it failed with satisfy; running again, it counts no more
    return move(failed, TaskState.ACTIVE, from_states=(TaskState.COMPLETED,), from_result=TaskResult.FAILURE,
                job_pk=job_pk, start_time=None, end_time=None, run_time=None, exit_code=None, result="",
                failure_info=None, retry_count=0, last_retry_time=None, files_expire_at=None,
                files_removed_at=None)


def reactivate_task(*, task: Task) -> None:
    """Reactivate Task: a failed task of a live job goes back to active, retryCount 0.

    Per Batch: fails for tasks not completed or completed successfully, and for
    jobs completed, terminating or deleting. Exit code and failure info are cleared.
    """
    with transaction.atomic():
        lock_open_job(task.job)
        if not _reactivate(task.job_id, Task.objects.filter(pk=task.pk)):
            current = Task.objects.filter(pk=task.pk).values_list("state", flat=True).first()
            if current != TaskState.COMPLETED:
                raise BatchError("TaskNotCompleted", "Only a completed task can be reactivated.", 409,
                                 {"TaskId": task.batch_id})
            raise BatchError("TaskCompletedSuccessfully",
                             "A task that completed successfully cannot be reactivated.", 409,
                             {"TaskId": task.batch_id})


def reactivate_failed_tasks(*, job: Job, pks: list[int] | None = None) -> int:
    """Reactivate every failed task of a job (or those of `pks`) in one transaction.

    The dashboard's "rerun failed": one update and one count change however
    many tasks failed. Tasks that are not failed are left as they are.
    """
    with transaction.atomic():
        lock_open_job(job)
        failed = Task.objects.filter(job_id=job.pk)
        if pks is not None:
            failed = failed.filter(pk__in=pks)
        return _reactivate(job.pk, failed)


def delete_task(*, task: Task) -> None:
    """Delete Task: the row, its share of the counts, and (after commit) its files.

    A running task's worker finds its run gone and kills it.
    """
    with transaction.atomic():
        dependencies.hold_parents(task.job_id)
        row = Task.objects.select_for_update().filter(pk=task.pk).values("state", "result", "required_slots").first()
        if row is None:
            raise BatchError("TaskNotFound", "The specified task does not exist.", 404, {"TaskId": task.batch_id})
        parent = Task.objects.filter(pk=task.pk).only("pk", "job_id", "key", "int_id").get()
        dependencies.unsatisfy(parent)  # a parent that is gone no longer counts
        Task.objects.filter(pk=task.pk).delete()
        gone = counts.scaled(counts.bucket(row["state"], row["result"]), -1)
        count(task.job_id, counts.with_slots(gone, counts.scaled(gone, row["required_slots"] - 1)))
        settle_job(Job(pk=task.job_id))
        directory = task_dir(task)
        transaction.on_commit(lambda: remove_tree(directory))


def update_task_constraints(*, task: Task, max_wall_clock_time: timedelta | None,
                            max_task_retry_count: int | None, retention_time: timedelta | None) -> None:
    """Update Task: Batch lets only the constraints change."""
    with transaction.atomic():
        n = Task.objects.filter(pk=task.pk).update(
            max_wall_clock_time=max_wall_clock_time, max_task_retry_count=max_task_retry_count,
            retention_time=retention_time, last_modified=timezone.now(),
        )
        if not n:
            raise BatchError("TaskNotFound", "The specified task does not exist.", 404, {"TaskId": task.batch_id})
        # A completed task's directory now lives as long as its new retentionTime says.
        Task.objects.filter(pk=task.pk, state=TaskState.COMPLETED, files_removed_at=None).update(
            files_expire_at=files_expire_after(F("end_time")))
