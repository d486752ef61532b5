"""The job manager task: it runs first, adds tasks to its own job through the API with
the AZ_BATCH_AUTHENTICATION_TOKEN it finds in its environment, and with
killJobOnCompletion its end is the job's end (JMComplete). Against a live daphne
server and a real worker process."""

import json
import subprocess
import textwrap
import urllib.error
import urllib.request

import pytest

from jobs.models import Job, JobState
from tasks import counts
from tasks.files import task_dir
from tasks.models import Task, TaskKind

from .conftest import worker_command, worker_env
from .helpers import TASK_PYTHON, make_job, shared_file

pytestmark = pytest.mark.django_db(transaction=True)

MANAGER = textwrap.dedent("""
    import json, os, time, urllib.error, urllib.request

    url, job = os.environ["AZ_BATCH_ACCOUNT_URL"], os.environ["AZ_BATCH_JOB_ID"]
    token = os.environ["AZ_BATCH_AUTHENTICATION_TOKEN"]
    print("token", token, flush=True)

    def call(method, path, body=None):
        request = urllib.request.Request(
            url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    tasks = [{"id": f"work-{i}", "commandLine": "/bin/true"} for i in range(50)]
    status, body = call("POST", f"/jobs/{job}/addtaskcollection", {"value": tasks})
    assert status == 200 and {r["status"] for r in body["value"]} == {"success"}, body
    print("elsewhere", call("GET", "/jobs/other")[0], call("GET", "/jobs")[0], flush=True)
    while call("GET", f"/jobs/{job}/taskcounts")[1]["taskCounts"]["succeeded"] < 50:
        time.sleep(0.1)
    print("all 50 done", flush=True)
""")


def test_a_job_manager_adds_fifty_tasks_and_ends_its_job(api, server, tmp_path):
    script = shared_file("manager.py", MANAGER)
    make_job("other")
    response = api.post("/batch/jobs", {
        "id": "managed", "poolInfo": {"poolId": "local"},
        "jobManagerTask": {"id": "manager", "commandLine": f"{TASK_PYTHON} {script}",
                           "authenticationTokenSettings": {"access": ["job"]}},
    }, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(key="managed")
    manager = Task.objects.get(job=job)  # added with the job
    assert (manager.batch_id, manager.kind) == ("manager", TaskKind.JOB_MANAGER)

    worker = subprocess.run(worker_command("--exit-when-idle", "--poll", "0.1", "--slots", "4"),
                            env=worker_env(BATCHSITE_ACCOUNT_URL=f"{server.url}/batch"),
                            capture_output=True, text=True, timeout=240)
    assert worker.returncode == 0, worker.stderr

    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "JMComplete")
    assert counts.read(job.pk).as_dict() == {"active": 0, "running": 0, "completed": 51, "succeeded": 51,
                                             "failed": 0}
    manager.refresh_from_db()
    assert manager.start_time <= Task.objects.filter(job=job, kind=TaskKind.TASK).earliest("start_time").start_time
    out = (task_dir(manager) / "stdout.txt").read_text()
    assert "elsewhere 403 403" in out  # the token reaches its own job only
    assert "all 50 done" in out

    token = next(line.split()[1] for line in out.splitlines() if line.startswith("token "))
    assert get(f"{server.url}/batch/jobs/managed", token) == (401, "AuthenticationFailed")  # it died with its task
    assert get(f"{server.url}/batch/jobs/managed", token + "x") == (401, "AuthenticationFailed")


def get(url: str, token: str) -> tuple[int, str | None]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())["code"]


def test_without_kill_job_on_completion_the_job_stays_active(run_worker):
    job = make_job("kept", job_manager_task={"id": "jm", "commandLine": "/bin/true", "killJobOnCompletion": False})
    run_worker()
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    assert Task.objects.get(key="jm").result == "success"


def test_a_failed_job_manager_also_ends_its_job(run_worker):
    job = make_job("failing", job_manager_task={"id": "jm", "commandLine": "/bin/false"})
    run_worker()
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "JMComplete")


def test_a_malformed_job_manager_is_refused(api):
    response = api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"},
                                        "jobManagerTask": {"id": "jm"}}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "MissingRequiredProperty")
    assert not Job.objects.exists()
