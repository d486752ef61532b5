"""A node's life in its pool, edge by edge: lost and back, refused joins, a pool whose nodes fix what it is."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import default_account
from pools import node_counts
from pools.models import ComputeNode, NodeState, Pool
from pools.services import lifecycle, node_actions, nodes
from tasks.services.sweeps import requeue_dead_workers

from .helpers import node

pytestmark = pytest.mark.django_db


def make_pool(pool_id: str = "p", **values) -> Pool:
    return lifecycle.create_pool(spec={"account": default_account(), "batch_id": pool_id,
                                       "vm_size": "standard_d2s_v3", **values})


def assert_counts_exact(pool) -> None:
    assert ([c.as_dict() for c in node_counts.read(pool.pk)]
            == [c.as_dict() for c in node_counts.actual(pool.pk)])


def test_a_lost_node_whose_heartbeat_comes_back_is_a_node_again():
    pool = make_pool()
    node("sleepy", pool="p")
    node_actions.disable_scheduling(node=ComputeNode.objects.get(name="sleepy"))
    node("napper", pool="p")
    ComputeNode.objects.update(heartbeat_at=timezone.now() - timedelta(hours=1))  # a laptop slept
    requeue_dead_workers()
    assert set(ComputeNode.objects.values_list("state", flat=True)) == {NodeState.UNKNOWN}
    assert nodes.heartbeat("napper") == (NodeState.IDLE, "")
    assert nodes.heartbeat("sleepy") == (NodeState.OFFLINE, "")  # its scheduling is still disabled
    assert_counts_exact(pool)


def test_a_node_the_allocator_started_never_makes_a_pool_nor_joins_one_it_was_not_made_for():
    start = nodes.NodeStart(name="late", hostname="h", pid=1, confined=True, containment="", process_key="",
                            pool="gone", provider="local")
    with pytest.raises(nodes.NoSuchPool):
        nodes.join_pool(start, predecessor_is_dead=lambda row: True)
    assert not Pool.objects.filter(batch_id="gone").exists()  # a deleted pool does not come back
    make_pool("gone")
    with pytest.raises(nodes.NoSuchPool, match="removed from pool gone before it joined"):
        nodes.join_pool(start, predecessor_is_dead=lambda row: True)  # no row made for it: let go
    assert not ComputeNode.objects.exists()


def test_a_pool_being_deleted_takes_no_node():
    pool = make_pool("doomed")
    lifecycle.delete_pool(pool=pool)
    with pytest.raises(nodes.NoSuchPool, match="being deleted"):
        node("n", pool="doomed")


def test_what_a_node_is_made_of_changes_only_while_the_pool_has_none(api):
    api.post("/batch/pools", {"id": "shape", "vmSize": "standard_d2s_v3"}, format="json")
    assert api.patch("/batch/pools/shape", {"taskSlotsPerNode": 2}, format="json").status_code == 200
    node("n", pool="shape")
    response = api.patch("/batch/pools/shape", {"taskSlotsPerNode": 4, "vmSize": "standard_d4s_v3"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "OperationInvalidForCurrentState"
    assert "taskSlotsPerNode" in str(response.json()["values"]) and "vmSize" in str(response.json()["values"])
    assert Pool.objects.get(batch_id="shape").task_slots_per_node == 2
    # The same values again, and what nodes are not made of, still may change.
    assert api.patch("/batch/pools/shape", {"taskSlotsPerNode": 2, "metadata": [{"name": "a", "value": "b"}]},
                     format="json").status_code == 200
