"""Task dependencies, as the Batch docs describe them ("Create task dependencies to run
tasks that depend on other tasks"): one-to-one, one-to-many and task id ranges;
dependent tasks run only after their parents succeed, a failing parent blocks them."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import counts
from tasks.models import Task, TaskState
from tasks.services import actions as task_actions
from tasks.services import runs as task_runs

from .helpers import add, assert_counts_exact, claim, make_job, node, query_plan, shared_file

pytestmark = pytest.mark.django_db


def dep_job(batch_id="deps", **fields):
    return make_job(batch_id, uses_task_dependencies=True, **fields)


def run_ready(exit_codes: dict[str, int] | None = None, *, limit: int = 1000) -> list[str]:
    """Claim every runnable task and end each with its exit code (0 unless given): one scheduling round."""
    claimed = claim(node_id="node", limit=limit)
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, (exit_codes or {}).get(t.batch_id, 0)) for t in claimed])
    return sorted(t.batch_id for t in claimed)


def state(batch_id: str) -> tuple[str, bool]:
    task = Task.objects.get(key=batch_id.lower())
    return task.state, task.waiting


def test_the_pipeline_runs_in_order_download_process_report():
    job = dep_job()
    add(job, "download-data")
    add(job, "process-data", depends_on={"taskIds": ["download-data"]})
    add(job, "generate-report", depends_on={"taskIds": ["process-data"]})
    assert counts.read(job.pk).active == 3  # waiting tasks count as active

    assert run_ready() == ["download-data"]
    assert run_ready() == ["process-data"]
    assert run_ready() == ["generate-report"]
    assert run_ready() == []
    assert counts.read(job.pk).as_dict() == {"active": 0, "running": 0, "completed": 3, "succeeded": 3, "failed": 0}
    assert_counts_exact(job.pk)


def test_merge_results_waits_for_every_task_of_its_range():
    job = dep_job()
    add(job, *[str(i) for i in range(1, 101)])
    add(job, "merge-results", depends_on={"taskIdRanges": [{"start": 1, "end": 100}]})
    claimed = claim(node_id="node", limit=1000)
    assert sorted(int(t.batch_id) for t in claimed) == list(range(1, 101))  # merge-results is not among them
    ends = [task_runs.RunEnd(t, t.attempt, 0) for t in claimed]
    task_runs.finish_tasks(ends[:99])
    assert state("merge-results") == (TaskState.ACTIVE, True)
    task_runs.finish_tasks(ends[99:])
    assert state("merge-results") == (TaskState.ACTIVE, False)
    assert run_ready() == ["merge-results"]
    assert_counts_exact(job.pk)


def test_one_to_many_waits_for_all_named_parents():
    job = dep_job()
    add(job, "a", "b", "c")
    add(job, "after-all", depends_on={"taskIds": ["a", "B", "c"]})  # ids match without regard to case
    assert run_ready({"a": 0, "b": 0}, limit=2) == ["a", "b"]
    assert state("after-all") == (TaskState.ACTIVE, True)
    assert run_ready() == ["c"]
    assert run_ready() == ["after-all"]


def test_a_failing_parent_blocks_its_children_for_good():
    job = dep_job()
    add(job, "parent")
    add(job, "child", depends_on={"taskIds": ["parent"]})
    add(job, "grandchild", depends_on={"taskIds": ["child"]})
    assert run_ready({"parent": 2}) == ["parent"]
    parent = Task.objects.get(key="parent")
    assert (parent.state, parent.result) == ("completed", "failure")
    assert run_ready() == []  # blocked: dependencyAction is block for a non-zero exit
    assert state("child") == (TaskState.ACTIVE, True)
    assert counts.read(job.pk).as_dict() == {"active": 2, "running": 0, "completed": 1, "succeeded": 0, "failed": 1}

    # Reactivated and now succeeding, the parent releases them after all.
    task_actions.reactivate_task(task=parent)
    assert run_ready() == ["parent"]
    assert run_ready() == ["child"]
    assert run_ready() == ["grandchild"]
    assert_counts_exact(job.pk)


def test_a_parent_retried_to_success_satisfies():
    job = dep_job(max_task_retry_count=1)
    add(job, "flaky")
    add(job, "after", depends_on={"taskIds": ["flaky"]})
    assert run_ready({"flaky": 1}) == ["flaky"]  # retried, not completed
    assert state("after") == (TaskState.ACTIVE, True)
    assert run_ready() == ["flaky"]
    assert run_ready() == ["after"]


def test_exit_conditions_choose_the_dependency_action():
    job = dep_job()
    add(job, "tolerated", exit_conditions={"exitCodes": [{"code": 3, "exitOptions": {"dependencyAction": "satisfy"}}]})
    add(job, "vetoed", exit_conditions={"exitCodes": [{"code": 0, "exitOptions": {"dependencyAction": "block"}}]})
    add(job, "after-tolerated", depends_on={"taskIds": ["tolerated"]})
    add(job, "after-vetoed", depends_on={"taskIds": ["vetoed"]})
    assert run_ready({"tolerated": 3, "vetoed": 0}) == ["tolerated", "vetoed"]
    assert Task.objects.get(key="tolerated").result == "failure"  # it failed, but its dependents may run
    assert run_ready() == ["after-tolerated"]
    assert state("after-vetoed") == (TaskState.ACTIVE, True)


def test_a_child_added_before_its_parent_waits_for_it():
    job = dep_job()
    add(job, "early", depends_on={"taskIds": ["late"], "taskIdRanges": [{"start": 5, "end": 6}]})
    assert run_ready() == []
    add(job, "late", "5")
    assert run_ready() == ["5", "late"]
    assert state("early") == (TaskState.ACTIVE, True)  # 6 does not exist: a range needs every id
    add(job, "6")
    assert run_ready() == ["6"]
    assert run_ready() == ["early"]


def test_a_child_added_after_its_parents_completed_runs_at_once():
    job = dep_job()
    add(job, "1", "2", "done")
    run_ready()
    add(job, "late-child", depends_on={"taskIds": ["done"], "taskIdRanges": [{"start": 1, "end": 2}]})
    assert state("late-child") == (TaskState.ACTIVE, False)
    assert run_ready() == ["late-child"]


def test_a_satisfied_parent_deleted_or_reactivated_no_longer_counts():
    job = dep_job()
    add(job, "p", exit_conditions={"exitCodes": [{"code": 9, "exitOptions": {"dependencyAction": "satisfy"}}]})
    add(job, "q")
    add(job, "c", depends_on={"taskIds": ["p", "q"]})
    run_ready({"p": 9})
    assert state("c") == (TaskState.ACTIVE, False)
    task_actions.reactivate_task(task=Task.objects.get(key="p"))  # failed with satisfy: it may be reactivated
    assert state("c") == (TaskState.ACTIVE, True)
    run_ready({"p": 9})
    assert state("c") == (TaskState.ACTIVE, False)
    task_actions.delete_task(task=Task.objects.get(key="q"))
    assert state("c") == (TaskState.ACTIVE, True)
    assert run_ready() == []
    assert_counts_exact(job.pk)


def test_tasks_with_the_same_dependencies_share_one_group():
    job = dep_job()
    add(job, *[f"child-{i}" for i in range(50)], depends_on={"taskIdRanges": [{"start": 1, "end": 3}]})
    assert job.dependency_groups.count() == 1
    add(job, "1", "2", "3")
    node("node")  # joined before: the statements counted are the run's
    with CaptureQueriesContext(connection) as queries:
        assert run_ready() == ["1", "2", "3"]
    # Crediting the group and releasing its 50 tasks took a fixed number of statements.
    assert len(queries) < 40, [q["sql"] for q in queries]
    assert len(run_ready()) == 50


def test_overlapping_ids_and_ranges_count_each_parent_once():
    job = dep_job()
    add(job, "c", depends_on={"taskIds": ["2", "7"], "taskIdRanges": [{"start": 1, "end": 3}, {"start": 3, "end": 4}]})
    group = Task.objects.get(key="c").dependency_group
    assert group.needed == 5  # 1, 2, 3, 4 and 7
    add(job, "1", "2", "3", "4", "7")
    run_ready()
    assert run_ready() == ["c"]


def test_a_dependency_on_a_job_without_the_flag_is_refused(api):
    api.post("/batch/jobs", {"id": "plain", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/plain/tasks", {"id": "t", "commandLine": "/bin/true",
                                                     "dependsOn": {"taskIds": ["x"]}}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "TaskDependenciesNotSpecifiedOnJob"
    assert not Task.objects.exists()


def test_a_task_id_list_over_64000_characters_is_refused(api):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True}, format="json")
    ids = [f"{i:063d}" for i in range(1001)]  # 63,063 characters: allowed
    assert api.post("/batch/jobs/j/tasks", {"id": "ok", "commandLine": "x", "dependsOn": {"taskIds": ids}},
                    format="json").status_code == 201
    ids.append("x" * 1000)
    response = api.post("/batch/jobs/j/tasks", {"id": "long", "commandLine": "x", "dependsOn": {"taskIds": ids}},
                        format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "TaskDependencyListTooLong"


@pytest.mark.parametrize("depends_on", [
    {"taskIdRanges": [{"start": 5, "end": 1}]},
    {"taskIdRanges": [{"start": -1, "end": 1}]},
    {"taskIdRanges": [{"start": "a", "end": 1}]},
    {"taskIds": "not-a-list"},
    {"taskIds": [""]},
])
def test_malformed_dependencies_are_refused_per_task_in_a_collection(api, depends_on):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True}, format="json")
    response = api.post("/batch/jobs/j/addtaskcollection", {"value": [
        {"id": "good", "commandLine": "x"},
        {"id": "bad", "commandLine": "x", "dependsOn": depends_on},
    ]}, format="json")
    assert response.status_code == 200
    statuses = {r["taskId"]: (r["status"], r.get("error", {}).get("code")) for r in response.json()["value"]}
    assert statuses == {"good": ("success", None), "bad": ("clienterror", "InvalidPropertyValue")}
    assert counts.read(Task.objects.get().job_id).active == 1


def test_the_cli_sends_range_bounds_as_strings(api):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True}, format="json")
    response = api.post("/batch/jobs/j/tasks", {"id": "m", "commandLine": "x",
                                                 "dependsOn": {"taskIdRanges": [{"start": "1", "end": "2"}]}},
                        format="json")
    assert response.status_code == 201
    assert Task.objects.get(key="m").dependency_group.needed == 2


def test_claiming_never_scans_waiting_tasks():
    """Both reads of a claim use the partial index of runnable tasks, whatever waits beside them."""
    job = dep_job()
    add(job, *[f"w{i}" for i in range(200)], depends_on={"taskIds": ["gate"]})
    add(job, "free")
    with CaptureQueriesContext(connection) as queries:
        assert [t.batch_id for t in claim(node_id="n", limit=10)] == ["free"]
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "tasks_task" in q["sql"]
             and "waiting" in q["sql"]]
    assert len(reads) == 2, reads
    for sql in reads:
        plan = query_plan(sql)
        assert "task_runnable_in_job" in plan, plan
    candidates = query_plan(reads[1])  # read in the index's order, not gathered and sorted
    assert "TEMP B-TREE" not in candidates and "Sort" not in candidates, candidates


def test_a_chain_releases_one_task_per_completion():
    job = dep_job()
    add(job, "link-0")
    for i in range(1, 200):
        add(job, f"link-{i}", depends_on={"taskIds": [f"link-{i - 1}"]})
    for i in range(200):
        assert run_ready() == [f"link-{i}"]
    assert counts.read(job.pk).succeeded == 200
    assert_counts_exact(job.pk)


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_pipeline_in_order_and_never_a_blocked_task(api, run_worker, tmp_path):
    ledger = shared_file("ledger.txt")
    api.post("/batch/jobs", {"id": "pipeline", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True},
             format="json")
    step = f"/bin/sh -c 'echo $AZ_BATCH_TASK_ID >> {ledger}'"
    tasks = [
        {"id": "download-data", "commandLine": step},
        {"id": "process-data", "commandLine": step, "dependsOn": {"taskIds": ["download-data"]}},
        {"id": "generate-report", "commandLine": step, "dependsOn": {"taskIds": ["process-data"]}},
        {"id": "broken", "commandLine": "/bin/false"},
        {"id": "never", "commandLine": step, "dependsOn": {"taskIds": ["broken"]}},
    ]
    response = api.post("/batch/jobs/pipeline/addtaskcollection", {"value": tasks}, format="json")
    assert {r["status"] for r in response.json()["value"]} == {"success"}
    run_worker("--slots", "4")
    assert ledger.read_text().split() == ["download-data", "process-data", "generate-report"]
    assert api.get("/batch/jobs/pipeline/tasks/never").json()["state"] == "active"
    assert api.get("/batch/jobs/pipeline/taskcounts").json()["taskCounts"] == {
        "active": 1, "running": 0, "completed": 4, "succeeded": 3, "failed": 1}
