"""What the pool and node pages show, read from the database in bounded queries.

The views render these for a page; the consumers render the same for a live
update. Node counts come from the count rows (`node_counts`), never from counting
node rows; the heatmap is one query of a few columns, at most MAX_TILES rows; the
nodes-over-time chart reads the pool's samples.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.safestring import mark_safe

from tasks import logs
from tasks.files import startup_dir
from tasks.models import RUNNING_STATES, Task

from . import node_counts
from .models import AGENT_STATES, ComputeNode, NodeCountShard, Pool, SchedulingState
from .node_counts import STATES, NodeCounts
from .node_files import list_node_files
from .selectors import recent_tasks
from .services import node_actions

POOLS_SHOWN = 200  # the Pools page: an account has a few pools; it says when it shows only the first
MAX_TILES = 3000  # the heatmap draws at most this many nodes (a CSS grid of tiles)
NODE_PAGE = 50  # rows of the pool page's node table
RUNNING_SHOWN = 50  # a node's running tasks listed on its page
START_TASK_LOG = 16 * 1024  # the tail of the start task's stdout and stderr on the node page
NODE_OPTIONS = node_actions.OPTIONS  # what becomes of the tasks of a node that leaves or reboots
DISABLE_OPTIONS = ("requeue", "terminate", "taskcompletion")  # nodeDisableSchedulingOption

# The order of states in bars and legends: at work, free, coming, going, broken.
STATE_ORDER = ("running", "idle", "creating", "starting", "waitingforstarttask", "rebooting", "offline",
               "leavingpool", "starttaskfailed", "unusable", "unknown", "preempted")
# The nodes-over-time chart groups the states into a few bands (STATE_ORDER's colours).
CHART_GROUPS = {
    "running": ("running",),
    "idle": ("idle",),
    "starting": ("creating", "starting", "waitingforstarttask", "rebooting"),
    "leaving": ("offline", "leavingpool"),
    "failed": ("starttaskfailed", "unusable", "unknown", "preempted"),
}


@dataclass(frozen=True)
class Segment:
    state: str
    n: int
    pct: float


def bar(by_state: dict[str, int]) -> list[Segment]:
    """The stacked bar of nodes by state: the states that have nodes, in STATE_ORDER."""
    total = sum(by_state.values())
    return [Segment(s, by_state[s], round(100 * by_state[s] / total, 2)) for s in STATE_ORDER
            if by_state.get(s)] if total else []


def combined(dedicated: NodeCounts, low_priority: NodeCounts) -> dict[str, int]:
    return {s: dedicated.of(s) + low_priority.of(s) for s in STATES}


def grouped(by_state: dict[str, int]) -> dict[str, int]:
    return {group: sum(by_state.get(s, 0) for s in states) for group, states in CHART_GROUPS.items()}


@dataclass
class PoolRow:
    """A pool with its node counts and the use of its slots."""

    pool: Pool
    dedicated: NodeCounts = field(default_factory=NodeCounts)
    low_priority: NodeCounts = field(default_factory=NodeCounts)
    slots_used: int = 0
    slots_total: int = 0

    @property
    def by_state(self) -> dict[str, int]:
        return combined(self.dedicated, self.low_priority)

    @property
    def total(self) -> int:
        return self.dedicated.total + self.low_priority.total

    @property
    def bar(self) -> list[Segment]:
        return bar(self.by_state)

    @property
    def chart_counts(self) -> str:
        return json.dumps(grouped(self.by_state))


def slot_use(pool_pks: list[int]) -> dict[int, tuple[int, int]]:
    """(slots in use, slots of the live nodes) of each pool: one grouped aggregate over their nodes."""
    rows = (ComputeNode.objects.filter(pool_id__in=pool_pks).values("pool_id")
            .annotate(used=Sum("running_task_slots_count"), total=Sum("slots", filter=Q(state__in=AGENT_STATES)))
            .order_by().values_list("pool_id", "used", "total"))
    return {pk: (used or 0, total or 0) for pk, used, total in rows}


def pool_rows(pools: list[Pool]) -> list[PoolRow]:
    """Rows for these pools: the counts of all in one query, their slots in another."""
    pks = [pool.pk for pool in pools]
    counts, slots = node_counts.read_many(pks), slot_use(pks)
    return [PoolRow(pool, *counts[pool.pk], *slots.get(pool.pk, (0, 0))) for pool in pools]


def pool_list(account) -> tuple[list[PoolRow], bool]:
    """The account's pools by id with their counts (at most POOLS_SHOWN), and whether there are more."""
    pools = list(Pool.objects.filter(account=account).order_by("key")[: POOLS_SHOWN + 1])
    for pool in pools:
        pool.account = account
    return pool_rows(pools[:POOLS_SHOWN]), len(pools) > POOLS_SHOWN


# --- one pool ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One node of the heatmap: its state in colour, its slots in use as the tile's fill."""

    name: str
    state: str
    scheduling_state: str
    slots: int
    used: int
    dedicated: bool

    @property
    def fill(self) -> int:
        return min(100, round(100 * self.used / self.slots)) if self.slots else 0

    @property
    def disabled(self) -> bool:
        return self.scheduling_state == SchedulingState.DISABLED


TILE_COLUMNS = ("name", "state", "scheduling_state", "slots", "running_task_slots_count", "is_dedicated")


@dataclass(frozen=True)
class Heatmap:
    tiles: list[Tile]
    more: bool  # the pool has more nodes than are drawn

    @property
    def slots(self) -> tuple[int, int]:
        """As `slot_use`, from the tiles (when they are all drawn)."""
        return sum(t.used for t in self.tiles), sum(t.slots for t in self.tiles if t.state in AGENT_STATES)

    def html(self) -> str:
        """The tiles as HTML, each a link to its node's page (relative to the pool page).

        Built here rather than in a template loop: 3,000 tiles took the template 165 ms,
        too slow for a page that redraws them a few times a second; this takes a tenth.
        """
        return mark_safe("".join(
            f'<a class="tile n-{t.state}{" off" if t.disabled else ""}{"" if t.dedicated else " lp"}" '
            f'href="nodes/{quote(t.name, safe="")}/" style="--u:{t.fill}%" title="{escape(t.name)}: {t.state}, '
            f'{t.used}/{t.slots} slots{", scheduling disabled" if t.disabled else ""}"></a>'
            for t in self.tiles))


def heatmap(pool: Pool) -> Heatmap:
    """The pool's nodes by id, at most MAX_TILES: one query of the few columns a tile needs."""
    rows = list(ComputeNode.objects.filter(pool_id=pool.pk).order_by("name").values_list(*TILE_COLUMNS)
                [: MAX_TILES + 1])
    return Heatmap([Tile(*row) for row in rows[:MAX_TILES]], len(rows) > MAX_TILES)


NODE_COLUMNS = ("pk", "pool_id", "name", "state", "scheduling_state", "is_dedicated", "slots", "running_tasks_count",
                "running_task_slots_count", "total_tasks_run", "total_tasks_succeeded", "hostname", "last_modified")


def node_table(pool: Pool, after: str = "") -> tuple[list[ComputeNode], str | None]:
    """One page of the pool's nodes by id after `after` (keyset on the (pool, name) index)."""
    nodes = ComputeNode.objects.filter(pool_id=pool.pk)
    if after:
        nodes = nodes.filter(name__gt=after)
    rows = list(nodes.order_by("name").only(*NODE_COLUMNS)[: NODE_PAGE + 1])
    more = len(rows) > NODE_PAGE
    return rows[:NODE_PAGE], (rows[NODE_PAGE - 1].name if more else None)


def timeline(pool: Pool, by_state: dict[str, int], now) -> dict:
    """Nodes over time, by CHART_GROUPS: the pool's samples and the counts of now, as Plotly's data."""
    points = [(s.at, {state: getattr(s, state) for state in STATES}) for s in node_counts.samples(pool.pk)]
    if not points or points[-1][0] < now:
        points.append((now, by_state))
    bands = [grouped(counts) for _, counts in points]
    return {"x": [at.isoformat() for at, _ in points], **{group: [b[group] for b in bands] for group in CHART_GROUPS}}


def pool_context(pool: Pool, after: str = "") -> dict:
    """What the pool page and its live updates show (but the chart's history): three queries."""
    tiles = heatmap(pool)
    used, total = slot_use([pool.pk]).get(pool.pk, (0, 0)) if tiles.more else tiles.slots
    row = PoolRow(pool, *node_counts.read(pool.pk), used, total)
    nodes, next_after = node_table(pool, after)
    return {"pool": pool, "row": row, "heatmap": tiles, "nodes": nodes, "next_after": next_after, "after": after}


# --- one node ---------------------------------------------------------------------------

TASK_COLUMNS = ("pk", "batch_id", "state", "start_time", "required_slots", "job__batch_id", "job__account_id")


def running_tasks(account, node: ComputeNode) -> list[Task]:
    """What the node runs now, of this account's jobs (the partial index of running tasks by node)."""
    rows = (Task.objects.filter(node_id=node.name, state__in=RUNNING_STATES, job__account=account)
            .select_related("job").only(*TASK_COLUMNS).order_by("start_time", "pk"))
    return list(rows[:RUNNING_SHOWN])


def start_task_logs(pool: Pool, node: ComputeNode) -> list[logs.LogChunk]:
    """The tails of the start task's stdout and stderr on this node, read as a task's logs are
    (no symlink followed, regular files only: the start task is as hostile as any task)."""
    if not (pool.start_task or node.start_task_info):
        return []
    where = startup_dir(pool.account.name, node.name)
    return [logs.read_before(where, name, chunk=START_TASK_LOG) for name in logs.LOG_NAMES]


def usage_figure(node: ComputeNode) -> dict:
    """The host's CPU, memory (percent) and load over the last minutes, from the heartbeat's points."""
    points = [p for p in (node.usage or {}).get("points", []) if isinstance(p, list) and len(p) == 4]
    return {"x": [p[0] for p in points], "cpu": [p[1] for p in points], "memory": [p[2] for p in points],
            "load": [p[3] for p in points], "cores": (node.usage or {}).get("cores")}


NODE_FILES = 50  # node files listed on its page; the API lists them all


def node_context(pool: Pool, node: ComputeNode, *, files: bool = True) -> dict:
    """What the node page and its live updates show (these without its files: no fragment shows them)."""
    recent = recent_tasks(pool.account, pool, [node.name]).get(node.name, [])
    stale = node.heartbeat_at is not None and node.heartbeat_at < timezone.now() - settings.BATCHSITE_WORKER_TIMEOUT
    return {"pool": pool, "node": node, "running": running_tasks(pool.account, node), "recent": recent,
            "start_logs": start_task_logs(pool, node), "start_info": start_task_info(node),
            "usage": usage_figure(node), "stale": stale,
            "files": list_node_files(pool.account.name, node.name, recursive=True, limit=NODE_FILES + 1)
            if files else []}


def start_task_info(node: ComputeNode) -> dict | None:
    """The node's startTaskInfo (Batch's JSON), its times as times."""
    info = dict(node.start_task_info or {})
    for key in ("startTime", "endTime", "lastRetryTime"):
        if isinstance(info.get(key), str):
            info[key] = parse_datetime(info[key])
    return info or None


# --- what the live pages watch (jobs.watcher) ---------------------------------------------

POOL_KEYS = ("pools", "pool", "node")


def pool_versions(keys: list[tuple]) -> dict[tuple, object]:
    """Something that changes whenever what a key stands for changes: at most four queries.

    ("pools", account pk): the set of the account's pools; ("pool", pk): the pool's row,
    its node counts (their version) and its nodes' use of slots and scheduling (one
    grouped aggregate: claims change slots without changing a state); ("node", pool
    pk, pk): the node's row, heartbeat included (which carries the host's usage).
    """
    found: dict[tuple, object] = {}
    accounts = [key[1] for key in keys if key[0] == "pools"]
    if accounts:
        rows = (Pool.objects.filter(account_id__in=accounts).values("account_id")
                .annotate(n=Count("pk"), pks=Sum("pk")).order_by().values_list("account_id", "n", "pks"))
        by_account = {pk: rest for pk, *rest in rows}
        found.update({("pools", pk): tuple(by_account.get(pk, ())) for pk in accounts})
    pool_pks = [key[1] for key in keys if key[0] == "pool"]
    if pool_pks:
        version = (NodeCountShard.objects.filter(pool=OuterRef("pk")).values("pool").annotate(v=Sum("version"))
                   .values("v"))
        rows = (Pool.objects.filter(pk__in=pool_pks).annotate(version=Subquery(version))
                .values_list("pk", "state", "allocation_state", "allocation_state_transition_time", "last_modified",
                             "target_dedicated_nodes", "target_low_priority_nodes", "resize_errors", "version"))
        load = dict((pk, (used, off)) for pk, used, off in ComputeNode.objects.filter(pool_id__in=pool_pks)
                    .values("pool_id").annotate(used=Sum("running_task_slots_count"),
                                                off=Count("pk", filter=Q(scheduling_state=SchedulingState.DISABLED)))
                    .order_by().values_list("pool_id", "used", "off"))
        by_pk = {pk: (*rest, load.get(pk)) for pk, *rest in rows}
        found.update({("pool", pk): by_pk.get(pk) for pk in pool_pks})  # None: deleted
    nodes = [key for key in keys if key[0] == "node"]
    if nodes:
        rows = (ComputeNode.objects.filter(pk__in=[key[2] for key in nodes])
                .values_list("pk", "state", "scheduling_state", "last_modified", "running_tasks_count",
                             "running_task_slots_count", "heartbeat_at"))
        by_pk = {pk: tuple(rest) for pk, *rest in rows}
        found.update({key: by_pk.get(key[2]) for key in nodes})
    return found
