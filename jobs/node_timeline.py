"""The job page's node timeline: rows are nodes, bars are the task runs on each over time.

Computed in the database and bounded to what a screen shows, at any number of tasks:
the runs of the last `MAX_BUCKETS` time units (a unit of a second, a minute, an hour
or a day, so that the job's span fits), read by the index task_job_started. When they
are few, each run is a bar from its start to its end; when they are many, the runs
are counted per node and time unit in one grouped query (a heatmap), failures apart.
Nodes beyond the `MAX_NODES` busiest are one row, "other nodes".
"""

from datetime import timedelta

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncDay, TruncHour, TruncMinute, TruncSecond
from django.utils import timezone

from tasks.models import Task, TaskResult, TaskState

from .models import Job

UNITS = ((timedelta(seconds=1), TruncSecond), (timedelta(minutes=1), TruncMinute), (timedelta(hours=1), TruncHour),
         (timedelta(days=1), TruncDay))
MAX_BUCKETS = 240
MAX_NODES = 40
MAX_BARS = 1500  # runs drawn one by one; beyond, counted per node and time unit
OTHERS = "other nodes"


def node_timeline(job: Job) -> dict:
    """{"mode": "bars" | "counts" | "empty", ...} as the page's Plotly glue draws it."""
    runs = Task.objects.filter(job=job, start_time__isnull=False)
    span = runs.aggregate(first=Min("start_time"), last=Max("start_time"))
    if span["first"] is None:
        return {"mode": "empty"}
    unit, trunc = next(((u, t) for u, t in UNITS if (span["last"] - span["first"]) / u <= MAX_BUCKETS), UNITS[-1])
    since = max(span["first"], span["last"] - unit * MAX_BUCKETS)
    window = runs.filter(start_time__gte=since)
    busiest = [row["node_id"] for row in window.values("node_id").annotate(n=Count("pk")).order_by("-n", "node_id")
               [:MAX_NODES]]
    row_of = {node: node for node in busiest}
    if window[:MAX_BARS + 1].count() <= MAX_BARS:
        return _bars(window, row_of)
    return _counts(window, trunc, row_of, unit)


def _bars(window, row_of: dict[str, str]) -> dict:
    now = timezone.now()
    bars = []
    for node_id, batch_id, start, end, state, result in window.values_list(
            "node_id", "batch_id", "start_time", "end_time", "state", "result").order_by("start_time"):
        ended = end if end and end >= start else (now if state in (TaskState.RUNNING, TaskState.PREPARING) else start)
        outcome = "running" if state != TaskState.COMPLETED else ("failed" if result == TaskResult.FAILURE
                                                                  else "succeeded")
        bars.append([row_of.get(node_id, OTHERS), start.isoformat(), (ended - start).total_seconds() * 1000,
                     batch_id, outcome])
    return {"mode": "bars", "nodes": _rows(row_of, bars, 0), "bars": bars}


def _counts(window, trunc, row_of: dict[str, str], unit: timedelta) -> dict:
    failed = Q(state=TaskState.COMPLETED, result=TaskResult.FAILURE)
    rows = (window.annotate(at=trunc("start_time")).values("node_id", "at")
            .annotate(n=Count("pk"), failed=Count("pk", filter=failed)).order_by("at"))
    cells: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = (row_of.get(row["node_id"], OTHERS), row["at"].isoformat())
        cell = cells.setdefault(key, [0, 0])
        cell[0] += row["n"]
        cell[1] += row["failed"]
    points = [[node, at, n, failures] for (node, at), (n, failures) in cells.items()]
    return {"mode": "counts", "unit": int(unit.total_seconds()), "nodes": _rows(row_of, points, 0),
            "cells": points}


def _rows(row_of: dict[str, str], items: list, index: int) -> list[str]:
    """The rows to draw, busiest first, "other nodes" last when it has anything."""
    rows = list(row_of.values())
    if any(item[index] == OTHERS for item in items):
        rows.append(OTHERS)
    return rows
