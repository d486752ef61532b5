"""A pool's start task: it runs when a node joins the pool and after a reboot, as Batch runs it.

The node's loop is built and stepped in this process (as in test_worker_step): a real
database, the start task a real child process in the same containment as every task.
"""

import time

import pytest

from accounts.models import default_account
from nodes.agent import WorkerLoop
from nodes.sandbox import Containment
from pools import node_counts
from pools.models import ComputeNode, NodeState
from pools.services import lifecycle, node_actions
from tasks.files import startup_dir, task_dir
from tasks.models import Task, TaskState

from .conftest import sandbox_missing
from .helpers import TASK_PYTHON, add, assert_counts_exact, make_job

pytestmark = pytest.mark.django_db(transaction=True)

# A start task that counts its runs in its startup directory and says where it ran.
COUNTING = (f"{TASK_PYTHON} -c \"import os; d = os.environ['AZ_BATCH_NODE_STARTUP_DIR'];"
            " p = os.path.join(d, 'runs'); n = int(open(p).read()) + 1 if os.path.exists(p) else 1;"
            " open(p, 'w').write(str(n)); print('started', n, os.getcwd() == os.path.join(d, 'wd'))\"")


def make_pool(start_task: dict, pool_id: str = "with-start"):
    return lifecycle.create_pool(spec={"account": default_account(), "batch_id": pool_id,
                                       "vm_size": "standard_d2s_v3", "start_task": start_task})


@pytest.fixture
def make_loop():
    loops = []

    def make(pool: str, name: str = "starter", **options) -> WorkerLoop:
        options = {"poll_interval": 0.05, "check_interval": 0.2, "exit_when_idle": True, **options}
        containment = Containment.for_worker(allow_unconfined=bool(sandbox_missing()))
        loop = WorkerLoop(name=name, pool=pool, containment=containment, **options)
        loop.register()
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.shutdown()


def step_until(loop: WorkerLoop, done, timeout: float = 60, what: str = "the node") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        loop.step()


def node(name: str = "starter") -> ComputeNode:
    return ComputeNode.objects.get(name=name)


def assert_node_counts_exact(pool) -> None:
    stored, real = node_counts.read(pool.pk), node_counts.actual(pool.pk)
    assert [c.as_dict() for c in stored] == [c.as_dict() for c in real]


def test_a_start_task_that_must_succeed_holds_the_node_until_it_has(make_loop):
    pool = make_pool({"commandLine": COUNTING, "waitForSuccess": True})
    job = make_job("after-start", pool_info={"poolId": "with-start"})
    add(job, "t")
    loop = make_loop("with-start")
    assert node().state == NodeState.WAITING_FOR_START_TASK
    assert node().start_task_info["state"] == "running"
    loop.step()
    assert Task.objects.get(key="t").state == TaskState.ACTIVE  # no task before the start task succeeds

    step_until(loop, lambda: node().state != NodeState.WAITING_FOR_START_TASK, what="the start task")
    info = node().start_task_info
    assert (node().state, info["state"], info["result"], info["exitCode"], info["retryCount"]) == (
        NodeState.IDLE, "completed", "success", 0, 0)
    startup = startup_dir("batchsite", "starter")
    assert (startup / "stdout.txt").read_text() == "started 1 True\n"
    step_until(loop, loop.finished, what="the job's task")
    assert Task.objects.get(key="t").result == "success"
    assert_node_counts_exact(pool)
    assert_counts_exact(job.pk)


def test_a_start_task_that_fails_with_wait_for_success_leaves_the_node_unusable(make_loop):
    pool = make_pool({"commandLine": "/bin/sh -c 'echo broken >&2; exit 3'", "waitForSuccess": True,
                      "maxTaskRetryCount": 1})
    job = make_job("never-here", pool_info={"poolId": "with-start"})
    add(job, "t")
    loop = make_loop("with-start")
    step_until(loop, lambda: node().state == NodeState.START_TASK_FAILED, what="the start task to fail")
    info = node().start_task_info
    assert (info["result"], info["exitCode"], info["retryCount"], info["failureInfo"]["code"]) == (
        "failure", 3, 1, "FailureExitCode")  # ran twice: once, and its one retry
    step_until(loop, loop.finished, what="the node to give up")
    assert Task.objects.get(key="t").state == TaskState.ACTIVE  # no task ran there
    assert "broken" in (startup_dir("batchsite", "starter") / "stderr.txt").read_text()
    assert_node_counts_exact(pool)


def test_a_start_task_that_fails_without_wait_for_success_leaves_the_node_usable(make_loop):
    pool = make_pool({"commandLine": "/bin/sh -c 'exit 5'", "waitForSuccess": False})
    job = make_job("runs-anyway", pool_info={"poolId": "with-start"})
    add(job, "t")
    loop = make_loop("with-start")
    assert node().state == NodeState.IDLE  # usable while its start task runs
    step_until(loop, lambda: (node().start_task_info or {}).get("state") == "completed", what="the start task")
    assert node().start_task_info["result"] == "failure"
    step_until(loop, loop.finished, what="the job's task")
    assert Task.objects.get(key="t").result == "success"
    assert_node_counts_exact(pool)


def test_a_rebooted_node_runs_its_start_task_again(make_loop, settings):
    settings.BATCHSITE_HEARTBEAT_SECONDS = 1  # the node learns of the reboot with its heartbeat
    pool = make_pool({"commandLine": COUNTING, "waitForSuccess": True})
    loop = make_loop("with-start", exit_when_idle=False)
    step_until(loop, lambda: node().state == NodeState.IDLE, what="the first start")
    first_boot = node().last_boot_time

    node_actions.reboot_node(node=node())
    assert node().state == NodeState.REBOOTING
    step_until(loop, lambda: node().state == NodeState.WAITING_FOR_START_TASK, what="the reboot")
    step_until(loop, lambda: node().state == NodeState.IDLE, what="the second start")
    assert (startup_dir("batchsite", "starter") / "runs").read_text() == "2"
    assert node().last_boot_time > first_boot
    assert_node_counts_exact(pool)


def test_a_pool_without_a_start_task_has_idle_nodes_and_no_start_task_info(make_loop):
    pool = lifecycle.create_pool(spec={"account": default_account(), "batch_id": "plain", "vm_size": "x"})
    make_loop("plain")
    assert (node().state, node().start_task_info) == (NodeState.IDLE, None)
    assert_node_counts_exact(pool)


def test_the_nodes_tasks_read_what_the_start_task_left_in_the_startup_directory(make_loop):
    install = f"{TASK_PYTHON} -c \"open('tool.txt', 'w').write('installed')\""
    make_pool({"commandLine": install, "waitForSuccess": True})
    job = make_job("uses-tool", pool_info={"poolId": "with-start"})
    probe = (f"{TASK_PYTHON} -c \"import os; d = os.environ['AZ_BATCH_NODE_STARTUP_DIR'];"
             " print(open(os.path.join(d, 'wd', 'tool.txt')).read());"
             " open(os.path.join(d, 'wd', 'tool.txt'), 'a').write('tampered')\"")
    add(job, "probe", command=probe)
    loop = make_loop("with-start")
    step_until(loop, loop.finished, what="the probe")
    task = Task.objects.get(key="probe")
    out = (task_dir(task) / "stdout.txt").read_text()
    assert out == "installed\n"  # it sees the start task's files ...
    assert (startup_dir("batchsite", "starter") / "wd" / "tool.txt").read_text() == "installed"
    if not sandbox_missing():  # ... and, sandboxed, cannot change them
        assert task.exit_code != 0 and "Read-only file system" in (task_dir(task) / "stderr.txt").read_text()
