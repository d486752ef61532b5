"""Several workers on one job: no task runs twice, counts stay exact."""

import signal
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from pools.models import SCHEDULABLE_STATES, ComputeNode, NodeState
from tasks import counts
from tasks.models import Task, TaskState
from tasks.services.sweeps import requeue_dead_workers

from .helpers import add, assert_counts_exact, claim, make_job, shared_file, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_worker_processes_never_run_a_task_twice(tmp_path, start_worker):
    ledger = shared_file("ran.txt")
    job = make_job("shared")
    workers = [start_worker("--poll", "0.1", "--slots", "3", "--name", f"w{i}") for i in range(2)]
    # Both must be polling before the first task exists: on a slow machine one worker
    # could otherwise start late and find the whole job already done.
    wait_for(lambda: ComputeNode.objects.filter(state__in=SCHEDULABLE_STATES).count() == 2, timeout=60)
    add(job, *[f"t{i}" for i in range(300)],
        command=f"/bin/sh -c 'echo $AZ_BATCH_TASK_ID >> {ledger}'")
    wait_for(lambda: counts.read(job.pk).completed == 300, timeout=240)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, worker.stderr.read()

    ran = Counter(ledger.read_text().split())
    assert len(ran) == 300
    assert max(ran.values()) == 1, [task for task, n in ran.items() if n > 1]
    by_node = Counter(Task.objects.filter(job=job).values_list("node_id", flat=True))
    assert set(by_node) == {"w0", "w1"}, by_node  # both took part
    assert counts.read(job.pk).as_dict() == {"active": 0, "running": 0, "completed": 300, "succeeded": 300,
                                             "failed": 0}
    assert_counts_exact(job.pk)


def test_sigterm_stops_claiming_and_requeues_what_outlives_the_grace(start_worker):
    job = make_job("long")
    add(job, "sleeper-1", "sleeper-2", command="sleep 60")
    add(job, "later", command="/bin/true")
    worker = start_worker("--name", "w", "--slots", "2", "--grace", "0.5", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.RUNNING).count() == 2)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0

    sleepers = Task.objects.filter(key__startswith="sleeper")
    assert {(t.state, t.requeue_count) for t in sleepers} == {(TaskState.ACTIVE, 1)}
    assert all(t.last_requeue_time for t in sleepers)
    assert Task.objects.get(key="later").state == TaskState.ACTIVE  # never claimed after the signal
    assert not ComputeNode.objects.filter(name="w").exists()
    assert_counts_exact(job.pk)


def test_sigterm_lets_short_tasks_finish(start_worker):
    job = make_job("short")
    add(job, "nap", command="sleep 1")
    worker = start_worker("--name", "w", "--grace", "20", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.RUNNING).exists())
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    nap = Task.objects.get(key="nap")
    assert (nap.state, nap.result, nap.requeue_count) == (TaskState.COMPLETED, "success", 0)


def test_a_terminated_task_is_killed_on_its_worker(api, start_worker):
    job = make_job("kill")
    add(job, "forever", command="sleep 600")
    worker = start_worker("--name", "w", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.RUNNING).exists())
    assert api.post("/batch/jobs/kill/tasks/forever/terminate").status_code == 204
    # The worker notices within its check interval and kills the process group.
    wait_for(lambda: "sleep 600" not in _processes())
    forever = Task.objects.get(key="forever")
    assert (forever.state, forever.result, forever.failure_info["code"]) == ("completed", "failure", "TaskEnded")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert_counts_exact(job.pk)


def _processes() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_the_tasks_of_a_worker_whose_heartbeat_stopped_are_requeued(start_worker):
    job = make_job("orphans")
    add(job, "a", "b", command="sleep 600")
    worker = start_worker("--name", "doomed", "--slots", "2", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.RUNNING).count() == 2)
    worker.kill()  # no chance to clean up: as if its machine died
    worker.wait()
    assert requeue_dead_workers() == 0  # its heartbeat is still fresh
    ComputeNode.objects.filter(name="doomed").update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert requeue_dead_workers() == 2
    assert set(Task.objects.values_list("state", "requeue_count")) == {(TaskState.ACTIVE, 1)}
    assert ComputeNode.objects.get(name="doomed").state == NodeState.UNKNOWN  # lost, as Batch shows it
    assert_counts_exact(job.pk)
    subprocess.run(["pkill", "-f", "sleep 600"])  # the dead worker's children, left behind as on a real crash


def test_a_second_live_worker_with_the_same_name_is_refused(start_worker):
    first = start_worker("--name", "twin", "--poll", "0.1")
    wait_for(lambda: ComputeNode.objects.filter(name="twin", state__in=SCHEDULABLE_STATES).exists())
    second = start_worker("--name", "twin")
    assert second.wait(timeout=20) != 0
    assert "is alive" in second.stderr.read()
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=20) == 0


def test_a_worker_restarted_under_its_name_requeues_what_it_left_running(run_worker):
    job = make_job("left")
    add(job, "a")
    claim(node_id="phoenix", limit=1)  # as if "phoenix" died running it
    ComputeNode.objects.filter(name="phoenix").update(heartbeat_at=timezone.now() - timedelta(hours=1))
    run_worker("--name", "phoenix")
    a = Task.objects.get(key="a")
    assert (a.state, a.result, a.requeue_count) == ("completed", "success", 1)
    assert_counts_exact(job.pk)


def test_the_api_keeps_writing_while_two_workers_run(api, tmp_path, start_worker):
    """SQLite with WAL, IMMEDIATE transactions and a busy timeout: no "database is locked"."""
    job = make_job("busy")
    add(job, *[f"first-{i}" for i in range(200)])
    workers = [start_worker("--poll", "0.05", "--slots", "3", "--name", f"w{i}") for i in range(2)]
    for chunk in range(10):
        tasks = [{"id": f"more-{chunk}-{i}", "commandLine": "/bin/true"} for i in range(20)]
        response = api.post("/batch/jobs/busy/addtaskcollection", {"value": tasks}, format="json")
        assert response.status_code == 200, response.content
        assert {r["status"] for r in response.json()["value"]} == {"success"}
        assert api.get("/batch/jobs/busy/taskcounts").status_code == 200
    wait_for(lambda: counts.read(job.pk).completed == 400, timeout=120)
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
        assert "locked" not in worker.stderr.read()
    assert counts.read(job.pk).as_dict() == {"active": 0, "running": 0, "completed": 400, "succeeded": 400,
                                             "failed": 0}
    assert_counts_exact(job.pk)
