"""The job page says why its active tasks wait, and draws its node timeline; both in bounded queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import default_account
from jobs import node_timeline, waiting
from pools.node_load import Load
from pools.services import lifecycle, node_actions
from tasks import counts
from tasks.models import Task
from tasks.services import runs as task_runs

from .helpers import add, claim, make_job, node


def reasons(job) -> list[str]:
    job.refresh_from_db()
    return [r.text for r in waiting.why_waiting(job, counts.read(job.pk))]


def make_pool(pool_id: str, **values):
    return lifecycle.create_pool(spec={"account": default_account(), "batch_id": pool_id,
                                       "vm_size": "standard_d2s_v3", **values})


@pytest.mark.django_db
def test_an_empty_pool_a_missing_pool_and_a_resizing_pool_are_named(settings):
    job = make_job("j", pool_info={"poolId": "render"})  # made automatically, one node wanted, none yet
    add(job, "t")
    assert reasons(job) == ["its pool render has no node yet: it is resizing to 1"]
    settings.BATCHSITE_AUTO_POOLS = False
    orphan = make_job("orphan", pool_info={"poolId": "nowhere"})
    add(orphan, "t")
    assert reasons(orphan) == ["its pool nowhere does not exist (Batchsite makes no pool on its own here: create it)"]
    make_pool("empty")
    stuck = make_job("stuck", pool_info={"poolId": "empty"})
    add(stuck, "t")
    assert reasons(stuck) == ["its pool empty has no nodes"]


@pytest.mark.django_db
def test_nodes_that_take_no_task_and_full_slots_are_named():
    make_pool("p", task_slots_per_node=1)
    job = make_job("j", pool_info={"poolId": "p"})
    add(job, "a", "b")
    worker = node("n1", pool="p")
    node_actions.disable_scheduling(node=worker)
    assert reasons(job) == ["no node of pool p takes tasks: 1 offline"]
    node_actions.enable_scheduling(node=worker)
    assert reasons(job) == []  # an idle node with room: nothing holds the tasks back
    claim(node_id="n1", limit=1, holding=Load())
    assert reasons(job) == ["all 1 slots of pool p's nodes are in use"]


@pytest.mark.django_db
def test_a_disabled_job_and_max_parallel_tasks_are_named():
    make_pool("p", task_slots_per_node=4)
    job = make_job("j", pool_info={"poolId": "p"}, max_parallel_tasks=1)
    add(job, "a", "b")
    node("n1", pool="p")
    claim(node_id="n1", limit=4, holding=Load())
    assert reasons(job) == ["maxParallelTasks is reached: 1 of at most 1 tasks run"]
    from jobs.services.lifecycle import disable_job

    disable_job(job=job, disable_tasks="requeue")
    assert reasons(job)[0] == "the job is disabled: no task starts until it is enabled"


@pytest.mark.django_db
def test_tasks_waiting_for_a_failed_parent_name_it(django_assert_max_num_queries):
    job = make_job("pipeline", uses_task_dependencies=True)
    add(job, "render-1", "render-2")
    add(job, "merge", depends_on={"taskIds": ["render-1", "render-2", "render-3"]})
    node("n1")
    ends = [task_runs.RunEnd(task, task.attempt, 0 if task.batch_id == "render-1" else 7)
            for task in claim(node_id="n1", limit=2)]
    task_runs.finish_tasks(ends, node_id="n1", holding=Load())  # the node is idle again
    with django_assert_max_num_queries(12):
        said = reasons(job)
    assert said == ["1 task waits for its parents: merge for render-2, which failed (exit code 7), "
                    "render-3 (no such task yet)"]


@pytest.mark.django_db
def test_the_node_timeline_draws_each_run_when_few_and_counts_them_when_many(monkeypatch):
    job = make_job("j")
    add(job, "ok", "bad")
    node("n1")
    for task in claim(node_id="n1", limit=2):
        task_runs.finish_task(task=task, attempt=task.attempt, exit_code=0 if task.batch_id == "ok" else 1)
    drawn = node_timeline.node_timeline(job)
    assert drawn["mode"] == "bars" and drawn["nodes"] == ["n1"]
    assert sorted((bar[3], bar[4]) for bar in drawn["bars"]) == [("bad", "failed"), ("ok", "succeeded")]

    # Many runs: counted per node and unit, in one grouped read; failures apart.
    monkeypatch.setattr(node_timeline, "MAX_BARS", 1)
    start = timezone.now() - timedelta(hours=3)
    Task.objects.filter(job=job, batch_id="ok").update(start_time=start)
    counted = node_timeline.node_timeline(job)
    assert counted["mode"] == "counts" and counted["unit"] == 60  # 3 hours: minutes fit in 240 units
    assert sum(cell[2] for cell in counted["cells"]) == 2 and sum(cell[3] for cell in counted["cells"]) == 1


@pytest.mark.django_db
def test_the_job_page_shows_why_its_tasks_wait(client, owner):
    job = make_job("j", pool_info={"poolId": "render"})
    add(job, "t")
    client.force_login(owner)
    page = client.get("/jobs/j/").content.decode()
    assert 'id="why-waiting"' in page and "its pool render has no node yet" in page
    assert 'id="node-timeline-chart"' in page
