"""The worker's loop built and stepped in this process: a real database, real child processes.

The loop is stepped without `run()`: that would also make the test process a child
subreaper for the rest of the session (only the sandboxes' resource usage needs it,
and none is asserted here) and take over its signals. Commands run in the same
containment as the suite's worker processes: the sandbox where this machine has one.
"""

import os
import signal
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from nodes.agent import WorkerLoop
from nodes.sandbox import Containment
from nodes.slots import Phase
from pools.models import ComputeNode, NodeState
from tasks import counts
from tasks.models import NodeTask, Task, TaskState

from .conftest import sandbox_missing
from .helpers import TASK_PYTHON, add, assert_counts_exact, make_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def make_loop():
    """A registered WorkerLoop; shut down (its runs killed, its row stopped) after the test."""
    loops = []

    def make(name: str = "inproc", **options) -> WorkerLoop:
        options = {"poll_interval": 0.05, "check_interval": 0.2, **options}
        containment = Containment.for_worker(allow_unconfined=bool(sandbox_missing()))
        loop = WorkerLoop(name=name, containment=containment, **options)
        loop.register()
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.shutdown()


def step_until(loop: WorkerLoop, done, timeout: float = 60, what: str = "the loop") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out stepping {what}")
        loop.step()


def state_of(key: str) -> tuple:
    task = Task.objects.get(key=key)
    return task.state, task.result, task.exit_code, (task.failure_info or {}).get("code")


def python(code: str) -> str:
    return f'{TASK_PYTHON} -c "{code}"'


def test_stepping_runs_tasks_to_their_documented_ends(make_loop):
    job = make_job("stepped")
    add(job, *[f"ok-{i}" for i in range(12)])
    add(job, "fails", command="/bin/sh -c 'exit 3'")
    add(job, "killed", command="/bin/sh -c 'kill -9 $$'")
    add(job, "missing", command="/no/such/program")
    loop = make_loop(slots=3, exit_when_idle=True)
    assert ComputeNode.objects.get(name="inproc").takes_tasks

    step_until(loop, loop.finished)
    loop.shutdown()

    assert loop.busy() == 0 and not loop.active()
    assert loop.claimed_total == 15
    assert {state_of(f"ok-{i}") for i in range(12)} == {("completed", "success", 0, None)}
    assert state_of("fails") == ("completed", "failure", 3, "FailureExitCode")
    assert state_of("killed") == ("completed", "failure", 137, "FailureExitCode")
    assert state_of("missing") == ("completed", "failure", None, "CommandProgramNotFound")
    assert set(Task.objects.values_list("node_id", flat=True)) == {"inproc"}
    assert counts.read(job.pk).as_dict() == {"active": 0, "running": 0, "completed": 15, "succeeded": 12,
                                             "failed": 3}
    assert_counts_exact(job.pk)
    assert not ComputeNode.objects.filter(name="inproc").exists()


@pytest.fixture
def signal_handlers():
    """The loop's handlers for the test; the test process's own back afterwards."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_signal_only_sets_a_flag_and_the_next_step_stops_and_drains(make_loop, signal_handlers):
    job = make_job("drained")
    add(job, "nap", command="sleep 0.5")
    add(job, "sleeper", command="sleep 60")
    add(job, "later")
    loop = make_loop(slots=2, grace=3)
    loop.signals.install()
    step_until(loop, lambda: len(loop.work.in_phase(Phase.RUNNING)) == 2)

    with CaptureQueriesContext(connection) as queries:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # Python runs the handler between two bytecodes of this thread
    assert loop.signals.count == 1
    assert len(queries) == 0  # the handler wrote nothing
    assert not loop.stopping
    assert ComputeNode.objects.get(name="inproc").takes_tasks

    loop.step()
    assert loop.stopping
    assert ComputeNode.objects.get(name="inproc").state == NodeState.LEAVING_POOL
    step_until(loop, loop.finished, timeout=30)
    loop.shutdown()

    assert state_of("nap") == ("completed", "success", 0, None)  # finished within its grace
    sleeper = Task.objects.get(key="sleeper")  # outlived it: back in the queue
    assert (sleeper.state, sleeper.requeue_count) == (TaskState.ACTIVE, 1)
    later = Task.objects.get(key="later")  # never claimed once stopping
    assert (later.state, later.attempt, later.requeue_count) == (TaskState.ACTIVE, 0, 0)
    assert not ComputeNode.objects.filter(name="inproc").exists()
    assert_counts_exact(job.pk)


def test_a_second_signal_before_the_next_step_requeues_at_once(make_loop, signal_handlers):
    job = make_job("hurried")
    add(job, "sleeper", command="sleep 60")
    loop = make_loop(grace=60)
    loop.signals.install()
    step_until(loop, lambda: loop.work.in_phase(Phase.RUNNING))
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)
    assert loop.signals.count == 2

    started = time.monotonic()
    step_until(loop, loop.finished, timeout=10)
    assert time.monotonic() - started < 5  # not the 60 s of grace
    sleeper = Task.objects.get(key="sleeper")
    assert (sleeper.state, sleeper.requeue_count) == (TaskState.ACTIVE, 1)
    assert_counts_exact(job.pk)


def test_tasks_wait_in_preparing_until_the_preparation_succeeds_on_this_node(make_loop):
    job = make_job("prepared", job_preparation_task={"commandLine": python(
        "import time; time.sleep(0.5); open('ready', 'w').write('prepared')")})
    check = python("import os, sys; p = os.path.join(os.environ['AZ_BATCH_JOB_PREP_WORKING_DIR'], 'ready');"
                   " sys.exit(0 if open(p).read() == 'prepared' else 3)")
    add(job, "t0", "t1", "t2", command=check)
    loop = make_loop(slots=2, exit_when_idle=True)

    loop.step()  # the claim
    assert sorted(Task.objects.filter(state=TaskState.PREPARING).values_list("key", flat=True)) == ["t0", "t1"]
    assert [work.row.batch_id for work in loop.work.in_phase(Phase.WAITING)] == ["t0", "t1"]
    assert loop.busy() == 2  # waiting tasks hold their slots; the preparation takes none
    preparation = NodeTask.objects.get(job=job, node_id="inproc")
    assert (preparation.kind, preparation.state) == ("preparation", "running")

    def prepared() -> bool:
        started = Task.objects.filter(state=TaskState.RUNNING).exists()
        done = NodeTask.objects.filter(pk=preparation.pk, state="completed").exists()
        assert done or not started  # nothing starts before the preparation has succeeded
        return done

    step_until(loop, prepared, timeout=30, what="the preparation")
    step_until(loop, loop.finished, timeout=60)
    loop.shutdown()

    preparation.refresh_from_db()
    assert (preparation.result, preparation.exit_code, preparation.attempt) == ("success", 0, 1)
    assert {state_of(key) for key in ("t0", "t1", "t2")} == {("completed", "success", 0, None)}
    assert preparation.end_time <= min(Task.objects.values_list("start_time", flat=True))
    assert NodeTask.objects.filter(job=job).count() == 1  # prepared once: t2's claim did not prepare again
    assert_counts_exact(job.pk)


def test_a_preparation_that_cannot_start_sends_its_waiting_tasks_back(make_loop):
    """It fails within the claim's step (no such program): the tasks claimed with it must not
    be left holding their slots."""
    job = make_job("unpreparable", job_preparation_task={"commandLine": "/nonexistent/prepare"})
    add(job, "t0", "t1")
    loop = make_loop(slots=2, exit_when_idle=True)

    loop.step()  # the claim, and the preparation failing at once
    preparation = NodeTask.objects.get(job=job, node_id="inproc")
    assert (preparation.state, preparation.result, preparation.refuses_job) == ("completed", "failure", True)
    assert loop.busy() == 0
    assert set(Task.objects.values_list("state", "requeue_count")) == {(TaskState.ACTIVE, 1)}
    step_until(loop, loop.finished, timeout=30)  # this node refuses the job now: nothing left to claim
    assert set(Task.objects.values_list("state", flat=True)) == {TaskState.ACTIVE}
    assert_counts_exact(job.pk)


def test_the_heartbeat_reports_what_the_host_uses(make_loop, settings):
    settings.BATCHSITE_HEARTBEAT_SECONDS = 0  # a heartbeat every step
    loop = make_loop()
    for _ in range(3):
        loop.step()
    usage = ComputeNode.objects.get(name="inproc").usage
    assert 0 <= usage["cpu"] <= 100 and 0 < usage["memory"] < 100 and usage["load"] >= 0
    assert usage["cores"] == os.cpu_count()
    assert len(usage["points"]) >= 2  # the recent points, for the node page's chart
    assert all(len(point) == 4 for point in usage["points"])
