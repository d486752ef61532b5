"""constraints.retentionTime: "the minimum time to retain the Task directory on the Compute
Node where it ran, from the time it completes execution. After this time, the Batch
service may delete the Task directory" (default 7 days). The file API then answers
TaskFilesCleanedup."""

import time
from datetime import timedelta

import pytest
from django.conf import settings

from tasks.files import task_dir
from tasks.models import Task
from tasks.services import sweeps

pytestmark = pytest.mark.django_db(transaction=True)


def add_job_with_tasks(api, tasks):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/j/addtaskcollection", {"value": tasks}, format="json")
    assert {r["status"] for r in response.json()["value"]} == {"success"}


def test_directories_go_when_their_retention_time_has_passed(api, run_worker):
    add_job_with_tasks(api, [
        {"id": "brief", "commandLine": "/bin/echo hello", "constraints": {"retentionTime": "PT1S"}},
        {"id": "kept", "commandLine": "/bin/echo hello"},
        {"id": "extended", "commandLine": "/bin/echo hello", "constraints": {"retentionTime": "PT1S"}},
    ])
    run_worker()
    tasks = {t.batch_id: t for t in Task.objects.select_related("job")}
    for task in tasks.values():
        assert task.files_expire_at == task.end_time + (task.retention_time or settings.BATCHSITE_DEFAULT_RETENTION)
    assert tasks["kept"].files_expire_at - tasks["kept"].end_time == timedelta(days=7)
    # Update Task: the new retentionTime counts from the task's end.
    response = api.put("/batch/jobs/j/tasks/extended", {"constraints": {"retentionTime": "PT1H"}}, format="json")
    assert response.status_code == 200, response.content

    time.sleep(1.2)
    assert sweeps.remove_expired_task_files() == 1
    assert not task_dir(tasks["brief"]).exists()
    assert task_dir(tasks["kept"]).exists() and task_dir(tasks["extended"]).exists()
    for url in ("/batch/jobs/j/tasks/brief/files", "/batch/jobs/j/tasks/brief/files/stdout.txt"):
        response = api.get(url)
        assert response.status_code == 409
        assert response.json()["code"] == "TaskFilesCleanedup"
    assert api.get("/batch/jobs/j/tasks/kept/files/stdout.txt").status_code == 200
    assert api.get("/batch/jobs/j/tasks/brief").json()["state"] == "completed"  # the task itself stays
    assert sweeps.remove_expired_task_files() == 0


def test_a_reactivated_task_has_files_again(api, run_worker):
    add_job_with_tasks(api, [{"id": "flaky", "commandLine": "/bin/false", "constraints": {"retentionTime": "PT0S"}}])
    run_worker()
    assert sweeps.remove_expired_task_files() == 1
    task = Task.objects.get()
    task.command_line = "/bin/echo again"
    task.save(update_fields=["command_line"])
    assert api.post("/batch/jobs/j/tasks/flaky/reactivate").status_code == 204
    task.refresh_from_db()
    assert task.files_expire_at is None and task.files_removed_at is None
    run_worker()
    assert api.get("/batch/jobs/j/tasks/flaky/files/stdout.txt").status_code == 200
