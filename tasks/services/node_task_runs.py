"""Recording the runs of a job's preparation and release tasks on a node (see `tasks.node_tasks`)."""

from django.db import transaction
from django.utils import timezone

from jobs import events
from jobs.models import Job
from jobs.services.lifecycle import settle_job

from ..models import NodeTask, NodeTaskState, TaskResult
from ..node_tasks import PREPARATION, RELEASE, spec_of, waits_for_preparation
from ..outcomes import FAILURE_EXIT_CODE


def start(job: Job, node_id: str, kind: str) -> NodeTask:
    """Record that this node starts (or starts again) the job's preparation or release task."""
    now = timezone.now()
    with transaction.atomic():
        row, created = NodeTask.objects.select_for_update().get_or_create(
            job=job, node_id=node_id, kind=kind, defaults=dict(state=NodeTaskState.RUNNING, start_time=now,
                                                              attempt=1))
        if not created:
            row.state, row.start_time, row.end_time = NodeTaskState.RUNNING, now, None
            row.exit_code, row.result, row.failure_info, row.refuses_job = None, "", None, False
            row.attempt += 1
            row.save()
        events.job_changed(job.pk)
    row.job = job
    return row


def finish(row: NodeTask, attempt: int, exit_code: int | None, failure: dict | None) -> str | None:
    """How the run ended: 'succeeded', 'retried' (start it again), 'failed', or None if not current.

    A preparation that fails for good with waitForSuccess marks the job refused on
    this node. A release's end may let its job complete (`settle_job`).
    """
    job, now = row.job, timezone.now()
    with transaction.atomic():
        current = NodeTask.objects.select_for_update().filter(
            pk=row.pk, attempt=attempt, state=NodeTaskState.RUNNING).first()
        if current is None:
            return None
        current.exit_code, outcome = exit_code, "succeeded"
        if failure is None and exit_code != 0:
            retries = ((spec_of(job, row.kind) or {}).get("constraints") or {}).get("maxTaskRetryCount", 0)
            if row.kind == PREPARATION and (retries == -1 or current.retry_count < retries):
                current.retry_count += 1
                current.last_retry_time = now
                current.save()
                return "retried"
            failure = FAILURE_EXIT_CODE
        if failure is not None:
            outcome = "failed"
            current.refuses_job = row.kind == PREPARATION and waits_for_preparation(job)
        current.state, current.end_time, current.failure_info = NodeTaskState.COMPLETED, now, failure
        current.result = TaskResult.FAILURE if failure else TaskResult.SUCCESS
        current.save()
        if row.kind == RELEASE:
            settle_job(job)
        events.job_changed(job.pk)
    return outcome


def forget_unfinished_releases(node_id: str) -> int:
    """A worker starting again: releases its earlier life left running are owed again."""
    return NodeTask.objects.filter(node_id=node_id, kind=RELEASE, state=NodeTaskState.RUNNING).delete()[0]
