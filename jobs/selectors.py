"""Reads of jobs that the API, the pages, the services and the worker share."""

from batchapi.errors import BatchError, job_not_found
from batchapi.ids import find_by_id

from .models import Job, JobState


def find_job(account, job_id: str, *, only=None) -> Job | None:
    """Job `job_id` of `account` (ids are unique without regard to case), or None."""
    job = find_by_id(Job.objects.filter(account=account), job_id, only=only)
    if job is not None:
        job.account = account  # known already: no query for it (task directories are named by it)
    return job


def get_job(account, job_id: str, *, only=None) -> Job:
    """As `find_job`, or 404 JobNotFound (also when another account has such a job)."""
    job = find_job(account, job_id, only=only)
    if job is None:
        raise job_not_found(job_id)
    return job


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
