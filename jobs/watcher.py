"""One watcher per web process: which of the jobs on screen changed, asked of the database.

The worker is another process, and an in-memory channel layer lives inside one
process, so it never hears of the worker's changes. What every process can see is
the database: each change bumps its job's counts `version` (or the job row's
`last_modified`) in the same transaction. The watcher reads those for every
watched job in one grouped query, ten times a second, and wakes the pages whose
jobs moved. That costs ~1 % of a core however many pages are open (one query
for all of them), can never show a change that rolled back, and needs no server.

With Redis (scale-out) each commit also PUBLISHes its job's pk
(`jobs.events`); the watcher subscribes and looks at once, so a change reaches
the page in milliseconds, and the poll is only the safety net.

Pages register a callback per key: ("job", pk) for a job, ("jobs",) for the
set of jobs (a job was added or removed); the pool pages ("pools", account pk),
("pool", pk) and ("node", pool pk, node pk), whose versions `pools.dashboard`
reads. Callbacks only flag the page; each page renders on its own schedule,
which is where updates are coalesced.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Sum

from pools.dashboard import POOL_KEYS, pool_versions

from .events import CHANNEL
from .models import Job

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
# With Redis nudges the poll only catches what a lost nudge missed.
POLL_SECONDS_WITH_NUDGES = 1.0

Key = tuple


def read_versions(keys: list[Key]) -> dict[Key, object]:
    """Something that changes whenever what a key stands for changes: one query per kind of key."""
    found: dict[Key, object] = {}
    job_pks = [key[1] for key in keys if key[0] == "job"]
    if job_pks:
        rows = (Job.objects.filter(pk__in=job_pks).annotate(version=Sum("count_shards__version"))
                .values_list("pk", "state", "last_modified", "version"))
        by_pk = {pk: rest for pk, *rest in rows}
        for pk in job_pks:
            found[("job", pk)] = tuple(by_pk[pk]) if pk in by_pk else None  # None: deleted
    if ("jobs",) in keys:
        found[("jobs",)] = tuple(Job.objects.aggregate(n=Count("pk"), last=Max("pk")).values())
    found.update(pool_versions([key for key in keys if key[0] in POOL_KEYS]))
    return found


class Watcher:
    def __init__(self):
        self.callbacks: dict[Key, set[Callable[[], None]]] = defaultdict(set)
        self.seen: dict[Key, object] = {}
        self.poller: asyncio.Task | None = None
        self.listener: asyncio.Task | None = None
        self.wake: asyncio.Event | None = None
        # One thread with its own kept connection: polling ten times a second
        # must not open a connection (and run SQLite's pragmas) every time.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchsite-watcher")

    def watch(self, key: Key, callback: Callable[[], None]) -> None:
        self.callbacks[key].add(callback)
        self._start()

    def unwatch(self, key: Key, callback: Callable[[], None]) -> None:
        waiting = self.callbacks.get(key)
        if waiting is not None:
            waiting.discard(callback)
            if not waiting:
                del self.callbacks[key]
                self.seen.pop(key, None)

    def nudge(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def _start(self) -> None:
        if self.poller is None or self.poller.done():
            self.wake = asyncio.Event()
            self.poller = asyncio.get_running_loop().create_task(self._poll())
        if settings.REDIS_URL and (self.listener is None or self.listener.done()):
            self.listener = asyncio.get_running_loop().create_task(self._listen())

    async def _poll(self) -> None:
        interval = POLL_SECONDS_WITH_NUDGES if settings.REDIS_URL else POLL_SECONDS
        loop = asyncio.get_running_loop()
        while self.callbacks:
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self.wake.clear()
            keys = list(self.callbacks)
            if not keys:
                break
            try:
                versions = await loop.run_in_executor(self.executor, self._read, keys)
            except Exception:
                log.exception("the dashboard watcher could not read job versions; retrying")
                await asyncio.sleep(1)
                continue
            for key, version in versions.items():
                if key in self.callbacks and self.seen.get(key, ...) != version:
                    self.seen[key] = version
                    for callback in list(self.callbacks[key]):
                        callback()

    @staticmethod
    def _read(keys: list[Key]) -> dict[Key, object]:
        try:
            return read_versions(keys)
        except Exception:
            connection.close()  # a broken connection: the next poll opens a new one
            raise

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        while self.callbacks:
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while self.callbacks:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message and self._wanted(message["data"]):
                            self.nudge()
            except Exception as exc:
                log.warning("dashboard watcher lost Redis (%s); polling until it is back", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    def _wanted(self, data: bytes) -> bool:
        kind, _, pk = data.decode("ascii", "replace").rpartition(":")  # "<job pk>" or "pool:<pool pk>"
        try:
            pk = int(pk)
        except ValueError:
            return False
        if kind == "pool":
            return any(key[0] == "pools" or (key[0] in ("pool", "node") and key[1] == pk) for key in self.callbacks)
        return ("job", pk) in self.callbacks or ("jobs",) in self.callbacks


watcher = Watcher()
