"""A pool's nodes by state (List Pool Node Counts): read in O(1), changed with the states they count.

As the task counts (`tasks.counts`): only `jobs.transitions` calls `apply`, inside
the transaction that changes the node rows; `recount` compares the rows with the
node table and repairs drift. `apply` also keeps the samples of the pool page's
nodes-over-time chart.
"""

import random
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from tasks import counts as task_counts

from .models import ComputeNode, NodeCountSample, NodeCountShard, NodeState

STATES = tuple(state.value for state in NodeState)


@dataclass(frozen=True)
class NodeCounts:
    """One pool's nodes of one kind (dedicated or low-priority) by state."""

    by_state: dict[str, int] = field(default_factory=dict)

    def of(self, state: str) -> int:
        return self.by_state.get(state, 0)

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    def as_dict(self) -> dict[str, int]:
        return {state: self.of(state) for state in STATES}


def create_shards(pool) -> None:
    NodeCountShard.objects.bulk_create(
        NodeCountShard(pool=pool, is_dedicated=dedicated, shard=i)
        for dedicated in (True, False) for i in range(settings.BATCHSITE_COUNT_SHARDS))


def apply(pool_pk: int, dedicated: bool, delta: dict[str, int]) -> None:
    """Add `delta` ({state: change}) to the pool's counts, database-side, on one random shard."""
    changes = {state: F(state) + n for state, n in delta.items() if n}
    if not changes:
        return
    changes["version"] = F("version") + 1
    shard = random.randrange(settings.BATCHSITE_COUNT_SHARDS)
    rows = NodeCountShard.objects.filter(pool_id=pool_pk, is_dedicated=dedicated, shard=shard)
    if not rows.update(**changes):  # a pool made before its shards (or repaired by recount)
        NodeCountShard.objects.get_or_create(pool_id=pool_pk, is_dedicated=dedicated, shard=shard)
        rows.update(**changes)
    sample(pool_pk, delta)


# --- samples for the nodes-over-time chart --------------------------------------------


def sample(pool_pk: int, delta: dict[str, int]) -> None:
    """Make this second's sample of the pool's counts include `delta`.

    The first change of a second writes the counts (read after the change, in its
    transaction); each later change of that second adds its delta to that row. So a
    sample holds the counts at the end of its second, not at its first change: a
    pool that settles after two nodes joined within one second shows both. Exact on
    SQLite, whose writers take turns; on PostgreSQL a change made at the same moment
    by another transaction can miss its second's sample (the next second's has it).
    """
    at = timezone.now().replace(microsecond=0)
    changes = {state: F(state) + n for state, n in delta.items() if n}
    if NodeCountSample.objects.filter(pool_id=pool_pk, at=at).update(**changes):
        return
    dedicated, low_priority = read(pool_pk)
    NodeCountSample.objects.bulk_create(
        [NodeCountSample(pool_id=pool_pk, at=at, **{s: dedicated.of(s) + low_priority.of(s) for s in STATES})],
        ignore_conflicts=True)


def samples(pool_pk: int, *, limit: int = 5000) -> list[NodeCountSample]:
    """The pool's samples, oldest first: the newest `limit` of them (thinning keeps them few)."""
    return list(reversed(NodeCountSample.objects.filter(pool_id=pool_pk).order_by("-at")[:limit]))


def thin_samples(*, chunk: int = 5000) -> int:
    """Thin old samples as the task counts' are thinned (housekeeping): rows deleted."""
    return task_counts.thin_samples(chunk=chunk, model=NodeCountSample, owner="pool_id")


def read(pool_pk: int) -> tuple[NodeCounts, NodeCounts]:
    """(dedicated, low-priority) counts of the pool: one grouped aggregate over its few shard rows."""
    return read_many([pool_pk])[pool_pk]


def read_many(pool_pks: list[int]) -> dict[int, tuple[NodeCounts, NodeCounts]]:
    """Counts of several pools in one grouped query (List Pool Node Counts, the Pools page)."""
    rows = (NodeCountShard.objects.filter(pool_id__in=pool_pks).values("pool_id", "is_dedicated")
            .annotate(**{state: Sum(state) for state in STATES}).order_by())
    found = {(row.pop("pool_id"), row.pop("is_dedicated")): NodeCounts({k: v or 0 for k, v in row.items()})
             for row in rows}
    return {pk: (found.get((pk, True), NodeCounts()), found.get((pk, False), NodeCounts())) for pk in pool_pks}


def actual(pool_pk: int) -> tuple[NodeCounts, NodeCounts]:
    """The counts as the node table has them now: a full count, for recount and tests only."""
    by_kind: dict[bool, dict[str, int]] = {True: {}, False: {}}
    rows = (ComputeNode.objects.filter(pool_id=pool_pk).values("is_dedicated", "state")
            .annotate(n=Count("pk")).order_by())
    for row in rows:
        by_kind[row["is_dedicated"]][row["state"]] = row["n"]
    return NodeCounts(by_kind[True]), NodeCounts(by_kind[False])


def recount(pool_pk: int, *, repair: bool) -> tuple[tuple[NodeCounts, NodeCounts], tuple[NodeCounts, NodeCounts]]:
    """Compare the stored counts with the node table; with repair, make them equal.

    Runs in the caller's transaction, which must lock out writers of this pool's
    nodes (SQLite's IMMEDIATE transaction does; on PostgreSQL we lock the shards).
    Returns (stored, actual) as they were before any repair.
    """
    list(NodeCountShard.objects.select_for_update().filter(pool_id=pool_pk))
    stored, real = read(pool_pk), actual(pool_pk)
    if repair and [c.as_dict() for c in stored] != [c.as_dict() for c in real]:
        for dedicated, counts in ((True, real[0]), (False, real[1])):
            for i in range(settings.BATCHSITE_COUNT_SHARDS):
                NodeCountShard.objects.get_or_create(pool_id=pool_pk, is_dedicated=dedicated, shard=i)
            rows = NodeCountShard.objects.filter(pool_id=pool_pk, is_dedicated=dedicated)
            rows.exclude(shard=0).update(**dict.fromkeys(STATES, 0))
            rows.filter(shard=0).update(**counts.as_dict(), version=F("version") + 1)
    return stored, real
