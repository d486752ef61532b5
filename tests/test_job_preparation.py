"""Job Preparation and Job Release tasks, against the Batch docs ("Run job preparation and
job release tasks on Batch compute nodes"):

- the preparation task runs on a node before any task of the job there; with
  waitForSuccess (the default) the tasks wait in `preparing`, and a preparation
  that fails after its retries keeps the job's tasks off that node;
- the release task runs, when the job ends, on each node that ran the preparation;
  the job is `terminating` until it has;
- List Preparation and Release Task Status shows both per node, and 409
  JobPreparationTaskNotSpecified for a job without one.

Real worker processes run every command here.
"""

from datetime import datetime

import pytest

from jobs.models import Job
from tasks import counts
from tasks.models import NodeTask, Task, TaskState
from tasks.services import runs as task_runs

from .helpers import TASK_PYTHON, assert_counts_exact, claim, shared_file, wait_for

PY = TASK_PYTHON


def python(code: str) -> str:
    """A command line running `code` in Python (task command lines run without a shell)."""
    return f'{PY} -c "{code}"'


def stamp(path) -> str:
    """A command line that appends the task's id and the time to `path`."""
    return python(f"import os, time; open(r'{path}', 'a').write(os.environ['AZ_BATCH_TASK_ID'] + ' '"
                  f" + repr(time.time()) + chr(10))")


def ledger(path) -> list[tuple[str, float]]:
    return [(line.split()[0], float(line.split()[1])) for line in path.read_text().splitlines()]


def add_job(api, job_id: str, **body):
    response = api.post("/batch/jobs", {"id": job_id, "poolInfo": {"poolId": "local"}, **body}, format="json")
    assert response.status_code == 201, response.content
    return Job.objects.get(batch_id=job_id)


def add_tasks(api, job_id: str, tasks: list[dict]):
    response = api.post(f"/batch/jobs/{job_id}/addtaskcollection", {"value": tasks}, format="json")
    assert {r["status"] for r in response.json()["value"]} == {"success"}, response.content


# --- the API ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("body, code, name", [
    ({"jobReleaseTask": {"commandLine": "x"}}, "InvalidPropertyValue", "jobReleaseTask"),
    # Nested properties are named by their own name, as everywhere in this API.
    ({"jobPreparationTask": {}}, "MissingRequiredProperty", "commandLine"),
    ({"jobPreparationTask": {"commandLine": "x", "waitForSuccess": "yes"}}, "InvalidPropertyValue",
     "waitForSuccess"),
    ({"jobPreparationTask": {"commandLine": "x", "colour": 1}}, "InvalidRequestBody", "jobPreparationTask.colour"),
    ({"jobPreparationTask": {"commandLine": "x", "id": "same"}, "jobReleaseTask": {"commandLine": "y", "id": "SAME"}},
     "InvalidPropertyValue", "jobReleaseTask.id"),
])
def test_add_job_checks_the_preparation_and_release_tasks(api, body, code, name):
    response = api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, **body}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == code
    assert {"key": "PropertyName", "value": name} in error["values"]
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("spec, task_id, code", [
    ({"jobPreparationTask": {"commandLine": "x"}}, "jobpreparation", "TaskIdSameAsJobPreparationTask"),
    ({"jobPreparationTask": {"commandLine": "x"}, "jobReleaseTask": {"commandLine": "y"}}, "JobRelease",
     "TaskIdSameAsJobReleaseTask"),
    ({"jobPreparationTask": {"commandLine": "x", "id": "setup"}}, "setup", "TaskIdSameAsJobPreparationTask"),
])
def test_no_task_may_take_the_id_of_the_preparation_or_release_task(api, spec, task_id, code):
    job = add_job(api, "j", **spec)
    response = api.post("/batch/jobs/j/tasks", {"id": task_id, "commandLine": "x"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == code
    # In a collection, that task alone fails.
    response = api.post("/batch/jobs/j/addtaskcollection", {"value": [
        {"id": "ok", "commandLine": "x"}, {"id": task_id, "commandLine": "x"}]}, format="json")
    statuses = {r["taskId"]: (r["status"], r.get("error", {}).get("code")) for r in response.json()["value"]}
    assert statuses == {"ok": ("success", None), task_id: ("clienterror", code)}
    assert counts.read(job.pk).active == 1


@pytest.mark.django_db
def test_status_of_a_job_without_a_preparation_task_is_a_conflict(api):
    add_job(api, "plain")
    response = api.get("/batch/jobs/plain/jobpreparationandreleasetaskstatus")
    assert response.status_code == 409
    assert response.json()["code"] == "JobPreparationTaskNotSpecified"


@pytest.mark.django_db
def test_claimed_tasks_wait_in_preparing_until_the_preparation_succeeds_on_their_node(api):
    """In-process, the service steps the worker takes: claim, prepare, start."""
    from tasks import node_tasks
    from tasks.services import node_task_runs

    job = add_job(api, "j", jobPreparationTask={"commandLine": "x"})
    add_tasks(api, "j", [{"id": f"t{i}", "commandLine": "x"} for i in range(3)])
    claimed = claim(node_id="a", limit=2)
    assert {t.state for t in claimed} == {TaskState.PREPARING}
    assert api.get("/batch/jobs/j/taskcounts").json()["taskCounts"]["running"] == 2  # preparing counts as running
    row = node_task_runs.start(job, "a", node_tasks.PREPARATION)
    assert node_task_runs.finish(row, row.attempt, 0, None) == "succeeded"
    assert [t.state for t in task_runs.start_prepared_tasks(claimed)] == [TaskState.RUNNING] * 2
    # Prepared on a, the next claim there runs at once; on b it prepares first.
    assert claim(node_id="a", limit=1)[0].state == TaskState.RUNNING
    add_tasks(api, "j", [{"id": "t9", "commandLine": "x"}])
    assert claim(node_id="b", limit=1)[0].state == TaskState.PREPARING
    assert_counts_exact(job.pk)


# --- real workers -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_preparation_runs_first_and_release_last_on_the_worker(api, run_worker, tmp_path):
    trail = shared_file("trail.txt")
    add_job(api, "render",
            jobPreparationTask={"commandLine": python(
                "import time; time.sleep(0.3); open('ready', 'w').write('prepared')")},
            jobReleaseTask={"commandLine": stamp(trail)})
    # Each task reads what the preparation left in its working directory.
    check = python("import os, sys; p = os.path.join(os.environ['AZ_BATCH_JOB_PREP_WORKING_DIR'], 'ready');"
                   " sys.exit(0 if open(p).read() == 'prepared' else 3)")
    add_tasks(api, "render", [{"id": f"frame-{i}", "commandLine": check} for i in range(6)]
              + [{"id": "stamp", "commandLine": stamp(trail)}])
    # As the docs advise: set onAllTasksComplete once the tasks are in (a job without tasks is complete).
    assert api.patch("/batch/jobs/render", {"onAllTasksComplete": "terminatejob"}, format="json").status_code == 200
    run_worker("--slots", "3", "--name", "node-a")

    job = api.get("/batch/jobs/render").json()
    assert job["state"] == "completed"
    assert job["executionInfo"]["terminateReason"] == "AllTasksComplete"
    assert api.get("/batch/jobs/render/taskcounts").json()["taskCounts"] == {
        "active": 0, "running": 0, "completed": 7, "succeeded": 7, "failed": 0}
    status = api.get("/batch/jobs/render/jobpreparationandreleasetaskstatus").json()["value"]
    assert [s["nodeId"] for s in status] == ["node-a"]
    prep, release = status[0]["jobPreparationTaskExecutionInfo"], status[0]["jobReleaseTaskExecutionInfo"]
    assert (prep["state"], prep["result"], prep["exitCode"], prep["retryCount"]) == ("completed", "success", 0, 0)
    assert (release["state"], release["result"], release["exitCode"]) == ("completed", "success", 0)
    assert status[0]["poolId"] == "local"
    # Preparation ended before the first task started; the release ran after the last task.
    prep_end = datetime.fromisoformat(prep["endTime"])
    first_start = min(datetime.fromisoformat(t["executionInfo"]["startTime"])
                      for t in api.get("/batch/jobs/render/tasks").json()["value"])
    assert prep_end <= first_start
    assert [name for name, _ in ledger(trail)] == ["stamp", "jobrelease"]
    assert datetime.fromisoformat(release["startTime"]) >= datetime.fromisoformat(job["executionInfo"]["startTime"])


@pytest.mark.django_db(transaction=True)
def test_a_failed_preparation_keeps_the_job_off_that_worker_only(api, run_worker):
    """On node-a the preparation fails (after one retry): its tasks go back, and node-b runs them."""
    job = add_job(api, "j", jobPreparationTask={
        "commandLine": python("import os, sys; sys.exit(7 if os.environ['AZ_BATCH_NODE_ID'] == 'node-a' else 0)"),
        "constraints": {"maxTaskRetryCount": 1}})
    add_tasks(api, "j", [{"id": f"t{i}", "commandLine": "/bin/true"} for i in range(4)])

    run_worker("--slots", "2", "--name", "node-a")
    assert counts.read(job.pk).as_dict() == {"active": 4, "running": 0, "completed": 0, "succeeded": 0,
                                             "failed": 0}
    assert Task.objects.filter(requeue_count__gt=0).count() == 2  # the two it had claimed
    (status,) = api.get("/batch/jobs/j/jobpreparationandreleasetaskstatus").json()["value"]
    prep = status["jobPreparationTaskExecutionInfo"]
    assert (prep["state"], prep["result"], prep["exitCode"], prep["retryCount"]) == ("completed", "failure", 7, 1)
    assert prep["failureInfo"]["code"] == "FailureExitCode"

    run_worker("--slots", "2", "--name", "node-a")  # still refused there
    assert counts.read(job.pk).active == 4
    run_worker("--slots", "2", "--name", "node-b")
    assert counts.read(job.pk).succeeded == 4
    assert set(Task.objects.values_list("node_id", flat=True)) == {"node-b"}
    by_node = {s["nodeId"]: s["jobPreparationTaskExecutionInfo"]["result"]
               for s in api.get("/batch/jobs/j/jobpreparationandreleasetaskstatus").json()["value"]}
    assert by_node == {"node-a": "failure", "node-b": "success"}
    assert_counts_exact(job.pk)


@pytest.mark.django_db(transaction=True)
def test_without_wait_for_success_tasks_run_beside_a_failing_preparation(api, run_worker):
    job = add_job(api, "j", jobPreparationTask={"commandLine": "/bin/false", "waitForSuccess": False})
    add_tasks(api, "j", [{"id": f"t{i}", "commandLine": "/bin/true"} for i in range(3)])
    run_worker("--slots", "3", "--name", "node-a")
    assert counts.read(job.pk).succeeded == 3
    assert NodeTask.objects.get().result == "failure"


@pytest.mark.django_db(transaction=True)
def test_terminate_waits_for_the_release_task_then_completes(api, start_worker, tmp_path):
    trail = shared_file("trail.txt")
    add_job(api, "j", jobPreparationTask={"commandLine": "/bin/true"},
            jobReleaseTask={"commandLine": python(f"import time; time.sleep(1); open(r'{trail}', 'w').write('bye')")})
    add_tasks(api, "j", [{"id": "long", "commandLine": "/bin/sleep 60"}])
    worker = start_worker("--name", "node-a", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.RUNNING).exists(), what="the task to run")

    assert api.post("/batch/jobs/j/terminate").status_code == 202
    job = api.get("/batch/jobs/j").json()
    assert job["state"] == "terminating"  # the release task has yet to run on node-a
    assert api.get("/batch/jobs/j/tasks/long").json()["state"] == "completed"
    wait_for(lambda: api.get("/batch/jobs/j").json()["state"] == "completed", what="the job to complete")
    assert trail.read_text() == "bye"
    (status,) = api.get("/batch/jobs/j/jobpreparationandreleasetaskstatus").json()["value"]
    assert status["jobReleaseTaskExecutionInfo"]["result"] == "success"
    worker.terminate()
    worker.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_delete_runs_the_release_task_before_the_job_goes(api, start_worker, tmp_path):
    trail = shared_file("trail.txt")
    add_job(api, "j", jobPreparationTask={"commandLine": "/bin/true"},
            jobReleaseTask={"commandLine": stamp(trail)})
    add_tasks(api, "j", [{"id": "t", "commandLine": "/bin/true"}])
    worker = start_worker("--name", "node-a", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.COMPLETED).exists(), what="the task to finish")
    assert api.delete("/batch/jobs/j").status_code == 202
    wait_for(lambda: api.get("/batch/jobs/j").status_code == 404, what="the job to go")
    assert [name for name, _ in ledger(trail)] == ["jobrelease"]
    assert not NodeTask.objects.exists()
    worker.terminate()
    worker.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_job_does_not_wait_for_the_release_of_a_worker_that_stopped(api, start_worker):
    job = add_job(api, "j", jobPreparationTask={"commandLine": "/bin/true"},
                  jobReleaseTask={"commandLine": "/bin/true"})
    add_tasks(api, "j", [{"id": "t", "commandLine": "/bin/true"}])
    worker = start_worker("--name", "node-a", "--poll", "0.1")
    wait_for(lambda: Task.objects.filter(state=TaskState.COMPLETED).exists(), what="the task to finish")
    worker.terminate()
    worker.wait(timeout=30)
    assert api.post("/batch/jobs/j/terminate").status_code == 202
    job.refresh_from_db()
    assert job.state == "completed"  # node-a is gone: nobody owes a release


@pytest.mark.django_db
def test_the_job_page_shows_each_workers_preparation_and_release(client, owner, api):
    from tasks import node_tasks
    from tasks.services import node_task_runs

    job = add_job(api, "j", jobPreparationTask={"commandLine": "x"}, jobReleaseTask={"commandLine": "y"})
    client.force_login(owner)
    assert "No worker has run this job's preparation task yet" in client.get("/jobs/j/").content.decode()
    row = node_task_runs.start(job, "node-a", node_tasks.PREPARATION)
    node_task_runs.finish(row, row.attempt, 3, None)
    page = client.get("/jobs/j/").content.decode()
    assert 'data-node="node-a"' in page
    assert "exit 3" in page and "FailureExitCode" in page and "runs when the job ends" in page
