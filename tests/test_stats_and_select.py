"""$expand=stats (TaskStatistics, JobStatistics) and $select of nested properties, as the
Batch REST docs describe them ("Get Task", "Get Job", "List Tasks": `$expand`, `$select`)."""

import re

import pytest

from jobs.models import Job
from tasks import counts

from .helpers import TASK_PYTHON, shared_file

PY = TASK_PYTHON


def seconds(iso_duration: str) -> float:
    """PT1M2.5S -> 62.5 (the forms wire.iso_duration writes)."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", iso_duration)
    days, hours, minutes, secs = (float(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


@pytest.mark.django_db(transaction=True)
def test_stats_of_tasks_and_their_job_come_from_what_the_runs_used(api, run_worker, tmp_path):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json")
    burn = f'{PY} -c "sum(i * i for i in range(15_000_000))"'  # ~0.5 s of CPU, well over the 0.2 asserted
    write = (f"{PY} -c \"import os; f = open('blob', 'wb'); f.write(os.urandom(4 << 20)); f.flush();"
             f" os.fsync(f.fileno())\"")
    # Fails on its first two runs (a marker file counts them), then succeeds.
    flaky = (f"{PY} -c \"import os, sys; p = r'{shared_file('runs')}'; n = len(open(p).read()) if os.path.exists(p)"
             f" else 0; open(p, 'a').write('x'); sys.exit(0 if n >= 2 else 1)\"")
    response = api.post("/batch/jobs/j/addtaskcollection", {"value": [
        {"id": "burn", "commandLine": burn},
        {"id": "write", "commandLine": write},
        {"id": "flaky", "commandLine": flaky, "constraints": {"maxTaskRetryCount": 2}},
        {"id": "fails", "commandLine": "/bin/false"},
    ]}, format="json")
    assert {r["status"] for r in response.json()["value"]} == {"success"}
    run_worker("--slots", "2")

    def task_stats(task_id):
        response = api.get(f"/batch/jobs/j/tasks/{task_id}", {"$expand": "stats"})
        assert response.status_code == 200
        return response.json()["stats"]

    burn_stats = task_stats("burn")
    assert seconds(burn_stats["userCPUTime"]) > 0.2
    assert seconds(burn_stats["wallClockTime"]) >= seconds(burn_stats["userCPUTime"]) * 0.5
    assert burn_stats["url"].endswith("/jobs/j/tasks/burn")
    assert int(task_stats("write")["writeIOps"]) > 0 and task_stats("write")["writeIOGiB"] > 0
    flaky_stats = task_stats("flaky")
    assert api.get("/batch/jobs/j/tasks/flaky").json()["executionInfo"]["retryCount"] == 2
    assert seconds(flaky_stats["wallClockTime"]) > 0  # summed over its three runs
    assert "stats" not in api.get("/batch/jobs/j/tasks/burn").json()  # only when expanded

    job = api.get("/batch/jobs/j", {"$expand": "stats"}).json()["stats"]
    assert (job["numSucceededTasks"], job["numFailedTasks"], job["numTaskRetries"]) == ("3", "1", "2")
    assert seconds(job["userCPUTime"]) >= seconds(burn_stats["userCPUTime"])
    assert int(job["writeIOps"]) >= int(task_stats("write")["writeIOps"])
    assert seconds(job["waitTime"]) >= 0 and job["url"].endswith("/jobs/j")
    listed = api.get("/batch/jobs", {"$expand": "stats", "$select": "id,stats"}).json()["value"]
    assert listed[0].keys() == {"id", "stats"} and listed[0]["stats"]["numTaskRetries"] == "2"


@pytest.mark.django_db
def test_job_stats_read_a_few_shard_rows_whatever_the_job_size(api, django_assert_max_num_queries):
    from .helpers import make_big_job

    make_big_job(5000, "big")
    with django_assert_max_num_queries(6):
        response = api.get("/batch/jobs/big", {"$expand": "stats"})
    assert response.json()["stats"]["numSucceededTasks"] == str(counts.read(Job.objects.get().pk).succeeded)


@pytest.fixture
def job(api):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True,
                             "constraints": {"maxTaskRetryCount": 3}}, format="json")
    for i in range(3):
        api.post("/batch/jobs/j/tasks", {"id": f"t{i}", "commandLine": "x",
                                         "dependsOn": {"taskIds": ["a", "b"]}}, format="json")


@pytest.mark.django_db
@pytest.mark.parametrize("select, expected", [
    ("id,executionInfo/retryCount", {"id": "t0", "executionInfo": {"retryCount": 0}}),
    ("executionInfo/retryCount,executionInfo/requeueCount", {"executionInfo": {"retryCount": 0, "requeueCount": 0}}),
    ("constraints/maxTaskRetryCount", {"constraints": {"maxTaskRetryCount": 3}}),
    ("dependsOn/taskIds", {"dependsOn": {"taskIds": ["a", "b"]}}),
    ("id,executionInfo,executionInfo/retryCount", None),  # the whole executionInfo
])
def test_nested_select_on_tasks(api, job, select, expected):
    for url in ("/batch/jobs/j/tasks/t0", "/batch/jobs/j/tasks"):
        response = api.get(url, {"$select": select})
        assert response.status_code == 200, response.content
        body = response.json()
        item = body["value"][0] if "value" in body else body
        if expected is None:
            assert item["executionInfo"].keys() >= {"retryCount", "requeueCount"}
        else:
            assert item == expected


@pytest.mark.django_db
def test_nested_select_on_jobs(api, job):
    body = api.get("/batch/jobs/j", {"$select": "id,constraints/maxTaskRetryCount"}).json()
    assert body == {"id": "j", "constraints": {"maxTaskRetryCount": 3}}


@pytest.mark.django_db
@pytest.mark.parametrize("url, params, named", [
    ("/batch/jobs/j/tasks/t0", {"$select": "executionInfo/colour"}, "executionInfo/colour"),
    ("/batch/jobs/j/tasks", {"$select": "stats"}, "stats"),  # not without $expand=stats
    ("/batch/jobs/j/tasks", {"$select": "id,"}, "(empty)"),
    ("/batch/jobs/j/tasks", {"$expand": "files"}, "files"),
    ("/batch/jobs/j", {"$expand": "stats,tasks"}, "tasks"),
    ("/batch/jobs", {"$select": "constraints/maxTasks"}, "constraints/maxTasks"),
])
def test_bad_select_and_expand_are_400(api, job, url, params, named):
    response = api.get(url, params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidQueryParameterValue"
    assert any(named in v["value"] for v in body["values"]), body


@pytest.mark.django_db
def test_the_next_link_keeps_expand(api, job):
    page = api.get("/batch/jobs/j/tasks", {"$expand": "stats", "maxresults": 2}).json()
    assert "%24expand=stats" in page["odata.nextLink"] or "$expand=stats" in page["odata.nextLink"]
    assert all("stats" in t for t in page["value"])
