"""`manage.py demo` makes a job a new user can watch: hundreds of varied tasks, counted exactly."""

import re

import pytest
from django.core.management import call_command

from jobs.models import Job
from tasks.models import Task

from .helpers import assert_counts_exact

pytestmark = pytest.mark.django_db


def test_the_demo_job_has_varied_tasks_some_failing_some_retried_some_waiting():
    call_command("demo", "--id", "demo-test", "--seed", "3")
    job = Job.objects.get(batch_id="demo-test")
    tasks = Task.objects.filter(job=job)
    assert tasks.count() == 300 and job.uses_task_dependencies
    commands = list(tasks.values_list("command_line", flat=True))
    assert sum(bool(re.search(r"code = \d+, [\d.]+, [1-9]", c)) for c in commands) >= 10  # some fail
    assert sum(".attempt" in c for c in commands) >= 10  # some fail once, then succeed when retried
    assert tasks.exclude(depends_on=None).count() == 6
    assert_counts_exact(job.pk)


@pytest.mark.django_db(transaction=True)
def test_the_demo_tasks_run_in_the_sandbox(run_worker):
    """Their Python is one the task user can run (Batchsite's own is hidden from tasks)."""
    call_command("demo", "--id", "demo-run", "--seed", "1", "--tasks", "6")
    run_worker("--slots", "6")
    tasks = Task.objects.filter(job__batch_id="demo-run")
    assert not tasks.filter(failure_info__code="CommandProgramNotFound").exists()
    assert tasks.filter(result="success").count() >= 4


@pytest.mark.django_db(transaction=True)
def test_make_runs_allocator_gives_the_default_pool_its_node_and_the_demo_runs_there(client, owner):
    """What `make run` starts (scripts/run.sh): the allocator, which makes the default pool `local`
    and starts its one node; the Pools page shows it idle; the demo's job runs on it."""
    import signal
    import subprocess
    import sys

    from pools.models import ComputeNode, NodeState, Pool

    from .conftest import ROOT, sandbox_missing, worker_env
    from .helpers import wait_for

    args = ["--interval", "0.2", "--worker-arg=--poll=0.2"] + (["--allow-unconfined"] if sandbox_missing() else [])
    allocator = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "allocator", *args], env=worker_env(),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: ComputeNode.objects.filter(pool__batch_id="local", state=NodeState.IDLE).exists()
                 or allocator.poll() is not None, timeout=90, what="the default pool's node")
        assert allocator.poll() is None, allocator.stderr.read()
        pool = Pool.objects.get(batch_id="local")
        assert (pool.target_dedicated_nodes, pool.provider) == (1, "local")
        client.force_login(owner)
        page = client.get("/pools/").content.decode()
        assert "local" in page and "idle" in page
        call_command("demo", "--id", "demo-made", "--seed", "1", "--tasks", "4")
        [node] = ComputeNode.objects.filter(pool=pool)
        wait_for(lambda: Task.objects.filter(job__batch_id="demo-made", state="completed").count() == 4,
                 timeout=120, what="the demo's tasks")
        assert set(Task.objects.filter(job__batch_id="demo-made").values_list("node_id", flat=True)) == {node.name}
    finally:
        allocator.send_signal(signal.SIGTERM)
        allocator.wait(timeout=60)
    assert not ComputeNode.objects.filter(pool__batch_id="local").exists()  # its node left with it
