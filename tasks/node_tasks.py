"""Job Preparation and Job Release tasks, as each worker (Batch's node) runs them.

The Batch docs, in short:
- the Job Preparation Task runs on a node before any task of the job starts
  there. With waitForSuccess (the default) the job's tasks wait for it, in the
  `preparing` state; if it fails after its retries (constraints.maxTaskRetryCount,
  default 0), the node runs no task of that job again, and stays free for others.
  Without waitForSuccess the tasks start at once, beside it.
- the Job Release Task runs when the job ends (Terminate Job, onAllTasksComplete,
  the job manager's end, maxWallClockTime, Delete Job) on each node that ran the
  preparation. The job stays `terminating` (or `deleting`) until every such node
  has run it; its maxWallClockTime defaults to 15 minutes.

A node that stops before running its release no longer holds the job up: the
Batch service too gives up on a node that is gone. Each row's `attempt` moves on
every start, so a report from an earlier run changes nothing.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from batchapi.errors import BatchError
from batchapi.ids import id_key
from jobs import events
from jobs.models import Job, JobState

from .models import NodeTask, NodeTaskKind, NodeTaskState, TaskResult, Worker, WorkerState

PREPARATION, RELEASE = NodeTaskKind.PREPARATION, NodeTaskKind.RELEASE
DEFAULT_RELEASE_WALL_CLOCK = timedelta(minutes=15)  # the Batch default for jobReleaseTask.maxWallClockTime


def spec_of(job: Job, kind: str) -> dict | None:
    return job.job_preparation_task if kind == PREPARATION else job.job_release_task


def task_id(spec: dict, kind: str) -> str:
    """The id of a job's preparation or release task: its own, or Batch's default."""
    return spec.get("id") or ("jobpreparation" if kind == PREPARATION else "jobrelease")


def task_id_of(job: Job, kind: str) -> str:
    return task_id(spec_of(job, kind) or {}, kind)


def reserved_ids(job: Job) -> dict[str, BatchError]:
    """Task ids (as keys) a job's tasks may not take, and the error for each (Batch: 409)."""
    reserved = {}
    for kind, code in ((PREPARATION, "TaskIdSameAsJobPreparationTask"), (RELEASE, "TaskIdSameAsJobReleaseTask")):
        if spec_of(job, kind):
            task_id = task_id_of(job, kind)
            reserved[id_key(task_id)] = BatchError(
                code, f"The task id is the same as that of the Job {kind.capitalize()} task.", 409,
                {"TaskId": task_id})
    return reserved


def waits_for_preparation(job: Job) -> bool:
    """Whether the job's tasks on a node wait for its preparation there (waitForSuccess)."""
    spec = job.job_preparation_task
    return bool(spec) and spec.get("waitForSuccess", True) is not False


def prepared_on(job: Job, node_id: str) -> bool:
    return NodeTask.objects.filter(job=job, node_id=node_id, kind=PREPARATION, state=NodeTaskState.COMPLETED,
                                   result=TaskResult.SUCCESS).exists()


def ran_on(job: Job, node_id: str) -> bool:
    """Whether the preparation has started on this node at least once."""
    return NodeTask.objects.filter(job=job, node_id=node_id, kind=PREPARATION).exists()


def wall_clock_limit(job: Job, kind: str) -> timedelta | None:
    from batchapi.wire import parse_wire_duration

    spec = spec_of(job, kind) or {}
    raw = (spec.get("constraints") or {}).get("maxWallClockTime") if kind == PREPARATION \
        else spec.get("maxWallClockTime")
    if raw is None:
        return None if kind == PREPARATION else DEFAULT_RELEASE_WALL_CLOCK
    return parse_wire_duration(raw)


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
    from jobs.services import settle_job

    from .services import FAILURE_EXIT_CODE

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


def releases_due(node_id: str) -> list[Job]:
    """Ended jobs whose release task this node owes: it ran their preparation, not yet the release."""
    released = NodeTask.objects.filter(job=OuterRef("job"), node_id=node_id, kind=RELEASE)
    prepared = (NodeTask.objects.filter(node_id=node_id, kind=PREPARATION,
                                        job__state__in=[JobState.TERMINATING, JobState.DELETING],
                                        job__job_release_task__isnull=False)
                .exclude(Exists(released)).select_related("job"))
    return [row.job for row in prepared]


def forget_unfinished_releases(node_id: str) -> int:
    """A worker starting again: releases its earlier life left running are owed again."""
    return NodeTask.objects.filter(node_id=node_id, kind=RELEASE, state=NodeTaskState.RUNNING).delete()[0]


def release_pending(job: Job) -> bool:
    """Whether a live node still owes the job its release task."""
    if not Job.objects.filter(pk=job.pk, job_release_task__isnull=False).exists():
        return False
    cutoff = timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT
    alive = Worker.objects.filter(state=WorkerState.RUNNING, heartbeat_at__gte=cutoff).values("name")
    released = NodeTask.objects.filter(job=job, kind=RELEASE, state=NodeTaskState.COMPLETED).values("node_id")
    return (NodeTask.objects.filter(job=job, kind=PREPARATION, node_id__in=alive)
            .exclude(node_id__in=released).exists())


def status(job: Job) -> list[dict]:
    """Per node, the preparation and release runs (List Preparation and Release Task Status)."""
    rows = NodeTask.objects.filter(job=job).order_by("node_id", "kind")
    by_node: dict[str, dict[str, NodeTask]] = {}
    for row in rows:
        by_node.setdefault(row.node_id, {})[row.kind] = row
    return [{"node_id": node, **kinds} for node, kinds in by_node.items() if PREPARATION in kinds]
