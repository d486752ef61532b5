"""The denormalised task counts of a job: read in O(1), changed with the states they count.

Only `jobs.transitions` calls `apply` (the services go through it), inside the
transaction that changes the task rows. `recount` compares the rows with the task table and repairs drift.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from .models import CountSample, Task, TaskCountShard, TaskResult, TaskState

FIELDS = ("active", "running", "completed", "succeeded", "failed")
# Slots beyond one a task, by the same buckets: a task of requiredSlots n counts n - 1 here,
# so taskSlotCounts are the counts plus these, and tasks of one slot (most) touch none.
EXTRA = {field: f"{field}_extra_slots" for field in FIELDS}
EXTRA_FIELDS = tuple(EXTRA.values())


@dataclass(frozen=True)
class TaskCounts:
    active: int = 0
    running: int = 0
    completed: int = 0
    succeeded: int = 0
    failed: int = 0
    version: int = 0
    active_extra_slots: int = 0
    running_extra_slots: int = 0
    completed_extra_slots: int = 0
    succeeded_extra_slots: int = 0
    failed_extra_slots: int = 0

    def as_dict(self) -> dict:
        """taskCounts: tasks by state."""
        return {k: getattr(self, k) for k in FIELDS}

    def slots(self) -> dict:
        """taskSlotCounts: the slots those tasks take (requiredSlots each)."""
        return {k: getattr(self, k) + getattr(self, EXTRA[k]) for k in FIELDS}

    def same_counts(self, other: "TaskCounts") -> bool:
        return self.as_dict() == other.as_dict() and self.slots() == other.slots()


def bucket(state: str, result: str | None) -> dict[str, int]:
    """What one task in this state adds to the counts."""
    completed = state == TaskState.COMPLETED
    return {
        "active": int(state == TaskState.ACTIVE),
        "running": int(state in (TaskState.PREPARING, TaskState.RUNNING)),
        "completed": int(completed),
        "succeeded": int(completed and result == TaskResult.SUCCESS),
        "failed": int(completed and result == TaskResult.FAILURE),
    }


def transition(old: tuple[str, str | None], new: tuple[str, str | None], n: int = 1) -> dict[str, int]:
    """The delta of moving n tasks from (state, result) `old` to `new`."""
    before, after = bucket(*old), bucket(*new)
    return {k: n * (after[k] - before[k]) for k in FIELDS}


def scaled(delta: dict[str, int], n: int) -> dict[str, int]:
    return {k: v * n for k, v in delta.items()}


def with_slots(delta: dict[str, int], extra: dict[str, int]) -> dict[str, int]:
    """`delta` (tasks moved) and the same buckets of `extra` (their slots beyond one each), as one change."""
    return {**delta, **{EXTRA[k]: v for k, v in extra.items() if v}}


class Pending:
    """Count changes (and the job statistics, `stats.JOB_FIELDS`) of one transaction, by job.

    A worker whose short tasks end together pays one count update per job, not
    one per task: the changes add up here and are written at the end
    (`jobs.transitions.count`).
    """

    def __init__(self):
        self.by_job: dict[int, dict[str, float]] = {}

    def add(self, job_pk: int, delta: dict[str, float]) -> None:
        total = self.by_job.setdefault(job_pk, dict.fromkeys(FIELDS, 0))
        for k, v in delta.items():
            total[k] = total.get(k, 0) + v


def create_shards(job) -> None:
    TaskCountShard.objects.bulk_create(
        TaskCountShard(job=job, shard=i) for i in range(settings.BATCHSITE_COUNT_SHARDS)
    )


def apply(job_pk: int, delta: dict[str, int]) -> None:
    """Add `delta` to the job's counts, database-side, on one random shard.

    Called inside the transaction that changed the tasks. An all-zero delta still
    moves the version: something about the job's tasks changed.
    """
    changes = {k: F(k) + v for k, v in delta.items() if v}
    changes["version"] = F("version") + 1
    shard = random.randrange(settings.BATCHSITE_COUNT_SHARDS)
    updated = TaskCountShard.objects.filter(job_id=job_pk, shard=shard).update(**changes)
    if not updated:
        # A job made before its shards (or repaired by recount): create and retry.
        TaskCountShard.objects.get_or_create(job_id=job_pk, shard=shard)
        TaskCountShard.objects.filter(job_id=job_pk, shard=shard).update(**changes)
    sample(job_pk)


# --- samples for the counts-over-time chart -----------------------------------------

# The second each job was last sampled by this process: most changes cost nothing more.
_sampled: dict[int, int] = {}


def sample(job_pk: int) -> None:
    """Record the job's counts for this second, if nobody has yet.

    Runs in the changing transaction, so the sample includes the change. Across
    processes the unique (job, second) keeps one row; within one, the memory
    above skips the two queries for the rest of the second.
    """
    now = timezone.now().replace(microsecond=0)
    second = int(now.timestamp())
    if _sampled.get(job_pk) == second:
        return
    if len(_sampled) > 10_000:
        _sampled.clear()
    _sampled[job_pk] = second
    current = read(job_pk)
    CountSample.objects.bulk_create([CountSample(job_id=job_pk, at=now, **current.as_dict())],
                                    ignore_conflicts=True)


# (age, resolution): samples older than `age` keep one per `resolution`. A job
# keeps every second of its last 10 minutes, a minute's resolution to 6 hours,
# ten minutes' beyond: a week-long job has ~2,000 samples.
THINNING = ((timedelta(minutes=10), "minute"), (timedelta(hours=6), "ten_minutes"))


def thin_samples(*, chunk: int = 5000, model=CountSample, owner: str = "job_id") -> int:
    """Thin old samples to their tier's resolution, one bounded chunk per tier. Returns rows deleted.

    Only whole buckets older than the cutoff are thinned, and a chunk never
    splits a bucket, so each bucket keeps exactly its first sample. `model` is
    another table of samples over time (`at`, `level`) of whatever `owner` names:
    a pool's node counts thin the same way (`pools.node_counts.thin_samples`).
    """
    deleted, now = 0, timezone.now()
    for level, (age, resolution) in enumerate(THINNING, start=1):
        cutoff = _bucket(now - age, resolution)
        old = model.objects.filter(level__lt=level, at__lt=cutoff).order_by(owner, "at")
        rows = [(pk, (owner_pk, _bucket(at, resolution)))
                for pk, owner_pk, at in old.values_list("pk", owner, "at")[:chunk]]
        if len(rows) == chunk:  # the last bucket may go on in the next chunk: leave it whole for then
            last = rows[-1][1]
            rows = [row for row in rows if row[1] != last] or rows
        keep, drop, seen = [], [], set()
        for pk, bucket in rows:
            (drop if bucket in seen else keep).append(pk)
            seen.add(bucket)
        model.objects.filter(pk__in=keep).update(level=level)
        deleted += model.objects.filter(pk__in=drop).delete()[0]
    return deleted


def _bucket(at, resolution: str):
    if resolution == "minute":
        return at.replace(second=0, microsecond=0)
    return at.replace(minute=at.minute - at.minute % 10, second=0, microsecond=0)


def samples(job_pk: int, *, limit: int = 5000) -> list[CountSample]:
    """The job's samples, oldest first: the newest `limit` of them (thinning keeps them few)."""
    newest = CountSample.objects.filter(job_id=job_pk).order_by("-at")[:limit]
    return list(reversed(newest))


def read(job_pk: int) -> TaskCounts:
    """The job's counts: one aggregate over its few shard rows, whatever its task count."""
    sums = TaskCountShard.objects.filter(job_id=job_pk).aggregate(
        **{k: Sum(k) for k in (*FIELDS, *EXTRA_FIELDS, "version")}
    )
    return TaskCounts(**{k: v or 0 for k, v in sums.items()})


def read_many(job_pks: list[int]) -> dict[int, TaskCounts]:
    """Counts of several jobs in one grouped query (for list pages)."""
    rows = (TaskCountShard.objects.filter(job_id__in=job_pks).values("job_id")
            .annotate(**{k: Sum(k) for k in (*FIELDS, *EXTRA_FIELDS, "version")}).order_by())
    found = {row.pop("job_id"): TaskCounts(**row) for row in rows}
    return {pk: found.get(pk, TaskCounts()) for pk in job_pks}


def actual(job_pk: int) -> TaskCounts:
    """The counts as the task table has them now: a full count, for recount and tests only."""
    completed = Q(state=TaskState.COMPLETED)
    buckets = {
        "active": Q(state=TaskState.ACTIVE),
        "running": Q(state__in=[TaskState.PREPARING, TaskState.RUNNING]),
        "completed": completed,
        "succeeded": completed & Q(result=TaskResult.SUCCESS),
        "failed": completed & Q(result=TaskResult.FAILURE),
    }
    extra = F("required_slots") - 1
    sums = Task.objects.filter(job_id=job_pk).aggregate(
        **{k: Count("pk", filter=q) for k, q in buckets.items()},
        **{EXTRA[k]: Sum(extra, filter=q) for k, q in buckets.items()})
    return TaskCounts(**{k: v or 0 for k, v in sums.items()})


def recount(job_pk: int, *, repair: bool) -> tuple[TaskCounts, TaskCounts]:
    """Compare the stored counts with the task table; with repair, make them equal.

    Runs in the caller's transaction, which must lock out writers of this job's
    tasks (SQLite's IMMEDIATE transaction does; on PostgreSQL we lock the shards).
    Returns (stored, actual) as they were before any repair.
    """
    list(TaskCountShard.objects.select_for_update().filter(job_id=job_pk))
    stored, real = read(job_pk), actual(job_pk)
    if repair and not stored.same_counts(real):
        # Update in place: a writer waiting on a shard's lock still finds its row.
        zero = {k: 0 for k in (*FIELDS, *EXTRA_FIELDS)}
        for i in range(settings.BATCHSITE_COUNT_SHARDS):
            TaskCountShard.objects.get_or_create(job_id=job_pk, shard=i)
        TaskCountShard.objects.filter(job_id=job_pk).exclude(shard=0).update(**zero)
        TaskCountShard.objects.filter(job_id=job_pk, shard=0).update(
            **real.as_dict(), **{k: getattr(real, k) for k in EXTRA_FIELDS}, version=F("version") + 1
        )
    return stored, real
