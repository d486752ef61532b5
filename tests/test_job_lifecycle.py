"""The job lifecycle of the Batch docs: disable (requeue | terminate | wait) and enable,
terminate and delete, and the 409s for operations a state does not allow."""

import pytest

from jobs.models import Job, JobState
from jobs.services.lifecycle import delete_job, disable_job, terminate_job
from tasks import counts
from tasks.models import Task, TaskState
from tasks.services import runs as task_runs

from .helpers import add, assert_counts_exact, claim, make_job

pytestmark = pytest.mark.django_db


def job_state(batch_id="j") -> str:
    return Job.objects.get(key=batch_id).state


def running_job():
    job = make_job("j")
    add(job, "r1", "r2", "queued")
    claimed = claim(node_id="n", limit=2)
    return job, claimed


def test_disable_requeue_puts_running_tasks_back_and_schedules_nothing(api):
    job, _ = running_job()
    response = api.post("/batch/jobs/j/disable", {"disableTasks": "requeue"}, format="json")
    assert response.status_code == 202
    assert job_state() == JobState.DISABLED
    assert {(t.state, t.requeue_count) for t in Task.objects.filter(key__in=["r1", "r2"])} == {("active", 1)}
    assert claim(node_id="n", limit=10) == []
    assert api.get("/batch/jobs/j").json()["previousState"] == "disabling"

    assert api.post("/batch/jobs/j/enable").status_code == 202
    body = api.get("/batch/jobs/j").json()
    assert (body["state"], body["previousState"]) == ("active", "enabling")
    assert len(claim(node_id="n", limit=10)) == 3
    assert_counts_exact(job.pk)


def test_disable_terminate_completes_the_running_tasks():
    job, _ = running_job()
    disable_job(job=job, disable_tasks="terminate")
    assert job_state() == JobState.DISABLED
    assert {(t.state, t.failure_info["code"]) for t in Task.objects.filter(key__in=["r1", "r2"])} == {
        ("completed", "TaskEnded")}
    assert Task.objects.get(key="queued").state == TaskState.ACTIVE
    assert_counts_exact(job.pk)


def test_disable_wait_stays_disabling_until_the_running_tasks_end():
    job, claimed = running_job()
    disable_job(job=job, disable_tasks="wait")
    assert job_state() == JobState.DISABLING
    task_runs.finish_task(task=claimed[0], attempt=claimed[0].attempt, exit_code=0)
    assert job_state() == JobState.DISABLING
    assert claim(node_id="n", limit=10) == []  # no new task while disabling
    task_runs.finish_task(task=claimed[1], attempt=claimed[1].attempt, exit_code=0)
    assert job_state() == JobState.DISABLED
    assert counts.read(job.pk).as_dict() == {"active": 1, "running": 0, "completed": 2, "succeeded": 2, "failed": 0}


def test_a_disabled_job_still_takes_tasks_and_can_be_terminated(api):
    job = make_job("j")
    disable_job(job=job, disable_tasks="requeue")
    assert api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "x"}, format="json").status_code == 201
    assert claim(node_id="n", limit=10) == []
    terminate_job(job=job)
    assert job_state() == JobState.COMPLETED


@pytest.mark.parametrize("setup, path, body, status, code", [
    ("active", "enable", None, 409, "JobNotDisabled"),
    ("disabled", "disable", {"disableTasks": "requeue"}, 409, "JobNotActive"),
    ("completed", "disable", {"disableTasks": "requeue"}, 409, "JobCompleted"),
    ("completed", "enable", None, 409, "JobCompleted"),
    ("completed", "terminate", None, 409, "JobCompleted"),
    ("deleting", "disable", {"disableTasks": "wait"}, 409, "JobBeingDeleted"),
    ("deleting", "terminate", None, 409, "JobBeingDeleted"),
    ("active", "disable", {}, 400, "MissingRequiredProperty"),
    ("active", "disable", {"disableTasks": "later"}, 400, "InvalidPropertyValue"),
])
def test_operations_a_state_does_not_allow(api, setup, path, body, status, code):
    job = make_job("j")
    {"active": lambda: None,
     "disabled": lambda: disable_job(job=job, disable_tasks="requeue"),
     "completed": lambda: terminate_job(job=job),
     "deleting": lambda: delete_job(job=job)}[setup]()
    before = job_state()
    response = api.post(f"/batch/jobs/j/{path}", body or {}, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert job_state() == before


def test_terminate_then_delete_resolve_their_transitional_states(api):
    job, _ = running_job()
    assert api.post("/batch/jobs/j/terminate").status_code == 202
    body = api.get("/batch/jobs/j").json()
    assert (body["state"], body["previousState"]) == ("completed", "terminating")
    assert body["executionInfo"]["terminateReason"] == "UserTerminate"
    assert api.delete("/batch/jobs/j").status_code == 202
    assert api.get("/batch/jobs/j").json()["state"] == "deleting"
    from tasks.services.sweeps import purge_deleted_jobs
    while purge_deleted_jobs():
        pass
    assert api.get("/batch/jobs/j").status_code == 404
    assert not Task.objects.exists()


def test_reactivate_only_failed_tasks_of_an_active_job(api):
    job = make_job("j", max_task_retry_count=2)
    add(job, "ok", "bad", "fresh")
    claimed = {t.batch_id: t for t in claim(node_id="n", limit=2)}
    task_runs.finish_task(task=claimed["ok"], attempt=1, exit_code=0)
    bad = claimed["bad"]
    for attempt in (1, 2, 3):  # the first run and its two retries
        task_runs.finish_task(task=bad, attempt=attempt, exit_code=1)
        if attempt < 3:
            claim(node_id="n", limit=1)
    bad = Task.objects.get(key="bad")
    assert (bad.state, bad.retry_count) == ("completed", 2)

    assert api.post("/batch/jobs/j/tasks/ok/reactivate").status_code == 409  # succeeded
    assert api.post("/batch/jobs/j/tasks/fresh/reactivate").status_code == 409  # not completed
    assert api.post("/batch/jobs/j/tasks/bad/reactivate").status_code == 204
    bad.refresh_from_db()
    assert (bad.state, bad.retry_count, bad.exit_code, bad.failure_info) == ("active", 0, None, None)

    claim(node_id="n", limit=5)
    task_runs.finish_task(task=Task.objects.get(key="bad"), attempt=4, exit_code=1)
    task_runs.finish_task(task=Task.objects.get(key="bad"), attempt=4, exit_code=1)  # stale: ignored
    terminate_job(job=job)
    response = api.post("/batch/jobs/j/tasks/bad/reactivate")
    assert (response.status_code, response.json()["code"]) == (409, "JobCompleted")
    assert_counts_exact(job.pk)


def test_the_job_page_disables_and_enables_a_job(client, owner):
    job = make_job("j")
    client.force_login(owner)
    page = client.get("/jobs/j/").content.decode()
    assert "Disable" in page and "Enable" not in page
    assert client.post("/jobs/j/actions/disable").status_code == 302
    assert job_state() == JobState.DISABLED
    page = client.get("/jobs/j/").content.decode()
    assert "▶ Enable" in page and "❚❚ Disable" not in page
    client.post("/jobs/j/actions/enable")
    assert job_state() == JobState.ACTIVE
    assert job.pk
