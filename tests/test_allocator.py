"""The allocator gives pools the nodes their targets ask for: real worker processes on this machine.

Each test steps a real `Allocator` with the `local` provider in the test process; the
nodes it starts are real `manage.py worker` processes on the test database, which
join their pool, run tasks, and leave when asked, as the nodeDeallocationOption says.
"""

import time

import pytest

from accounts.models import default_account
from nodes.allocator import Allocator
from nodes.providers.local import LocalProvider
from pools import node_counts
from pools.models import AllocationState, ComputeNode, NodeState, Pool
from pools.services import lifecycle, sizing
from tasks.models import Task, TaskState

from .conftest import sandbox_missing, worker_env
from .helpers import add, assert_counts_exact, make_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def allocator():
    """An allocator whose nodes poll fast; every node it started is stopped at the end."""
    extra = ("--poll", "0.1", "--grace", "2") + (("--allow-unconfined",) if sandbox_missing() else ())
    provider = LocalProvider(extra_args=extra, env=worker_env())
    yield Allocator({"local": provider}, interval=0.1)
    provider.stop_all(timeout=30)


def make_pool(pool_id: str = "render", **values) -> Pool:
    spec = {"account": default_account(), "batch_id": pool_id, "vm_size": "standard_d2s_v3", **values}
    return lifecycle.create_pool(spec=spec)


def step_until(allocator: Allocator, done, timeout: float = 90, what: str = "the pool") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {nodes_by_state()}")
        allocator.step()
        time.sleep(0.1)


def nodes_by_state(pool: str = "render") -> dict[str, int]:
    found: dict[str, int] = {}
    for state in ComputeNode.objects.filter(pool__batch_id=pool).values_list("state", flat=True):
        found[state] = found.get(state, 0) + 1
    return found


def steady_with(pool: Pool, **states: int):
    def done() -> bool:
        pool.refresh_from_db()
        return pool.allocation_state == AllocationState.STEADY and nodes_by_state(pool.batch_id) == states
    return done


def assert_node_counts_exact(pool: Pool) -> None:
    stored, real = node_counts.read(pool.pk), node_counts.actual(pool.pk)
    assert [c.as_dict() for c in stored] == [c.as_dict() for c in real]


def test_a_pool_gets_its_nodes_and_gives_them_back_as_it_is_resized(allocator):
    pool = make_pool(target_dedicated_nodes=2, task_slots_per_node=2)
    assert pool.allocation_state == AllocationState.RESIZING
    step_until(allocator, steady_with(pool, idle=2))
    assert set(ComputeNode.objects.filter(pool=pool).values_list("slots", "provider", "is_dedicated")) == {
        (2, "local", True)}
    assert_node_counts_exact(pool)

    sizing.resize_pool(pool=pool, target_dedicated=3)
    step_until(allocator, steady_with(pool, idle=3))
    assert_node_counts_exact(pool)

    sizing.resize_pool(pool=pool, target_dedicated=1)
    step_until(allocator, steady_with(pool, idle=1))
    assert_node_counts_exact(pool)
    pool.refresh_from_db()
    assert pool.resize_errors == []

    sizing.resize_pool(pool=pool, target_dedicated=0)
    step_until(allocator, steady_with(pool))
    assert_node_counts_exact(pool)


def test_the_pools_jobs_run_on_its_nodes(allocator, settings):
    settings.BATCHSITE_AUTO_POOLS = False  # a job naming a missing pool gets none: its tasks wait
    pool = make_pool(target_dedicated_nodes=1, task_slots_per_node=3)
    job = make_job("in-render", pool_info={"poolId": "render"})
    add(job, *[f"t{i}" for i in range(9)])
    other = make_job("elsewhere", pool_info={"poolId": "nobody-runs-this"})
    add(other, "waits")
    step_until(allocator, lambda: Task.objects.filter(job=job, state=TaskState.COMPLETED).count() == 9,
               what="the job's tasks")
    [node] = ComputeNode.objects.filter(pool=pool)
    assert set(Task.objects.filter(job=job).values_list("node_id", flat=True)) == {node.name}
    assert Task.objects.get(job=other).state == TaskState.ACTIVE  # no node of its pool: it waits
    step_until(allocator, lambda: ComputeNode.objects.get(pk=node.pk).total_tasks_run == 9, what="node totals")
    node.refresh_from_db()
    assert (node.total_tasks_succeeded, node.running_tasks_count) == (9, 0)
    assert_counts_exact(job.pk)


def test_a_taskcompletion_downsize_lets_the_running_task_finish(allocator):
    pool = make_pool(target_dedicated_nodes=1)
    job = make_job("long", pool_info={"poolId": "render"})
    [task] = add(job, "nap", command="sleep 3")
    step_until(allocator, lambda: Task.objects.get(pk=task.pk).state == TaskState.RUNNING, what="the task to run")
    step_until(allocator, steady_with(pool, running=1))
    sizing.resize_pool(pool=pool, target_dedicated=0, deallocation="taskcompletion")
    step_until(allocator, lambda: nodes_by_state() == {"leavingpool": 1}, what="the node to leave")
    step_until(allocator, steady_with(pool))
    task.refresh_from_db()
    assert (task.state, task.result, task.requeue_count) == (TaskState.COMPLETED, "success", 0)
    assert_node_counts_exact(pool)


def test_a_requeue_downsize_puts_the_running_task_back(allocator):
    pool = make_pool(target_dedicated_nodes=1)
    job = make_job("long", pool_info={"poolId": "render"})
    [task] = add(job, "sleeper", command="sleep 120")
    step_until(allocator, lambda: Task.objects.get(pk=task.pk).state == TaskState.RUNNING, what="the task to run")
    step_until(allocator, steady_with(pool, running=1))
    sizing.resize_pool(pool=pool, target_dedicated=0, deallocation="requeue")
    step_until(allocator, steady_with(pool))
    task.refresh_from_db()
    assert (task.state, task.requeue_count) == (TaskState.ACTIVE, 1)
    assert Task.objects.get(pk=task.pk).state == TaskState.ACTIVE  # no node left to run it
    assert_counts_exact(job.pk)
    assert_node_counts_exact(pool)


def test_a_node_whose_process_dies_is_replaced(allocator):
    pool = make_pool(target_dedicated_nodes=1)
    step_until(allocator, steady_with(pool, idle=1))
    [first] = ComputeNode.objects.filter(pool=pool)
    allocator.providers["local"].procs[first.name].kill()
    step_until(allocator, lambda: (nodes_by_state() == {"idle": 1}
                                   and not ComputeNode.objects.filter(name=first.name).exists()),
               what="a new node")
    assert_node_counts_exact(pool)


def test_a_node_that_cannot_start_is_a_resize_error_that_says_why(allocator, settings):
    allocator.providers["local"].extra_args += ("--slots", "0")  # the worker refuses to start
    pool = make_pool(target_dedicated_nodes=1)
    step_until(allocator, lambda: Pool.objects.get(pk=pool.pk).resize_errors, what="a resize error")
    [error] = Pool.objects.get(pk=pool.pk).resize_errors[:1]
    assert error["code"] == "NodeStartFailed" and "--slots must be at least 1" in error["message"]
    sizing.stop_resize(pool=pool)
    step_until(allocator, steady_with(pool))
    assert_node_counts_exact(pool)


def test_stop_resize_keeps_the_nodes_there_are(allocator):
    pool = make_pool(target_dedicated_nodes=1)
    step_until(allocator, steady_with(pool, idle=1))
    sizing.resize_pool(pool=pool, target_dedicated=3)
    sizing.stop_resize(pool=pool)
    assert Pool.objects.get(pk=pool.pk).allocation_state == AllocationState.STOPPING
    step_until(allocator, lambda: Pool.objects.get(pk=pool.pk).allocation_state == AllocationState.STEADY)
    assert ComputeNode.objects.filter(pool=pool).exclude(state=NodeState.IDLE).count() == 0
    assert Pool.objects.get(pk=pool.pk).target_dedicated_nodes == 3  # Batch keeps the target
    assert_node_counts_exact(pool)


def test_a_pool_being_resized_refuses_another_resize():
    pool = make_pool(target_dedicated_nodes=1)
    with pytest.raises(sizing.BatchError) as refused:
        sizing.resize_pool(pool=pool, target_dedicated=2)
    assert (refused.value.code, refused.value.status) == ("PoolBeingResized", 409)


def test_a_restarted_allocator_refills_its_pools_but_not_one_whose_resize_was_stopped(allocator):
    pool = make_pool(target_dedicated_nodes=1)
    halted = make_pool("halted", target_dedicated_nodes=2)
    step_until(allocator, steady_with(pool, idle=1))
    step_until(allocator, lambda: nodes_by_state("halted") == {"idle": 2}, what="halted's nodes")
    step_until(allocator, lambda: Pool.objects.get(pk=halted.pk).allocation_state == AllocationState.STEADY)
    sizing.resize_pool(pool=halted, target_dedicated=3)
    sizing.stop_resize(pool=halted)
    step_until(allocator, lambda: Pool.objects.get(pk=halted.pk).allocation_state == AllocationState.STEADY)

    allocator.providers["local"].stop_all()  # as when `make run` stops: each node leaves its pool
    assert not ComputeNode.objects.exists()
    again = Allocator(allocator.providers, interval=0.1)
    again.refill()
    step_until(again, steady_with(pool, idle=1), what="the pool refilled")
    assert Pool.objects.get(pk=halted.pk).allocation_state == AllocationState.STEADY
    assert nodes_by_state("halted") == {}  # stopped on purpose: it stays as it is until resized
    assert_node_counts_exact(pool)


def test_a_node_started_by_hand_beyond_the_target_is_said_not_stopped(allocator):
    from .helpers import node

    pool = make_pool(target_dedicated_nodes=0)
    node("by-hand", pool="render")
    sizing.stop_resize(pool=pool)  # the create's resize (to 0) is settled by the next round anyway
    Pool.objects.filter(pk=pool.pk).update(allocation_state=AllocationState.STEADY, resize_stopped=False)
    sizing.resize_pool(pool=pool, target_dedicated=0)
    step_until(allocator, lambda: Pool.objects.get(pk=pool.pk).allocation_state == AllocationState.STEADY)
    assert [e["code"] for e in Pool.objects.get(pk=pool.pk).resize_errors] == ["NodesStartedByHand"]
    assert ComputeNode.objects.filter(name="by-hand").exists()
