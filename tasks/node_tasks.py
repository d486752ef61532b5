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

This module says what they are and where they ran; `tasks.services.node_task_runs`
records their runs.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from batchapi.errors import BatchError
from batchapi.ids import id_key
from batchapi.wire import parse_wire_duration
from jobs.models import Job, JobState
from pools.models import AGENT_STATES, ComputeNode, NodeState

from .models import NodeTask, NodeTaskKind, NodeTaskState, TaskResult

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


def preparation_due(job: Job, node_id: str) -> bool:
    """Whether this node must run the job's preparation before (or, without waitForSuccess,
    beside) the job's tasks: the job has one, and it has not succeeded here (or, without
    waitForSuccess, not started here)."""
    if not job.job_preparation_task:
        return False
    done = prepared_on if waits_for_preparation(job) else ran_on
    return not done(job, node_id)


def wall_clock_limit(job: Job, kind: str) -> timedelta | None:
    spec = spec_of(job, kind) or {}
    raw = (spec.get("constraints") or {}).get("maxWallClockTime") if kind == PREPARATION \
        else spec.get("maxWallClockTime")
    if raw is None:
        return None if kind == PREPARATION else DEFAULT_RELEASE_WALL_CLOCK
    return parse_wire_duration(raw)


def releases_due(node_id: str) -> list[Job]:
    """Ended jobs whose release task this node owes: it ran their preparation, not yet the release."""
    released = NodeTask.objects.filter(job=OuterRef("job"), node_id=node_id, kind=RELEASE)
    prepared = (NodeTask.objects.filter(node_id=node_id, kind=PREPARATION,
                                        job__state__in=[JobState.TERMINATING, JobState.DELETING],
                                        job__job_release_task__isnull=False)
                .exclude(Exists(released)).select_related("job"))
    return [row.job for row in prepared]


def release_pending(job: Job) -> bool:
    """Whether a live node still owes the job its release task."""
    if not Job.objects.filter(pk=job.pk, job_release_task__isnull=False).exists():
        return False
    cutoff = timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT
    alive = (ComputeNode.objects.filter(state__in=AGENT_STATES, heartbeat_at__gte=cutoff)
             .exclude(state=NodeState.LEAVING_POOL).values("name"))
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
