"""The one place a job's, a task's, a pool's or a node's state changes: a compare-and-set, with its bookkeeping.

Every service moves rows through `move`: it updates only rows still in one of
the expected states (and so acts on the row count, correct on SQLite and
PostgreSQL alike), records the previous state and when it began, stamps
`last_modified`, and, for tasks and nodes, changes the count rows (the job's task
counts, the pool's node counts) by exactly the rows that moved, in the caller's
transaction. Every change of the task counts goes through `count`, which also
nudges the job's live pages after commit, and of the node counts through
`count_nodes`. A test keeps state updates of these rows out of every other module
(tests/test_layout.py); the rows of preparation and release runs have states of
their own, written by their services.
"""

from collections.abc import Iterable

from django.db.models import Count, F, QuerySet
from django.utils import timezone

from pools import node_counts
from pools.models import ComputeNode
from tasks import counts
from tasks.models import Task

from . import events
from .models import Job


def move(rows: QuerySet, to: str, *, from_states: Iterable[str], job_pk: int | None = None, now=None,
         result: str | None = None, from_result: str | None = None, pending: counts.Pending | None = None,
         extra_slots: int | None = None, **values) -> int:
    """Move the rows of `rows` (job `job_pk`, tasks of it, or another resource's rows, such as a
    pool's) that are in one of `from_states` to state `to`; how many moved.

    Jobs: the job's watchers are nudged after commit. Tasks: their counts move from
    (state, `from_result`) to (`to`, `result`), state by state; the rows take `result`
    too, if given. The change is added to `pending` when given (the caller counts it
    once, at the end of its transaction) or counted at once. The slot counts move
    with them: `extra_slots` is the rows' slots beyond one each when the caller knows
    them (a claim, a run's end: every row moves or none), else they are read from
    the rows. `values` are the other columns the move writes.
    """
    now = now or timezone.now()
    if result is not None:
        values["result"] = result
    stamp = dict(previous_state=F("state"), previous_state_transition_time=F("state_transition_time"),
                 state_transition_time=now, last_modified=now)
    if rows.model is ComputeNode:
        return _move_nodes(rows, to, from_states, {**stamp, **values})
    if rows.model is Job and job_pk is None:
        raise TypeError("move() moves one job: name it (job_pk), whose watchers are nudged")
    if rows.model is not Task:
        moved = rows.filter(state__in=list(from_states)).update(state=to, **stamp, **values)
        if moved and rows.model is Job:
            events.job_changed(job_pk)
        return moved
    if job_pk is None:
        raise TypeError("move() moves the tasks of one job: name it (job_pk)")
    groups = _same_counts(from_states)
    if extra_slots is not None and len(groups) > 1:
        raise TypeError("extra_slots is known for a move from states that count alike")
    total = 0
    for group in groups:
        group_rows = rows.filter(state__in=group)
        per_task = counts.transition((group[0], from_result), (to, result))
        if not any(per_task.values()):  # preparing to running counts alike: no count row is touched
            total += group_rows.update(state=to, **stamp, **values)
            continue
        extra = extra_slots
        if extra is None:  # locked, so that what is counted is what moves
            heavy = list(group_rows.filter(required_slots__gt=1).select_for_update()
                         .values_list("required_slots", flat=True))
            extra = sum(heavy) - len(heavy)
        moved = group_rows.update(state=to, **stamp, **values)
        delta = counts.with_slots(counts.scaled(per_task, moved), counts.scaled(per_task, extra if moved else 0))
        if pending is not None:
            pending.add(job_pk, delta)
        else:
            count(job_pk, delta)
        total += moved
    return total


def count(job_pk: int, delta: dict[str, float]) -> None:
    """Change job `job_pk`'s task counts (and statistics) by `delta`, in the caller's transaction,
    and nudge its watchers after commit. Adding and deleting tasks count through here too."""
    counts.apply(job_pk, delta)
    events.job_changed(job_pk)


def count_nodes(pool_pk: int, dedicated: bool, delta: dict[str, int]) -> None:
    """Change pool `pool_pk`'s node counts by `delta` ({state: change}), in the caller's transaction,
    and nudge its live pages after commit. Nodes joining and leaving the pool count through here too."""
    node_counts.apply(pool_pk, dedicated, delta)
    events.pool_changed(pool_pk)


def remove_nodes(rows: QuerySet) -> int:
    """Delete the node rows of `rows` (nodes that left their pool), counting each out of its pool."""
    groups = rows.values_list("pool_id", "is_dedicated", "state").annotate(n=Count("pk")).order_by()
    removed = 0
    for pool_pk, dedicated, state, _ in groups:
        n, _ = rows.filter(pool_id=pool_pk, is_dedicated=dedicated, state=state).delete()
        if n:
            count_nodes(pool_pk, dedicated, {state: -n})
        removed += n
    return removed


def _move_nodes(rows: QuerySet, to: str, from_states: Iterable[str], values: dict) -> int:
    """Nodes move group by group (pool, kind, state), so that each update knows what its rows counted as."""
    groups = (rows.filter(state__in=list(from_states)).values_list("pool_id", "is_dedicated", "state")
              .annotate(n=Count("pk")).order_by())
    total = 0
    for pool_pk, dedicated, state, _ in groups:
        moved = rows.filter(pool_id=pool_pk, is_dedicated=dedicated, state=state).update(state=to, **values)
        if moved and state != to:
            count_nodes(pool_pk, dedicated, {state: -moved, to: moved})
        total += moved
    return total


def _same_counts(states: Iterable[str]) -> list[list[str]]:
    """The states in groups that count alike (preparing and running both count as running),
    so that one update per group knows what its rows counted as."""
    groups: dict[tuple, list[str]] = {}
    for state in states:
        groups.setdefault(tuple(counts.bucket(state, None).items()), []).append(state)
    return list(groups.values())
