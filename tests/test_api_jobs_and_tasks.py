"""The Batch REST operations on jobs and tasks, in the wire format the clients read."""

from email.utils import parsedate_to_datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobState
from tasks.models import Task
from tasks.services import runs as task_runs
from tasks.services.sweeps import purge_deleted_jobs

from .helpers import add, assert_counts_exact, claim, make_job

pytestmark = pytest.mark.django_db


def test_a_job_is_added_and_read_back_in_the_wire_format(api):
    response = api.post("/batch/jobs?api-version=2025-06-01", {
        "id": "Render-42", "displayName": "Render", "priority": "100",
        "constraints": {"maxWallClockTime": "PT2H", "maxTaskRetryCount": 3},
        "poolInfo": {"poolId": "local"}, "onTaskFailure": "PerformExitOptionsJobAction",
        "metadata": [{"name": "owner", "value": "ana"}],
    }, format="json")
    assert response.status_code == 201
    assert response["Location"].endswith("/batch/jobs/Render-42")
    assert parsedate_to_datetime(response["Last-Modified"])

    response = api.get("/batch/jobs/render-42")  # ids ignore case
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; odata=minimalmetadata"
    job = response.json()
    assert job["id"] == "Render-42"  # but keep it
    assert job["priority"] == 100
    assert job["state"] == "active"
    assert job["constraints"] == {"maxWallClockTime": "PT2H", "maxTaskRetryCount": 3}
    assert job["onTaskFailure"] == "performexitoptionsjobaction"  # enum values ignore case
    assert job["eTag"] == response["ETag"]
    assert job["creationTime"].endswith("Z")
    assert job["executionInfo"]["poolId"] == "local"


def test_an_unlimited_wall_clock_reads_back_as_the_batch_maximum(api):
    api.post("/batch/jobs", {"id": "j"}, format="json")
    assert api.get("/batch/jobs/j").json()["constraints"]["maxWallClockTime"] == "P10675199DT2H48M5.4775807S"


def test_patch_changes_given_properties_and_put_resets_the_rest(api):
    api.post("/batch/jobs", {"id": "j", "priority": 5, "constraints": {"maxTaskRetryCount": 2}}, format="json")
    assert api.patch("/batch/jobs/j", {"priority": 7}, format="json").status_code == 200
    job = api.get("/batch/jobs/j").json()
    assert (job["priority"], job["constraints"]["maxTaskRetryCount"]) == (7, 2)
    assert api.put("/batch/jobs/j", {"priority": 1}, format="json").status_code == 200
    job = api.get("/batch/jobs/j").json()
    assert (job["priority"], job["constraints"]["maxTaskRetryCount"]) == (1, 0)


def test_terminating_a_job_ends_its_running_tasks_and_leaves_active_ones_unscheduled(api):
    job = make_job("t")
    add(job, "running", "waiting")
    claim(node_id="n", limit=1)
    assert api.post("/batch/jobs/t/terminate", {"terminateReason": "enough"}, format="json").status_code == 202
    body = api.get("/batch/jobs/t").json()
    assert (body["state"], body["previousState"]) == ("completed", "terminating")
    assert body["executionInfo"]["terminateReason"] == "enough"
    assert Task.objects.get(key="running").failure_info["code"] == "TaskEnded"
    assert Task.objects.get(key="waiting").state == "active"
    assert claim(node_id="n", limit=5) == []
    assert api.get("/batch/jobs/t/taskcounts").json()["taskCounts"] == {
        "active": 1, "running": 0, "completed": 1, "succeeded": 0, "failed": 1}


def test_deleting_a_job_answers_at_once_and_the_purge_removes_it(api, node_root):
    job = make_job("doomed")
    add(job, *[f"t{i}" for i in range(30)])
    assert api.delete("/batch/jobs/doomed").status_code == 202
    assert api.get("/batch/jobs/doomed").json()["state"] == "deleting"
    assert api.post("/batch/jobs/doomed/tasks", {"id": "x", "commandLine": "y"},
                    format="json").json()["code"] == "JobBeingDeleted"
    while purge_deleted_jobs(chunk=7):
        if Job.objects.filter(pk=job.pk).exists():
            assert_counts_exact(job.pk)
    assert api.get("/batch/jobs/doomed").status_code == 404
    assert not Task.objects.exists()
    assert api.post("/batch/jobs", {"id": "DOOMED"}, format="json").status_code == 201  # the id is free again


def test_job_lists_page_with_a_next_link_that_carries_the_filter(api):
    for i in range(7):
        make_job(f"job-{i}", priority=i)
    make_job("other")
    seen, url = [], "/batch/jobs?api-version=2025-06-01&maxresults=3&$filter=startswith(id,'JOB-')"
    while url:
        body = api.get(url).json()
        seen += [j["id"] for j in body["value"]]
        url = body.get("odata.nextLink")
        if url:
            assert "api-version=2025-06-01" in url and "%24filter=" in url and "maxresults=3" in url
    assert seen == [f"job-{i}" for i in range(7)]


def test_a_task_is_added_and_read_back(api):
    api.post("/batch/jobs", {"id": "j", "constraints": {"maxTaskRetryCount": 4}, "usesTaskDependencies": True},
             format="json")
    response = api.post("/batch/jobs/j/tasks", {
        "id": "Frame-1", "commandLine": "render --frame 1",
        "environmentSettings": [{"name": "FRAME", "value": "1"}],
        "constraints": {"maxWallClockTime": "PT10M"},
        "dependsOn": {"taskIds": ["a"]}, "resourceFiles": [{"httpUrl": "http://example/x", "filePath": "x"}],
        "userIdentity": {"autoUser": {"scope": "task"}}, "affinityInfo": {"affinityId": "n1"},
    }, format="json")
    assert response.status_code == 201
    task = api.get("/batch/jobs/J/tasks/frame-1").json()
    assert task["id"] == "Frame-1"
    assert task["state"] == "active"
    assert task["commandLine"] == "render --frame 1"
    assert task["constraints"] == {"maxWallClockTime": "PT10M", "maxTaskRetryCount": 4, "retentionTime": "P7D"}
    assert task["dependsOn"] == {"taskIds": ["a"]}
    assert task["userIdentity"] == {"autoUser": {"scope": "task"}}
    assert task["executionInfo"] == {"retryCount": 0, "requeueCount": 0}
    assert task["url"].endswith("/batch/jobs/j/tasks/Frame-1")


def test_task_lists_filter_by_state_and_id_prefix_and_select_properties(api):
    job = make_job("j")
    add(job, "render-1", "render-2", "encode-1", "RENDER-3")
    claim(node_id="n", limit=1)
    response = api.get("/batch/jobs/j/tasks?$filter=startswith(id,'render') and state eq 'active'"
                       "&$select=id,state")
    assert response.json()["value"] == [{"id": "render-2", "state": "active"}, {"id": "RENDER-3", "state": "active"}]
    response = api.get("/batch/jobs/j/tasks?$filter=state eq 'running' or id eq 'ENCODE-1'&$select=id")
    assert response.json()["value"] == [{"id": "render-1"}, {"id": "encode-1"}]


def test_select_reads_only_the_columns_it_returns(api):
    add(make_job("j"), "a")
    with CaptureQueriesContext(connection) as queries:
        api.get("/batch/jobs/j/tasks?$select=id,state")
    page_query = queries.captured_queries[-1]["sql"]
    assert "command_line" not in page_query and "environment_settings" not in page_query


def test_terminate_and_reactivate_follow_the_batch_rules(api):
    job = make_job("j")
    add(job, "t")
    (task,) = claim(node_id="n", limit=1)
    task_runs.finish_task(task=task, attempt=task.attempt, exit_code=2)
    failed = api.get("/batch/jobs/j/tasks/t").json()
    assert failed["executionInfo"]["result"] == "failure"

    assert api.post("/batch/jobs/j/tasks/t/reactivate").status_code == 204
    again = api.get("/batch/jobs/j/tasks/t").json()
    assert again["state"] == "active"
    assert again["executionInfo"] == {"retryCount": 0, "requeueCount": 0}  # exit code and failure cleared

    (task,) = claim(node_id="n", limit=1)
    task_runs.finish_task(task=task, attempt=task.attempt, exit_code=0)
    assert api.post("/batch/jobs/j/tasks/t/reactivate").json()["code"] == "TaskCompletedSuccessfully"
    assert_counts_exact(job.pk)


def test_update_task_sets_its_constraints(api):
    add(make_job("j"), "t")
    response = api.put("/batch/jobs/j/tasks/t", {"constraints": {"maxTaskRetryCount": -1,
                                                                 "retentionTime": "PT1H"}}, format="json")
    assert response.status_code == 200
    assert api.get("/batch/jobs/j/tasks/t").json()["constraints"]["maxTaskRetryCount"] == -1


def test_deleting_a_task_takes_it_out_of_the_counts(api):
    job = make_job("j")
    add(job, "a", "b")
    assert api.delete("/batch/jobs/j/tasks/a").status_code == 200
    assert api.get("/batch/jobs/j/tasks/a").json()["code"] == "TaskNotFound"
    assert api.get("/batch/jobs/j/taskcounts").json()["taskCounts"]["active"] == 1


def test_taskcounts_costs_the_same_queries_for_ten_tasks_or_two_thousand(api, django_assert_num_queries):
    small, large = make_job("small"), make_job("large")
    add(small, *[f"t{i}" for i in range(10)])
    for start in range(0, 2000, 500):
        add(large, *[f"t{i}" for i in range(start, start + 500)])
    # token, the caller's accounts, job, one aggregate over the job's few count rows
    with django_assert_num_queries(4):
        assert api.get("/batch/jobs/small/taskcounts").json()["taskCounts"]["active"] == 10
    with django_assert_num_queries(4):
        assert api.get("/batch/jobs/large/taskcounts").json()["taskCounts"]["active"] == 2000


def test_a_task_list_page_costs_four_queries_at_any_depth(api, django_assert_num_queries):
    job = make_job("j")
    add(job, *[f"t{i}" for i in range(250)])
    with django_assert_num_queries(4):  # token, the caller's accounts, job, one page
        first = api.get("/batch/jobs/j/tasks?maxresults=100").json()
    assert len(first["value"]) == 100
    second = api.get(first["odata.nextLink"]).json()
    with django_assert_num_queries(4):
        third = api.get(second["odata.nextLink"]).json()
    assert [t["id"] for t in third["value"]] == [f"t{i}" for i in range(200, 250)]
    assert "odata.nextLink" not in third


def test_a_logged_in_user_gets_the_browsable_api(client, owner):
    client.force_login(owner)
    make_job("j")
    response = client.get("/batch/jobs", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"<html" in response.content and b"Job List" in response.content


def test_session_authentication_reaches_the_api(client, owner):
    client.force_login(owner)
    assert client.get("/batch/jobs").status_code == 200


def test_jobs_page_needs_login(client, owner):
    assert client.get("/").status_code == 302
    client.force_login(owner)
    make_job("visible")
    assert b"visible" in client.get("/").content


def test_a_new_job_is_active_with_transitions_recorded(api):
    job = make_job("fresh")
    assert job.state == JobState.ACTIVE and job.state_transition_time == job.creation_time


def test_deleting_a_job_ends_its_running_tasks_at_once(api):
    job = make_job("busy")
    add(job, "running", "waiting")
    claim(node_id="n", limit=1)
    assert api.delete("/batch/jobs/busy").status_code == 202
    assert Task.objects.get(key="running").failure_info["code"] == "TaskEnded"
    assert api.post("/batch/jobs/busy/terminate").json()["code"] == "JobBeingDeleted"
    assert api.delete("/batch/jobs/busy").json()["code"] == "JobBeingDeleted"
    assert_counts_exact(job.pk)
