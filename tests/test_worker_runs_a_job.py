"""A job of 200 varied tasks submitted over HTTP and run by a real worker process."""

import pytest

from jobs.models import Job
from tasks import counts
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

FLAKY = "/bin/sh -c 'test -f tried || { touch tried; exit 3; }'"


def tasks_of_kind():
    yield from ((f"ok-{i}", {"commandLine": "/bin/true"}) for i in range(100))
    yield from ((f"false-{i}", {"commandLine": "/bin/false"}) for i in range(50))
    yield from ((f"missing-{i}", {"commandLine": "no-such-program-xyz --flag"}) for i in range(20))
    yield from ((f"slow-{i}", {"commandLine": "sleep 30", "constraints": {"maxWallClockTime": "PT1S"}})
                for i in range(10))
    yield from ((f"retried-{i}", {"commandLine": "/bin/false", "constraints": {"maxTaskRetryCount": 2}})
                for i in range(10))
    yield from ((f"flaky-{i}", {"commandLine": FLAKY, "constraints": {"maxTaskRetryCount": "3"}})
                for i in range(10))


def test_a_worker_runs_200_tasks_to_their_documented_ends(api, run_worker):
    assert api.post("/batch/jobs", {"id": "mixed", "priority": 5}, format="json").status_code == 201
    specs = [{"id": task_id, **spec} for task_id, spec in tasks_of_kind()]
    for chunk in (specs[:100], specs[100:]):
        response = api.post("/batch/jobs/mixed/addtaskcollection", {"value": chunk}, format="json")
        assert response.status_code == 200
        assert {r["status"] for r in response.json()["value"]} == {"success"}

    run_worker("--slots", "4")

    tasks = {t["id"]: t for t in list_all_tasks(api)}
    assert len(tasks) == 200
    assert all(t["state"] == "completed" for t in tasks.values())

    def info(prefix):
        return [t["executionInfo"] for task_id, t in tasks.items() if task_id.startswith(prefix)]

    for ex in info("ok-"):
        assert (ex["result"], ex["exitCode"], ex["retryCount"]) == ("success", 0, 0)
        assert "failureInfo" not in ex
    for ex in info("false-"):
        assert (ex["result"], ex["exitCode"], ex["retryCount"]) == ("failure", 1, 0)
        assert ex["failureInfo"]["code"] == "FailureExitCode"
    for ex in info("missing-"):
        assert (ex["result"], ex["retryCount"]) == ("failure", 0)
        assert "exitCode" not in ex
        assert ex["failureInfo"]["code"] == "CommandProgramNotFound"
        assert ex["failureInfo"]["category"] == "usererror"
    for ex in info("slow-"):
        assert ex["result"] == "failure"
        assert ex["failureInfo"]["code"] == "MaxWallClockTimeExpiry"
        assert ex["exitCode"] == 137  # SIGKILL, as a shell reports it
    for ex in info("retried-"):
        assert (ex["result"], ex["exitCode"], ex["retryCount"]) == ("failure", 1, 2)
        assert ex["lastRetryTime"]
    for ex in info("flaky-"):
        assert (ex["result"], ex["exitCode"], ex["retryCount"]) == ("success", 0, 1)

    response = api.get("/batch/jobs/mixed/taskcounts")
    assert response.json()["taskCounts"] == {"active": 0, "running": 0, "completed": 200, "succeeded": 110,
                                             "failed": 90}
    job = Job.objects.get(key="mixed")
    assert response.json()["taskCounts"] == counts.actual(job.pk).as_dict()


def test_the_missing_program_is_explained_in_stderr(api, run_worker):
    api.post("/batch/jobs", {"id": "j"}, format="json")
    api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "no-such-program-xyz"}, format="json")
    run_worker()
    stderr = api.get("/batch/jobs/j/tasks/t/files/stderr.txt")
    assert b"no-such-program-xyz" in b"".join(stderr.streaming_content)


def test_tasks_run_without_a_shell_with_the_batch_environment(api, run_worker):
    api.post("/batch/jobs", {"id": "env", "commonEnvironmentSettings": [{"name": "SHARED", "value": "job"}]},
             format="json")
    api.post("/batch/jobs/env/tasks", {
        "id": "no-shell", "commandLine": "/bin/echo $HOME 'two words' ; done",
    }, format="json")
    api.post("/batch/jobs/env/tasks", {
        "id": "vars", "commandLine": "/bin/sh -c 'env | sort'",
        "environmentSettings": [{"name": "OWN", "value": "task"}, {"name": "SHARED", "value": "task wins"}],
    }, format="json")
    run_worker()

    def stdout(task_id):
        return b"".join(api.get(f"/batch/jobs/env/tasks/{task_id}/files/stdout.txt").streaming_content).decode()

    # No shell: no expansion, no `;` — the arguments arrive as split by POSIX rules.
    assert stdout("no-shell") == "$HOME two words ; done\n"
    env = dict(line.split("=", 1) for line in stdout("vars").splitlines())
    task = Task.objects.get(key="vars")
    assert env["AZ_BATCH_JOB_ID"] == "env"
    assert env["AZ_BATCH_TASK_ID"] == "vars"
    assert env["AZ_BATCH_NODE_ID"] == task.node_id
    assert env["AZ_BATCH_TASK_WORKING_DIR"].endswith("/workitems/batchsite/env/vars/wd")  # account, job, task
    assert env["OWN"] == "task"
    assert env["SHARED"] == "task wins"
    assert "DATABASE_URL" not in env  # the worker's secrets are not the task's


def list_all_tasks(api):
    url = "/batch/jobs/mixed/tasks?maxresults=77"
    found = []
    while url:
        body = api.get(url).json()
        found += body["value"]
        url = body.get("odata.nextLink")
    return found
