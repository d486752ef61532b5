"""Telling the dashboard that a job changed: a nudge after commit, never the change itself.

The pages learn what changed from the database (`jobs.watcher` compares each
job's counts version and last-modified time), so they can never show a change
that rolled back, and a nudge that is lost costs only latency. Nudges exist for
speed: without Redis the watcher polls every 100 ms; with Redis each commit
publishes the job's pk (`pool:<pk>` for a change of a pool's nodes) and the
watcher of every web process looks at once.

Why plain Redis PUBLISH and not a channel-layer group_send: the worker is
synchronous, and `async_to_sync(group_send)` costs ~3 ms a call (each call runs a
new event loop, which opens a new connection); a PUBLISH on a kept connection
costs ~0.1 ms.
"""

import logging
from functools import partial

from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

CHANNEL = "batchsite:jobs-changed"

_client = None


def _redis():
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _client


def _publish(message: str) -> None:
    try:
        _redis().publish(CHANNEL, message)
    except Exception as exc:  # a nudge is an optimisation: the pollers still see the change
        log.warning("could not publish a change (%s) to Redis: %s", message, exc)


def job_changed(job_pk: int) -> None:
    """Called inside the transaction that changed the job or its tasks."""
    if settings.REDIS_URL:
        transaction.on_commit(partial(_publish, str(job_pk)))


def pool_changed(pool_pk: int) -> None:
    """Called inside the transaction that changed a pool's nodes (published as `pool:<pk>`)."""
    if settings.REDIS_URL:
        transaction.on_commit(partial(_publish, f"pool:{pool_pk}"))
