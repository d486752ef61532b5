"""What the dashboard pages show, read from the database in bounded queries.

The views render these for a page; the consumers render the same for a live
update. None of them reads all tasks of a job: counts come from the count rows,
charts from count samples and database aggregates, tables a page at a time.
"""

import json
import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Max, Min, Q
from django.http import QueryDict
from django.utils import timezone

from batchapi.ids import id_key, key_prefix
from pools.models import AGENT_STATES, ComputeNode
from tasks import counts
from tasks.models import Task, TaskResult, TaskState
from tasks.node_tasks import status

from .models import Job, JobState
from .node_timeline import node_timeline

PAGE_SIZE = 50
ENDED_JOB_STATES = (JobState.COMPLETED,)


# --- the jobs list ---------------------------------------------------------------------


@dataclass
class JobFilter:
    """The jobs list's query string: which jobs, which page (keyset on pk, newest first)."""

    account: object = None  # the BatchAccount shown (none: no jobs)
    show: str = "current"  # current | completed | all
    state: str = ""
    q: str = ""
    before: int | None = None  # pk: the page starts below it

    @classmethod
    def from_query(cls, query, account) -> "JobFilter":
        show = query.get("show", "current")
        state = query.get("state", "")
        return cls(
            account=account,
            show=show if show in ("current", "completed", "all") else "current",
            state=state if state in JobState.values else "",
            q=query.get("q", "").strip()[:64],
            before=_int(query.get("before")),
        )

    def jobs(self):
        jobs = Job.objects.filter(account=self.account).exclude(state=JobState.DELETING)
        if self.show == "current":
            jobs = jobs.exclude(state__in=ENDED_JOB_STATES)
        elif self.show == "completed":
            jobs = jobs.filter(state__in=ENDED_JOB_STATES)
        if self.state:
            jobs = jobs.filter(state=self.state)
        if self.q:
            jobs = jobs.filter(key_prefix("key", id_key(self.q)))
        if self.before:
            jobs = jobs.filter(pk__lt=self.before)
        return jobs.order_by("-pk")


@dataclass
class JobRow:
    job: Job
    counts: counts.TaskCounts

    @property
    def progress(self) -> "Progress":
        return Progress.of(self.counts)


def job_page(flt: JobFilter, size: int = PAGE_SIZE) -> tuple[list[JobRow], int | None]:
    """One page of jobs with their counts: two queries, whatever the number of tasks."""
    jobs = list(flt.jobs()[: size + 1])
    more = len(jobs) > size
    jobs = jobs[:size]
    by_job = counts.read_many([job.pk for job in jobs])
    return [JobRow(job, by_job[job.pk]) for job in jobs], (jobs[-1].pk if more else None)


def unconfined_workers() -> list[str]:
    """Names of the live workers that run tasks without a sandbox: the jobs page warns of them."""
    live = ComputeNode.objects.filter(state__in=AGENT_STATES, confined=False,
                                      heartbeat_at__gte=timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT)
    return list(live.order_by("name").values_list("name", flat=True)[:20])


def job_tabs(account) -> dict[str, int]:
    """How many jobs each tab of the list holds: one grouped count over the account's jobs."""
    by_state = dict(Job.objects.filter(account=account).exclude(state=JobState.DELETING).values("state")
                    .annotate(n=Count("pk")).order_by().values_list("state", "n"))
    completed = sum(n for s, n in by_state.items() if s in ENDED_JOB_STATES)
    total = sum(by_state.values())
    return {"current": total - completed, "completed": completed, "all": total}


# --- one job ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Shares of a job's tasks for the progress bar, in percent."""

    total: int
    succeeded: float
    failed: float
    running: float
    done: float  # completed share

    @classmethod
    def of(cls, c: counts.TaskCounts) -> "Progress":
        total = c.active + c.running + c.completed
        if not total:
            return cls(0, 0, 0, 0, 0)

        def pct(n):
            return round(100 * n / total, 1)

        return cls(total, pct(c.succeeded), pct(c.failed), pct(c.running), pct(c.completed))


@dataclass
class TaskFilter:
    """The task table's query string."""

    state: str = ""
    result: str = ""
    q: str = ""
    after: int | None = None  # pk: the page starts after it (creation order)

    @classmethod
    def from_query(cls, query) -> "TaskFilter":
        state, result = query.get("state", ""), query.get("result", "")
        return cls(
            state=state if state in TaskState.values else "",
            result=result if result in TaskResult.values else "",
            q=query.get("q", "").strip()[:64],
            after=_int(query.get("after")),
        )

    def tasks(self, job: Job):
        # Each filter meets an index: (job, state, id), (job, key) or (job, id).
        tasks = Task.objects.filter(job_id=job.pk)
        if self.result:
            tasks = tasks.filter(state=TaskState.COMPLETED, result=self.result)
        elif self.state:
            tasks = tasks.filter(state=self.state)
        if self.q:
            tasks = tasks.filter(key_prefix("key", id_key(self.q)))
        return tasks

    @property
    def base_query(self) -> str:
        """The filter without the page: for "first", "next" and the CSV export."""
        return self.query(after=None)

    def query(self, **changes) -> str:
        values = {"state": self.state, "result": self.result, "q": self.q, "after": self.after, **changes}
        qd = QueryDict(mutable=True)
        for k, v in values.items():
            if v not in ("", None):
                qd[k] = v
        return qd.urlencode()


TASK_COLUMNS = ("pk", "job_id", "batch_id", "state", "result", "exit_code", "retry_count", "requeue_count",
                "start_time", "end_time", "run_time", "node_id", "last_modified", "failure_info")


def task_page(job: Job, flt: TaskFilter, size: int = PAGE_SIZE) -> tuple[list[Task], int | None]:
    """One page of the task table (keyset on pk): one query at any depth."""
    tasks = flt.tasks(job)
    if flt.after:
        tasks = tasks.filter(pk__gt=flt.after)
    rows = list(tasks.only(*TASK_COLUMNS).order_by("pk")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    for task in rows:
        task.job = job
    return rows, (rows[-1].pk if more else None)


def tasks_by_pk(job: Job, pks: list[int]) -> list[Task]:
    """Rows of the task table by pk (those a live page shows and that changed)."""
    rows = list(Task.objects.filter(job_id=job.pk, pk__in=pks).only(*TASK_COLUMNS).order_by("pk")[: len(pks)])
    for task in rows:
        task.job = job
    return rows


# --- charts ----------------------------------------------------------------------------


def timeline(job: Job, current: counts.TaskCounts) -> dict:
    """Counts over time: the job's samples and the counts of now, as Plotly traces' data."""
    points = [(s.at, s.active, s.running, s.completed, s.succeeded, s.failed) for s in counts.samples(job.pk)]
    now = timezone.now()
    if not points or points[-1][0] < now:
        points.append((now, current.active, current.running, current.completed, current.succeeded,
                       current.failed))
    names = ("active", "running", "completed", "succeeded", "failed")
    series = {"x": [p[0].isoformat() for p in points]}
    for i, name in enumerate(names, start=1):
        series[name] = [p[i] for p in points]
    return series


@dataclass
class Histogram:
    edges: list[float] = field(default_factory=list)  # seconds; len(counts) + 1
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    log_scale: bool = False

    @property
    def labels(self) -> list[str]:
        """Each bucket by its upper bound: short enough for an axis."""
        return [f"≤ {human_seconds(b)}" for b in self.edges[1:]]

    @property
    def ranges(self) -> list[str]:
        return [f"{human_seconds(a)} – {human_seconds(b)}" for a, b in zip(self.edges, self.edges[1:])]


BUCKETS = 20


def duration_histogram(job: Job) -> Histogram:
    """Run times of the job's completed tasks in ~20 buckets: two aggregate queries.

    The first finds the range; the second counts each bucket with a filtered
    COUNT, so the database reads the run times and Python sees 40 numbers.
    Buckets are logarithmic when the run times span more than two decades.
    """
    done = Task.objects.filter(job_id=job.pk, state=TaskState.COMPLETED, run_time__isnull=False)
    span = done.aggregate(lo=Min("run_time"), hi=Max("run_time"))
    if span["lo"] is None:
        return Histogram()
    lo, hi = span["lo"].total_seconds(), span["hi"].total_seconds()
    lo = max(lo, 0.001)
    hi = max(hi, lo * 1.001)
    log_scale = hi / lo > 100
    if log_scale:
        a, b = math.log10(lo), math.log10(hi)
        edges = [10 ** (a + (b - a) * i / BUCKETS) for i in range(BUCKETS + 1)]
    else:
        lo = 0.0
        edges = [lo + (hi - lo) * i / BUCKETS for i in range(BUCKETS + 1)]
    edges[-1] = hi * 1.001  # the longest run falls inside the last bucket
    if log_scale:
        edges[0] *= 0.999  # and the shortest inside the first

    def within(i):
        q = Q(run_time__lt=timedelta(seconds=edges[i + 1]))
        if i:
            q &= Q(run_time__gte=timedelta(seconds=edges[i]))
        return q

    aggregates = {}
    for i in range(BUCKETS):
        aggregates[f"s{i}"] = Count("pk", filter=within(i) & Q(result=TaskResult.SUCCESS))
        aggregates[f"f{i}"] = Count("pk", filter=within(i) & Q(result=TaskResult.FAILURE))
    found = done.aggregate(**aggregates)
    return Histogram(edges=edges, succeeded=[found[f"s{i}"] for i in range(BUCKETS)],
                     failed=[found[f"f{i}"] for i in range(BUCKETS)], log_scale=log_scale)


SCATTER_POINTS = 2000


def run_scatter(job: Job, completed: int) -> list[tuple]:
    """Start time against run time for at most ~2,000 completed tasks, sampled in the database.

    Every k-th task by pk (k from the completed count the page already has), so
    the sample spreads over the whole job; the LIMIT bounds it whatever happens.
    """
    step = max(1, math.ceil(completed / SCATTER_POINTS))
    done = Task.objects.filter(job_id=job.pk, state=TaskState.COMPLETED, run_time__isnull=False)
    if step > 1:
        done = done.annotate(bucket=F("pk") % step).filter(bucket=0)
    rows = done.order_by("pk").values_list("batch_id", "start_time", "run_time", "result")[:SCATTER_POINTS]
    return [(i, start, run.total_seconds(), result) for i, start, run, result in rows]


def durations_context(job: Job, current: counts.TaskCounts) -> dict:
    histogram = duration_histogram(job)
    scatter = run_scatter(job, current.completed)
    return {"job": job, "durations_figure": durations_figure(histogram, scatter),
            "node_timeline": node_timeline(job)}


def durations_figure(histogram: Histogram, scatter: list[tuple]) -> str:
    """The two duration charts' data as JSON for the page's Plotly glue."""
    return json.dumps({
        "histogram": {"labels": histogram.labels, "ranges": histogram.ranges, "succeeded": histogram.succeeded,
                      "failed": histogram.failed},
        "scatter": {
            "ok": [[s.isoformat(), d, i] for i, s, d, r in scatter if r == "success"],
            "failed": [[s.isoformat(), d, i] for i, s, d, r in scatter if r != "success"],
        },
    })


# --- small helpers ---------------------------------------------------------------------


def human_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def node_tasks(job: Job) -> list[dict]:
    """Per worker, the job's preparation and release runs (none without a preparation task)."""
    return status(job) if job.job_preparation_task else []
