"""Where tasks run: only on nodes of their job's pool, by priority within the pool, in the
slots they ask for, packed or spread as the pool says."""

import pytest
from django.utils import timezone

from accounts.models import default_account
from pools import node_load
from pools.models import ComputeNode, NodeFillType
from pools.services import lifecycle
from tasks import counts
from tasks.models import Task, TaskState
from tasks.services import runs as task_runs

from .helpers import add, assert_counts_exact, make_job, node, wait_for


def make_pool(pool_id: str, **values):
    return lifecycle.create_pool(spec={"account": default_account(), "batch_id": pool_id,
                                       "vm_size": "standard_d2s_v3", **values})


def claim_as_agent(name: str, free: int) -> list[Task]:
    """A claim as the node's agent makes it: with what the node holds already."""
    row = ComputeNode.objects.get(name=name)
    holding = node_load.Load(row.running_tasks_count, row.running_task_slots_count)
    return task_runs.claim_tasks(node_id=name, limit=free, holding=holding)


@pytest.mark.django_db
def test_spread_gives_the_next_task_to_the_least_busy_node():
    make_pool("spread", task_slots_per_node=2)
    job = make_job("j", pool_info={"poolId": "spread"})
    add(job, "t1", "t2", "t3", "t4")
    node("a", pool="spread")
    node("b", pool="spread")
    assert len(claim_as_agent("a", 2)) == 1  # b is idle: a may take one more than b runs
    assert len(claim_as_agent("a", 1)) == 0  # and no more until b has one
    assert len(claim_as_agent("b", 2)) == 2  # b may catch up, and take one more than a
    assert len(claim_as_agent("a", 1)) == 1
    assert dict(ComputeNode.objects.values_list("name", "running_tasks_count")) == {"a": 2, "b": 2}


@pytest.mark.django_db
def test_pack_fills_a_node_before_the_next_gets_any():
    make_pool("pack", task_slots_per_node=3, node_fill_type=NodeFillType.PACK)
    job = make_job("j", pool_info={"poolId": "pack"})
    add(job, "t1")
    node("a", pool="pack")
    node("b", pool="pack")
    assert len(claim_as_agent("a", 3)) == 1
    add(job, "t2", "t3", "t4")
    assert claim_as_agent("b", 3) == []  # a is busier and has room: it goes first
    assert len(claim_as_agent("a", 2)) == 2  # a is full now
    assert len(claim_as_agent("b", 3)) == 1


@pytest.mark.django_db
def test_a_node_takes_only_tasks_that_fit_in_its_free_slots():
    make_pool("wide", task_slots_per_node=4, node_fill_type=NodeFillType.PACK)
    job = make_job("j", pool_info={"poolId": "wide"})
    add(job, "big", required_slots=3)
    add(job, "small-1", "small-2")
    node("n", pool="wide")
    assert [t.batch_id for t in claim_as_agent("n", 2)] == []  # big comes first and needs 3: it waits
    assert [t.batch_id for t in claim_as_agent("n", 4)] == ["big", "small-1"]  # 3 + 1: small-2 does not fit
    assert ComputeNode.objects.get(name="n").running_task_slots_count == 4
    stored = counts.read(job.pk)
    assert stored.as_dict()["running"] == 2 and stored.slots()["running"] == 4
    assert stored.slots() == counts.actual(job.pk).slots()


@pytest.mark.django_db
def test_more_slots_than_the_pools_nodes_have_is_refused(api):
    make_pool("narrow", task_slots_per_node=2)
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "narrow"}}, format="json")
    response = api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "x", "requiredSlots": 3}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "InvalidPropertyValue"
    assert "taskSlotsPerNode (2)" in str(response.json()["values"])
    collection = api.post("/batch/jobs/j/addtaskcollection", {"value": [
        {"id": "ok", "commandLine": "x", "requiredSlots": 2},
        {"id": "too-wide", "commandLine": "x", "requiredSlots": 3}]}, format="json").json()["value"]
    assert [r["status"] for r in collection] == ["success", "clienterror"]
    body = api.get("/batch/jobs/j/taskcounts").json()
    assert (body["taskCounts"]["active"], body["taskSlotCounts"]["active"]) == (1, 2)


@pytest.mark.django_db(transaction=True)
def test_pools_run_their_own_jobs_by_priority_in_the_slots_tasks_ask_for(start_worker):
    """Pool P: 2 nodes of 2 slots; pool Q: 1 node. Real worker processes run them."""
    make_pool("P", task_slots_per_node=2)
    make_pool("Q", task_slots_per_node=1)
    high = make_job("p-high", pool_info={"poolId": "P"}, priority=10)
    low = make_job("p-low", pool_info={"poolId": "P"}, priority=0)
    q_job = make_job("q-job", pool_info={"poolId": "Q"}, priority=100)
    add(high, *[f"wide-{i}" for i in range(4)], command="sleep 0.4", required_slots=2)
    add(high, *[f"narrow-{i}" for i in range(4)], command="sleep 0.2")
    add(low, *[f"low-{i}" for i in range(6)], command="sleep 0.1")
    add(q_job, *[f"q-{i}" for i in range(4)], command="sleep 0.1")
    for name, pool in (("p1", "P"), ("p2", "P"), ("q1", "Q")):
        start_worker("--name", name, "--pool", pool, "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.COMPLETED).count() == 18, timeout=120, what="every task")

    nodes_of = {job.pk: set(Task.objects.filter(job=job).values_list("node_id", flat=True))
                for job in (high, low, q_job)}
    assert nodes_of[high.pk] | nodes_of[low.pk] <= {"p1", "p2"} and nodes_of[q_job.pk] == {"q1"}
    # Within P the higher priority job went first: its last task started before the other's first.
    assert (max(Task.objects.filter(job=high).values_list("start_time", flat=True))
            <= min(Task.objects.filter(job=low).values_list("start_time", flat=True)))
    # No node ever ran more slots than it has.
    runs = list(Task.objects.filter(job__in=[high, low]).values_list("node_id", "start_time", "end_time",
                                                                       "required_slots"))
    for node_id, start, _, _ in runs:
        in_use = sum(slots for other, s, e, slots in runs if other == node_id and s <= start < e)
        assert in_use <= 2, (node_id, start, in_use)
    assert {row.result for row in Task.objects.all()} == {"success"}
    slots = counts.read(high.pk).slots()
    assert (counts.read(high.pk).as_dict()["completed"], slots["completed"]) == (8, 12)
    assert slots == counts.actual(high.pk).slots()
    for job in (high, low, q_job):
        assert_counts_exact(job.pk)


@pytest.mark.django_db
def test_a_task_prefers_the_node_its_affinity_names_for_a_while():
    make_pool("aff", task_slots_per_node=2)
    job = make_job("j", pool_info={"poolId": "aff"})
    add(job, "for-b", affinity_info={"affinityId": "b"})
    add(job, "anyone")
    node("a", pool="aff")
    node("b", pool="aff")
    assert [t.batch_id for t in claim_as_agent("a", 2)] == ["anyone"]  # for-b is left to b
    assert [t.batch_id for t in claim_as_agent("b", 2)] == ["for-b"]

    add(job, "for-b-later", affinity_info={"affinityId": "b"})
    Task.objects.filter(batch_id="for-b-later").update(
        state_transition_time=timezone.now() - node_load.AFFINITY_WAIT * 2)
    assert [t.batch_id for t in claim_as_agent("a", 1)] == ["for-b-later"]  # waited long enough: anyone's


@pytest.mark.django_db
def test_spread_runs_tasks_that_take_several_slots():
    """Spread counts tasks, not slots: two idle nodes of 4 slots each take a 2-slot task each."""
    make_pool("wide-spread", task_slots_per_node=4)
    job = make_job("j", pool_info={"poolId": "wide-spread"})
    add(job, *[f"pair-{i}" for i in range(4)], required_slots=2)
    node("a", pool="wide-spread")
    node("b", pool="wide-spread")
    assert len(claim_as_agent("a", 4)) == 1  # b is idle: a takes one more task than b runs
    assert len(claim_as_agent("b", 4)) == 2  # one more than a: its 4 slots are full
    assert len(claim_as_agent("a", 2)) == 1
    assert dict(ComputeNode.objects.values_list("name", "running_task_slots_count")) == {"a": 4, "b": 4}
