"""Random sequences of node changes through the services never let a pool's node counts drift.

Nodes join (as their agent does, or as the allocator makes them), take and end runs,
are disabled and enabled, reboot, are asked to leave and leave, are lost when their
heartbeat stops, and pools are resized and deleted: after every step the count rows
(List Pool Node Counts) equal a full count of the node table.
"""

import itertools
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import default_account
from batchapi.errors import BatchError
from pools import node_counts, node_load
from pools.models import ComputeNode, NodeState
from pools.services import allocation, lifecycle, node_actions, nodes, sizing
from tasks.services.sweeps import requeue_dead_workers

from .helpers import node

OPERATIONS = ("join", "make", "launch", "cancel", "busy", "idle", "disable", "enable", "reboot", "rebooted",
              "leave", "left", "lose", "resize", "remove", "delete")
pools_made = itertools.count()

steps = st.lists(st.tuples(st.sampled_from(OPERATIONS), st.integers(min_value=0, max_value=20)),
                 min_size=1, max_size=30)


def pick(pool, index, *states):
    found = list(ComputeNode.objects.filter(pool=pool, **({"state__in": states} if states else {})).order_by("pk"))
    return found[index % len(found)] if found else None


def apply(pool, operation, index):
    if operation == "join":
        node(f"{pool.batch_id}-n{index}", pool=pool.batch_id)  # a new node, or an earlier one's name come back
    elif operation == "make":
        allocation.make_nodes(pool, 1 + index % 2, dedicated=index % 3 != 0, provider="local")
    elif operation == "launch" and (row := pick(pool, index, NodeState.CREATING)):
        allocation.node_launched(row, handle=str(index))
    elif operation == "cancel":
        allocation.cancel([n for n in [pick(pool, index, NodeState.CREATING, NodeState.STARTING)] if n])
    elif operation in ("busy", "idle") and (row := pick(pool, index)):
        running = 1 + index % 2 if operation == "busy" else 0
        node_load.report(row.name, node_load.Load(running, running))
    elif operation == "disable" and (row := pick(pool, index)):
        node_actions.disable_scheduling(node=row, option=("requeue", "terminate", "taskcompletion")[index % 3])
    elif operation == "enable" and (row := pick(pool, index)):
        node_actions.enable_scheduling(node=row)
    elif operation == "reboot" and (row := pick(pool, index)):
        node_actions.reboot_node(node=row)
    elif operation == "rebooted" and (row := pick(pool, index, NodeState.REBOOTING)):
        nodes.rebooted(row.name)
    elif operation == "leave" and (row := pick(pool, index)):
        node_actions.ask_to_leave(ComputeNode.objects.filter(pk=row.pk), "requeue")
    elif operation == "left" and (row := pick(pool, index, NodeState.LEAVING_POOL)):
        nodes.leave_pool(row.name)
    elif operation == "lose" and (row := pick(pool, index)):
        ComputeNode.objects.filter(pk=row.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        requeue_dead_workers()
    elif operation == "resize":
        sizing.stop_resize(pool=pool)
        allocation.settle(pool)
        sizing.resize_pool(pool=pool, target_dedicated=index % 4)
    elif operation == "remove" and (row := pick(pool, index)):
        sizing.stop_resize(pool=pool)
        allocation.settle(pool)
        sizing.remove_nodes(pool=pool, node_ids=[row.name])
    elif operation == "delete" and index % 5 == 0:  # now and then: its nodes leave, the pool takes no more
        lifecycle.delete_pool(pool=pool)


def assert_counts_exact(pool) -> None:
    stored, real = node_counts.read(pool.pk), node_counts.actual(pool.pk)
    assert [c.as_dict() for c in stored] == [c.as_dict() for c in real]


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_node_counts_equal_a_recount_after_every_step(steps):
    pool = lifecycle.create_pool(spec={"account": default_account(), "batch_id": f"prop-{next(pools_made)}",
                                       "vm_size": "standard_d2s_v3", "task_slots_per_node": 2})
    for operation, index in steps:
        try:
            apply(pool, operation, index)
        except (BatchError, nodes.NoSuchPool):
            pass  # refused (a node that cannot reboot now, a pool being deleted): nothing may change
        pool.refresh_from_db()
        assert_counts_exact(pool)
    total = sum(c.total for c in node_counts.read(pool.pk))
    assert total == ComputeNode.objects.filter(pool=pool).count()


@pytest.mark.django_db
def test_recount_nodes_repairs_and_reports_drift(capsys):
    pool = lifecycle.create_pool(spec={"account": default_account(), "batch_id": "drifty", "vm_size": "x"})
    node("n1", pool="drifty")
    node("n2", pool="drifty")
    call_command("recount_nodes", "DRIFTY")  # exact: exits normally
    node_counts.apply(pool.pk, True, {"idle": 3, "running": -1})  # damage, as a bug or a hand edit would

    with pytest.raises(SystemExit) as exit_info:
        call_command("recount_nodes", "--check")
    assert exit_info.value.code == 1
    assert node_counts.read(pool.pk)[0].of("idle") == 5  # --check repairs nothing
    with pytest.raises(SystemExit):
        call_command("recount_nodes", "drifty")
    assert "drift repaired" in capsys.readouterr().out
    assert [c.as_dict() for c in node_counts.read(pool.pk)] == [c.as_dict() for c in node_counts.actual(pool.pk)]
    assert node_counts.read(pool.pk)[0].of("idle") == 2
