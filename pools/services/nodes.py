"""A compute node's life in its pool: it joins, beats its heartbeat, leaves, or is lost.

A node is a `manage.py worker` process (the node agent). Which process a row
names, and whether it still lives, is the node's own knowledge (it reads /proc
there): the node passes its verdict in. Finding nodes whose heartbeat stopped is a
sweep (`tasks.services.sweeps`), which calls `lose_nodes`.
"""

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batchapi.wire import iso
from jobs.transitions import count_nodes, move, remove_nodes
from tasks.outcomes import FAILURE_EXIT_CODE
from tasks.services.node_task_runs import forget_unfinished_releases
from tasks.services.runs import requeue_tasks

from .. import node_load
from ..models import AGENT_STATES, NODE_NAME, ComputeNode, NodeState, Pool, PoolState, SchedulingState
from .lifecycle import pool_for_node

log = logging.getLogger(__name__)


class NodeNameTaken(RuntimeError):
    """A live node already goes by the name."""


class NoSuchPool(RuntimeError):
    """The pool a node was to join does not exist, and Batchsite may not make it."""


@dataclass
class NodeStart:
    """Who a starting node is, as its agent tells it."""

    name: str
    hostname: str
    pid: int
    confined: bool
    containment: str
    process_key: str
    account: str = ""  # the pool's account (default: BATCHSITE_DEFAULT_ACCOUNT)
    pool: str = ""  # the pool's id (default: BATCHSITE_DEFAULT_POOL)
    slots: int | None = None  # default: the pool's taskSlotsPerNode
    ip_address: str = ""
    agent_version: str = ""
    provider: str = ""  # the allocator's provider that started it ("" for a node started by hand)


def join_pool(start: NodeStart, *, predecessor_is_dead: Callable[[ComputeNode], bool]) -> ComputeNode:
    """Node `start.name` joins its pool, idle; tasks an earlier life of the name left running are requeued.

    Refused (NodeNameTaken) while another process of the name lives: its row is an
    agent's, its heartbeat is fresh, and `predecessor_is_dead` (the node's look at
    the process the row names) cannot tell that it has ended. A row the allocator
    made for this node (`creating`, `starting`) is taken over; so is a lost one.
    """
    if not re.match(NODE_NAME, start.name):
        raise ValueError(f"a node's id is 1 to 128 letters, digits, '_', '-' and '.', not starting with '.': "
                         f"{start.name!r}")
    # A node the allocator started joins the pool it was made for, or none: it never makes one.
    pool = pool_for_node(start.account or settings.BATCHSITE_DEFAULT_ACCOUNT,
                         start.pool or settings.BATCHSITE_DEFAULT_POOL, make=not start.provider)
    if pool is None:
        raise NoSuchPool(f"there is no pool {start.pool!r} in account {start.account!r}: create it first "
                         "(az batch pool create), or let Batchsite make it (BATCHSITE_AUTO_POOLS=1)")
    now = timezone.now()
    stale_before = now - settings.BATCHSITE_WORKER_TIMEOUT
    with transaction.atomic():
        if not Pool.objects.select_for_update().filter(pk=pool.pk, state=PoolState.ACTIVE).exists():
            raise NoSuchPool(f"pool {pool.batch_id} is being deleted: it takes no node")
        existing = ComputeNode.objects.select_for_update().filter(name=start.name).first()
        if start.provider and (existing is None or existing.state == NodeState.LEAVING_POOL):
            # The allocator made this node and has since let it go (a resize down, a Stop
            # Resize, a timeout) before its agent joined: it is not wanted any more.
            raise NoSuchPool(f"node {start.name} was removed from pool {pool.batch_id} before it joined")
        if (existing and existing.state in AGENT_STATES and existing.heartbeat_at
                and existing.heartbeat_at > stale_before and not predecessor_is_dead(existing)):
            raise NodeNameTaken(f"a node named {start.name!r} is alive (pid {existing.pid} on "
                                f"{existing.hostname}); give this one another --name")
        agent = dict(hostname=start.hostname, pid=start.pid, process_key=start.process_key, heartbeat_at=now,
                     confined=start.confined, containment=start.containment, ip_address=start.ip_address,
                     agent_version=start.agent_version, last_boot_time=now, running_tasks_count=0,
                     running_task_slots_count=0, slots=start.slots or pool.task_slots_per_node)
        # With a start task, the node runs it first; with waitForSuccess, nothing else until it succeeds.
        joined_state, agent["start_task_info"] = after_boot(pool, now)
        if existing and existing.pool_id != pool.pk:
            remove_nodes(ComputeNode.objects.filter(pk=existing.pk))  # it was another pool's node
            existing = None
        if existing:
            moved = move(ComputeNode.objects.filter(pk=existing.pk), joined_state,
                         from_states=[s for s in NodeState if s != joined_state], now=now, **agent)
            if not moved:
                ComputeNode.objects.filter(pk=existing.pk).update(last_modified=now, **agent)
        else:
            existing = ComputeNode.objects.create(
                pool=pool, name=start.name, state=joined_state, state_transition_time=now, creation_time=now,
                last_modified=now, allocation_time=now, vm_size=pool.vm_size, **agent)
            count_nodes(pool.pk, existing.is_dedicated, {joined_state: 1})
    # Runs left behind by an earlier life of this name go back to the queue; the
    # release tasks it did not finish are owed again.
    if requeued := requeue_tasks(node_id=start.name):
        log.warning("requeued %d task(s) left running by an earlier node %s", requeued, start.name)
    forget_unfinished_releases(start.name)
    return ComputeNode.objects.select_related("pool__account").get(name=start.name)


def heartbeat(name: str, load: node_load.Load | None = None, usage: dict | None = None) -> tuple[str, str] | None:
    """The node lives; with `load`, what it runs now (which repairs a lost report). Returns the
    node's state and deallocation option, for its agent to act on (`leavingpool`: asked to
    leave; `rebooting`), or None when the node is no longer in a pool."""
    values = {"heartbeat_at": timezone.now()}
    if usage is not None:
        values["usage"] = usage
    with transaction.atomic():
        if not ComputeNode.objects.filter(name=name).update(**values):
            return None
        rows = ComputeNode.objects.filter(name=name)
        state, scheduling = rows.values_list("state", "scheduling_state").first()
        if state == NodeState.UNKNOWN:
            # Lost (its heartbeat stopped long enough for its runs to be requeued) and back: a node
            # of its pool again, running nothing of what it held (its agent kills those).
            back = NodeState.IDLE if scheduling == SchedulingState.ENABLED else NodeState.OFFLINE
            move(rows, back, from_states=(NodeState.UNKNOWN,), running_tasks_count=0, running_task_slots_count=0)
        if load is not None:
            node_load.report(name, load)
        return ComputeNode.objects.filter(name=name).values_list("state", "deallocation").first()


def after_boot(pool: Pool, now) -> tuple[str, dict | None]:
    """The state a node of `pool` is in once its agent (re)starts, and its startTaskInfo."""
    if not pool.start_task:
        return NodeState.IDLE, None
    waits = pool.start_task.get("waitForSuccess", True)  # Batch's default since API 2020-03
    return (NodeState.WAITING_FOR_START_TASK if waits else NodeState.IDLE), {
        "state": "running", "startTime": iso(now), "retryCount": 0}


def rebooted(name: str) -> dict | None:
    """The node's agent has started afresh after a Reboot; the start task it must run again, if any."""
    now = timezone.now()
    with transaction.atomic():
        node = ComputeNode.objects.select_related("pool").select_for_update().get(name=name)
        state, info = after_boot(node.pool, now)
        if state == NodeState.IDLE and node.scheduling_state == SchedulingState.DISABLED:
            state = NodeState.OFFLINE
        move(ComputeNode.objects.filter(pk=node.pk), state, from_states=(NodeState.REBOOTING,), now=now,
             last_boot_time=now, deallocation="", running_tasks_count=0, running_task_slots_count=0,
             start_task_info=info)
    return node.pool.start_task


def start_task_ended(name: str, exit_code: int | None, failure: dict | None) -> str | None:
    """Record how a run of the pool's start task ended on node `name`; what became of it.

    Exit code 0 succeeds: a node waiting for it becomes idle. A non-zero exit is run
    again while maxTaskRetryCount allows ("retried"); then it fails, and a node that
    waits for its success is `starttaskfailed`: no task is scheduled there. A run
    that could not start fails at once. None when the node is no longer here.
    """
    now = timezone.now()
    with transaction.atomic():
        node = ComputeNode.objects.select_related("pool").select_for_update().filter(name=name).first()
        if node is None:
            return None
        # startTaskInfo is Batch's JSON as the wire has it (its "state" is the run's, not the node's).
        spec, info = node.pool.start_task or {}, {**(node.start_task_info or {}), "exitCode": exit_code}
        retries, limit = info.get("retryCount", 0), spec.get("maxTaskRetryCount", 0)
        if failure is None and exit_code == 0:
            info |= {"state": "completed", "endTime": iso(now), "result": "success", "failureInfo": None}
            outcome, state = "succeeded", NodeState.IDLE
        elif failure is None and (limit == -1 or retries < limit):
            info |= {"state": "running", "retryCount": retries + 1, "lastRetryTime": iso(now)}
            outcome, state = "retried", None
        else:
            info |= {"state": "completed", "endTime": iso(now), "result": "failure",
                     "failureInfo": failure or FAILURE_EXIT_CODE}
            outcome, state = "failed", NodeState.START_TASK_FAILED
        rows = ComputeNode.objects.filter(pk=node.pk)
        if not (state and move(rows, state, from_states=(NodeState.WAITING_FOR_START_TASK,), now=now,
                               start_task_info=info)):
            rows.update(start_task_info=info, last_modified=now)
    return outcome


def start_leaving(name: str) -> None:
    """The node's agent is stopping: it claims no more, and its runs get their grace to finish."""
    with transaction.atomic():
        move(ComputeNode.objects.filter(name=name), NodeState.LEAVING_POOL,
             from_states=[s for s in NodeState if s != NodeState.LEAVING_POOL])


def leave_pool(name: str) -> None:
    """The node's agent has stopped: the node is gone from its pool (its tasks were requeued)."""
    with transaction.atomic():
        remove_nodes(ComputeNode.objects.filter(name=name))


def lose_nodes(nodes) -> int:
    """Nodes whose heartbeat stopped become `unknown` and their tasks go back to the queue.

    `nodes` is a queryset of the suspects with the heartbeat each was seen with
    (compare-and-set: a node that beat its heartbeat meanwhile keeps its tasks).
    Returns how many tasks were requeued.
    """
    requeued = 0
    for node in nodes:
        with transaction.atomic():
            lost = move(ComputeNode.objects.filter(pk=node.pk, heartbeat_at=node.heartbeat_at), NodeState.UNKNOWN,
                        from_states=AGENT_STATES, running_tasks_count=0, running_task_slots_count=0)
        if lost:
            n = requeue_tasks(node_id=node.name)
            log.warning("node %s stopped its heartbeat; requeued %d task(s)", node.name, n)
            requeued += n
    return requeued
