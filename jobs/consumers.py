"""WebSocket consumers that keep the jobs list and the job page current.

Each open page has one consumer. The watcher flags it when one of its jobs
changed; the consumer then renders the fragments that differ from what it last
sent, from the same template partials the page was rendered with, and sends
them in one message. htmx's ws extension swaps each top-level element of a
message out of band, in place of the element with its id, so the partials
carry no hx-swap-oob mark (and no flag asking for one). After each message
it waits `min_interval`: whatever happens meanwhile is folded into the next
message, so a page gets at most ten updates a second and the last one always
shows the state after the last change.
"""

import asyncio
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict
from django.template.loader import render_to_string

from accounts.access import SESSION_KEY, chosen_account
from batchapi.input import INT64_MAX, bad_text, bounded_int, parse_message
from tasks import counts
from tasks.models import Task

from . import dashboard, waiting
from .models import Job
from .selectors import find_job
from .watcher import watcher

# How often a job page with waiting tasks looks again: what they wait for (nodes, pools)
# changes without the job changing.
WAITING_RECHECK = 3.0

log = logging.getLogger(__name__)


class LivePage(AsyncWebsocketConsumer):
    """A page kept current: watches keys, pushes what changed, at most every `min_interval`."""

    min_interval = 0.11  # seconds: at most ~9 updates a second, with room for jitter under 10

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not self.scope_is_clean():
            await self.close()  # before accept: the browser's handshake fails (HTTP 403)
            return
        if not await database_sync_to_async(self.load)():
            await self.close()
            return
        await self.accept()
        self.dirty = asyncio.Event()
        self.recheck_in: float | None = None
        self.watching: set = set()
        self.rewatch(self.keys())
        self.pump_task = asyncio.create_task(self.pump())
        self.changed()  # send the current state now: a page that reconnects catches up at once

    async def disconnect(self, code):
        for key in getattr(self, "watching", ()):
            watcher.unwatch(key, self.changed)
        task = getattr(self, "pump_task", None)
        if task is not None:
            task.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        # Anyone can type into a socket: what is no JSON object of sane text and depth
        # is dropped, and `told` checks each value's type, so no message ends the socket.
        message = parse_message(text_data or "{}")
        if message is not None:
            self.told(message)
            self.changed()

    def scope_is_clean(self) -> bool:
        """Whether the socket's path and query hold only text the database takes (batchapi.input)."""
        query = QueryDict(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        texts = [self.scope.get("path", ""), *self.scope.get("url_route", {}).get("kwargs", {}).values(),
                 *(text for key, values in query.lists() for text in (key, *values))]
        return not any(isinstance(text, str) and bad_text(text) for text in texts)

    def changed(self) -> None:
        self.dirty.set()

    def rewatch(self, keys) -> None:
        keys = set(keys)
        for key in self.watching - keys:
            watcher.unwatch(key, self.changed)
        for key in keys - self.watching:
            watcher.watch(key, self.changed)
        self.watching = keys

    async def pump(self):
        try:
            while True:
                await self.dirty.wait()
                self.dirty.clear()
                self.recheck_in = None
                fragments = await database_sync_to_async(self.render_update)()
                for message in messages_of(fragments):
                    await self.send(text_data=message)
                self.rewatch(self.keys())
                if self.recheck_in is not None:  # something was held back: look again when it is due
                    asyncio.get_running_loop().call_later(self.recheck_in, self.changed)
                await asyncio.sleep(self.min_interval)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live page %s failed", self.scope.get("path"))
            await self.close(code=1011)  # the page reconnects and starts afresh

    def account(self):
        """The account the page shows (the session's choice): a socket sees nothing of any other."""
        session = self.scope.get("session")
        return chosen_account(self.scope["user"], session.get(SESSION_KEY) if session is not None else None)

    # --- what subclasses fill in (the sync ones run in a database thread) ------------------

    def load(self) -> bool:
        return True

    def keys(self) -> list:
        return []

    def told(self, message: dict) -> None:
        """A message from the page (what it shows now)."""

    def render_update(self) -> list[str]:
        raise NotImplementedError


def messages_of(fragments: list[str]) -> list[str]:
    """Join fragments into as few messages as HTML parsing allows.

    htmx parses a message inside a <template>, whose parsing mode is set by the
    first tag: after a <section>, a <tr> is dropped (its cells come loose). So
    table rows travel in a message of their own.
    """
    rows = [f for f in fragments if f.lstrip().startswith("<tr")]
    rest = [f for f in fragments if not f.lstrip().startswith("<tr")]
    return ["\n".join(part) for part in (rest, rows) if part]


class JobListConsumer(LivePage):
    """The jobs list: its table and tab counts, when a job on it or the set of jobs changes."""

    min_interval = 0.5  # a list of many jobs: twice a second is live enough

    def load(self) -> bool:
        query = QueryDict(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        self.filter = dashboard.JobFilter.from_query(query, self.account())
        self.job_pks: list[int] = []
        self.sent = None
        return True

    def keys(self) -> list:
        return [("jobs",), *(("job", pk) for pk in self.job_pks)]

    def render_update(self) -> list[str]:
        rows, next_before = dashboard.job_page(self.filter)
        self.job_pks = [row.job.pk for row in rows]
        html = render_to_string("jobs/job_list.html#job-table", {
            "rows": rows, "next_before": next_before, "filter": self.filter,
            "tabs": dashboard.job_tabs(self.filter.account),
        })
        if html == self.sent:
            return []
        self.sent = html
        return [html]


class JobConsumer(LivePage):
    """The job page: counts cards, progress bar and chart point; changed task rows; duration charts."""

    durations_every = 5.0  # seconds: a histogram over the whole job is worth refreshing less often

    def load(self) -> bool:
        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        account = self.account()
        self.job = account and find_job(account, job_id)
        self.summary_sent = None
        self.rows_seen: dict[int, object] = {}  # pk -> last_modified the page shows
        self.visible: list[int] = []
        self.durations_at = 0.0
        self.durations_completed = None
        self.node_tasks_sent = None
        return self.job is not None

    def keys(self) -> list:
        return [("job", self.job.pk)]

    def told(self, message: dict) -> None:
        visible = message.get("visible")
        if isinstance(visible, list):
            # The page swapped its table: these rows are on screen, as fresh as their render.
            pks = (bounded_int(pk, low=1, high=INT64_MAX) for pk in visible[:200])
            self.visible = [pk for pk in pks if pk is not None]
            self.rows_seen = {pk: self.rows_seen.get(pk) for pk in self.visible}

    def render_update(self) -> list[str]:
        job = Job.objects.filter(pk=self.job.pk).first()
        if job is None:
            return [render_to_string("jobs/job_detail.html#gone", {"job": self.job})]
        self.job = job
        current = counts.read(job.pk)
        fragments = []
        reasons = waiting.why_waiting(job, current)
        if reasons:  # nodes and pools change without the job: look again in a while
            self.recheck_in = min(self.recheck_in or WAITING_RECHECK, WAITING_RECHECK)
        state = (job.state, job.last_modified, current.as_dict(), [r.text for r in reasons])
        if state != self.summary_sent:
            self.summary_sent = state
            fragments.append(render_to_string("jobs/job_detail.html#summary", {
                "job": job, "counts": current, "progress": dashboard.Progress.of(current),
                "sample_at": time.time(), "waiting": reasons,
            }))
        fragments += self.changed_rows(job)
        fragments += self.changed_node_tasks(job)
        now = time.monotonic()
        if current.completed != self.durations_completed:
            wait = self.durations_at + self.durations_every - now
            if wait > 0:
                self.recheck_in = wait  # the last change of a burst still reaches the charts
            else:
                self.durations_at, self.durations_completed = now, current.completed
                fragments.append(render_to_string("jobs/job_detail.html#durations",
                                                  dashboard.durations_context(job, current)))
        return fragments

    def changed_node_tasks(self, job: Job) -> list[str]:
        """The preparation and release panel, when a run on some worker moved."""
        if not job.job_preparation_task:
            return []
        runs = dashboard.node_tasks(job)
        seen = [(n["node_id"], kind, run.attempt, run.state, run.retry_count)
                for n in runs for kind, run in n.items() if kind != "node_id"]
        if seen == self.node_tasks_sent:
            return []
        self.node_tasks_sent = seen
        return [render_to_string("jobs/job_detail.html#node-tasks", {"job": job, "node_tasks": runs})]

    def changed_rows(self, job: Job) -> list[str]:
        if not self.visible:
            return []
        stamps = dict(Task.objects.filter(job_id=job.pk, pk__in=self.visible)
                      .values_list("pk", "last_modified")[: len(self.visible)])
        changed = [pk for pk, stamp in stamps.items() if self.rows_seen.get(pk) != stamp]
        if not changed:
            return []
        rows = dashboard.tasks_by_pk(job, changed)
        for task in rows:
            self.rows_seen[task.pk] = task.last_modified
        return [render_to_string("jobs/job_detail.html#task-row", {"task": task, "job": job})
                for task in rows]
