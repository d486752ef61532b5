"""WebSocket consumers that keep the Pools page, a pool's page and a node's page current.

As the job pages (`jobs.consumers.LivePage`): the watcher flags a page when the
versions of what it shows moved (`pools.dashboard.pool_versions`); the consumer
reads again, and sends the fragments whose content changed, rendered from the
partials the page was rendered with. What did not change is compared before it is
rendered (a heatmap of thousands of tiles is drawn only when a tile changed).
"""

import time

from django.http import QueryDict
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.access import may_operate
from jobs.consumers import LivePage

from . import dashboard
from .models import ComputeNode, Pool
from .selectors import find_pool


class PoolPage(LivePage):
    """A page of one account's pools: who may operate them decides which controls it shows."""

    def pool_of(self, pool_id: str) -> Pool | None:
        account = self.account()
        self.operator = bool(account) and may_operate(self.scope["user"], account)
        return account and find_pool(account, pool_id)

    def query(self) -> QueryDict:
        return QueryDict(self.scope.get("query_string", b"").decode("utf-8", "replace"))


class PoolListConsumer(PoolPage):
    """The Pools page: its table, when a pool on it or the set of pools changes."""

    min_interval = 0.5  # a list: twice a second is live enough

    def load(self) -> bool:
        self.account_shown = self.account()
        self.operator = bool(self.account_shown) and may_operate(self.scope["user"], self.account_shown)
        self.pool_pks: list[int] = []
        self.sent = None
        return self.account_shown is not None

    def keys(self) -> list:
        return [("pools", self.account_shown.pk), *(("pool", pk) for pk in self.pool_pks)]

    def render_update(self) -> list[str]:
        rows, more = dashboard.pool_list(self.account_shown)
        self.pool_pks = [row.pool.pk for row in rows]
        html = render_to_string("pools/pool_list.html#pool-table", {
            "rows": rows, "more": more, "operator": self.operator, "shown": dashboard.POOLS_SHOWN})
        if html == self.sent:
            return []
        self.sent = html
        return [html]


class PoolConsumer(PoolPage):
    """A pool's page: its summary (and a point of the chart), the heatmap, the node table."""

    min_interval = 0.25  # a heatmap of thousands of tiles: four updates a second at most

    def load(self) -> bool:
        self.pool = self.pool_of(self.scope["url_route"]["kwargs"]["pool_id"])
        self.after = self.query().get("after", "")[:128]
        self.sent: dict[str, object] = {}
        return self.pool is not None

    def keys(self) -> list:
        return [("pool", self.pool.pk)]

    def render_update(self) -> list[str]:
        pool = Pool.objects.filter(pk=self.pool.pk).first()
        if pool is None:
            return [render_to_string("pools/pool_detail.html#gone", {"pool": self.pool})]
        pool.account = self.pool.account
        self.pool = pool
        context = {**dashboard.pool_context(pool, self.after), "operator": self.operator,
                   "options": dashboard.NODE_OPTIONS}
        row = context["row"]
        fragments = []
        seen = {
            "summary": (pool.state, pool.allocation_state, pool.last_modified, pool.target_dedicated_nodes,
                        pool.target_low_priority_nodes, pool.resize_errors, row.by_state, row.slots_used,
                        row.slots_total),
            "heatmap": context["heatmap"],
            "node-table": ([(n.name, n.state, n.scheduling_state, n.slots, n.running_tasks_count,
                             n.running_task_slots_count, n.total_tasks_run) for n in context["nodes"]],
                           context["next_after"]),
        }
        for part, state in seen.items():
            if self.sent.get(part) != state:
                self.sent[part] = state
                fragments.append(render_to_string(f"pools/pool_detail.html#{part}",
                                                  {**context, "sample_at": time.time()}))
        return fragments


class NodeConsumer(PoolPage):
    """A node's page: its state, what it runs, its start task's output and its host's usage."""

    min_interval = 0.25

    def load(self) -> bool:
        kwargs = self.scope["url_route"]["kwargs"]
        self.pool = self.pool_of(kwargs["pool_id"])
        self.node = self.pool and ComputeNode.objects.filter(pool=self.pool, name=kwargs["node_id"]).first()
        self.sent: dict[str, object] = {}
        return self.node is not None

    def keys(self) -> list:
        return [("node", self.pool.pk, self.node.pk)]

    def render_update(self) -> list[str]:
        node = ComputeNode.objects.filter(pk=self.node.pk, pool_id=self.pool.pk).first()
        if node is None:
            return [render_to_string("pools/node_detail.html#gone", {"pool": self.pool, "node": self.node})]
        self.node = node
        context = {**dashboard.node_context(self.pool, node, files=False), "operator": self.operator,
                   "options": dashboard.NODE_OPTIONS, "disable_options": dashboard.DISABLE_OPTIONS,
                   "now": timezone.now()}
        fragments = []
        for part in ("node-summary", "node-tasks", "start-task", "usage"):
            html = render_to_string(f"pools/node_detail.html#{part}", context)
            if self.sent.get(part) != html:
                self.sent[part] = html
                fragments.append(html)
        return fragments
