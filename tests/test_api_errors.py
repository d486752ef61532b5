"""Bad input gets Batch's error code and status, and nothing stored changes."""

import pytest

from jobs.models import Job
from tasks import counts
from tasks.models import Task

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(api):
    assert api.post("/batch/jobs", {"id": "Existing"}, format="json").status_code == 201
    api.post("/batch/jobs/existing/tasks", {"id": "Task-1", "commandLine": "/bin/true"}, format="json")
    return Job.objects.get(key="existing")


def snapshot():
    return (list(Job.objects.order_by("pk").values()), list(Task.objects.order_by("pk").values()),
            [counts.read(pk).as_dict() for pk in Job.objects.values_list("pk", flat=True)])


def error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]["lang"] == "en-US" and body["message"]["value"]
    return {v["key"]: v["value"] for v in body.get("values", [])}


JOB_CASES = [
    ({"id": "x" * 65}, 400, "InvalidPropertyValue", "id"),
    ({"id": "bad id!"}, 400, "InvalidPropertyValue", "id"),
    ({"id": "EXISTING"}, 409, "JobExists", None),
    ({"displayName": "no id"}, 400, "MissingRequiredProperty", "id"),
    ({"id": "j", "priority": "high"}, 400, "InvalidPropertyValue", "priority"),
    ({"id": "j", "priority": 1001}, 400, "InvalidPropertyValue", "priority"),
    ({"id": "j", "priority": True}, 400, "InvalidPropertyValue", "priority"),
    ({"id": "j", "onAllTasksComplete": "explode"}, 400, "InvalidPropertyValue", "onAllTasksComplete"),
    ({"id": "j", "constraints": {"maxTaskRetryCount": -2}}, 400, "InvalidPropertyValue", "maxTaskRetryCount"),
    ({"id": "j", "constraints": {"maxWallClockTime": "an hour"}}, 400, "InvalidPropertyValue", "maxWallClockTime"),
    ({"id": "j", "commonEnvironmentSettings": [{"value": "no name"}]}, 400, "MissingRequiredProperty", "name"),
    ({"id": "j", "maxTaskRetryCount": 3}, 400, "InvalidRequestBody", "maxTaskRetryCount"),
]


@pytest.mark.parametrize("body,status,code,prop", JOB_CASES)
def test_a_bad_job_is_refused_with_the_batch_error(api, job, body, status, code, prop):
    before = snapshot()
    values = error(api.post("/batch/jobs", body, format="json"), status, code)
    if prop:
        assert values["PropertyName"] == prop
    assert snapshot() == before


TASK_CASES = [
    ({"id": "t" * 65, "commandLine": "x"}, 400, "InvalidPropertyValue"),
    ({"id": "a.b", "commandLine": "x"}, 400, "InvalidPropertyValue"),
    ({"id": "TASK-1", "commandLine": "x"}, 409, "TaskExists"),
    ({"id": "t2"}, 400, "MissingRequiredProperty"),
    ({"id": "t2", "commandLine": ["not", "a", "string"]}, 400, "InvalidPropertyValue"),
    ({"id": "t2", "commandLine": "x", "constraints": {"maxTaskRetryCount": "often"}}, 400, "InvalidPropertyValue"),
    ({"id": "t2", "commandLine": "x", "requiredSlots": 0}, 400, "InvalidPropertyValue"),
]


@pytest.mark.parametrize("body,status,code", TASK_CASES)
def test_a_bad_task_is_refused_with_the_batch_error(api, job, body, status, code):
    before = snapshot()
    error(api.post("/batch/jobs/existing/tasks", body, format="json"), status, code)
    assert snapshot() == before


def test_a_task_for_a_missing_job_is_job_not_found(api, job):
    before = snapshot()
    values = error(api.post("/batch/jobs/nope/tasks", {"id": "t", "commandLine": "x"}, format="json"),
                   404, "JobNotFound")
    assert values["JobId"] == "nope"
    assert snapshot() == before


def test_a_collection_of_101_tasks_is_too_large_and_adds_nothing(api, job):
    before = snapshot()
    tasks = [{"id": f"t{i}", "commandLine": "/bin/true"} for i in range(101)]
    error(api.post("/batch/jobs/existing/addtaskcollection", {"value": tasks}, format="json"),
          413, "RequestBodyTooLarge")
    assert snapshot() == before


def test_a_collection_over_one_megabyte_is_too_large(api, job):
    tasks = [{"id": f"t{i}", "commandLine": "echo " + "x" * 8000, "displayName": "y" * 1000,
              "environmentSettings": [{"name": "PAD", "value": "z" * 2000}]} for i in range(100)]
    values = error(api.post("/batch/jobs/existing/addtaskcollection", {"value": tasks}, format="json"),
                   413, "RequestBodyTooLarge")
    assert "bytes" in values["Reason"]


def test_a_collection_reports_each_bad_task_and_adds_the_good_ones(api, job):
    response = api.post("/batch/jobs/existing/addtaskcollection", {"value": [
        {"id": "good-1", "commandLine": "/bin/true"},
        {"id": "task-1", "commandLine": "/bin/true"},  # exists, in another case
        {"id": "bad id", "commandLine": "/bin/true"},
        {"id": "good-2", "commandLine": "/bin/true"},
        {"id": "GOOD-2", "commandLine": "/bin/true"},  # duplicate within the collection
    ]}, format="json")
    assert response.status_code == 200
    results = response.json()["value"]
    assert [r["status"] for r in results] == ["success", "clienterror", "clienterror", "success", "clienterror"]
    assert [r.get("error", {}).get("code") for r in results] == [
        None, "TaskExists", "InvalidPropertyValue", None, "TaskExists"]
    assert counts.read(job.pk).active == 3


@pytest.mark.parametrize("query", [
    "$filter=state eq",
    "$filter=state eq 'sleeping'",
    "$filter=colour eq 'red'",
    "$filter=state gt 'active'",
    "$filter=startswith(state,'a')",
    "$filter=(state eq 'active'",
    "maxresults=1001",
    "maxresults=zero",
    "$select=id,nothing",
])
def test_bad_query_parameters_are_invalid_query_parameter_value(api, job, query):
    error(api.get(f"/batch/jobs/existing/tasks?{query}"), 400, "InvalidQueryParameterValue")


def test_a_body_that_is_not_json_is_invalid_request_body(api, job):
    before = snapshot()
    response = api.generic("POST", "/batch/jobs", "{not json", content_type="application/json")
    error(response, 400, "InvalidRequestBody")
    assert snapshot() == before


def test_unknown_paths_are_resource_not_found(api):
    error(api.get("/batch/pools/nowhere/certificates"), 404, "ResourceNotFound")


def test_terminating_a_completed_task_is_task_completed(api, job):
    assert api.post("/batch/jobs/existing/tasks/task-1/terminate").status_code == 204
    error(api.post("/batch/jobs/existing/tasks/task-1/terminate"), 409, "TaskCompleted")


def test_reactivating_an_active_task_is_refused(api, job):
    before = snapshot()
    error(api.post("/batch/jobs/existing/tasks/task-1/reactivate"), 409, "TaskNotCompleted")
    assert snapshot() == before


def test_adding_to_a_completed_job_is_job_completed(api, job):
    assert api.post("/batch/jobs/existing/terminate").status_code == 202
    error(api.post("/batch/jobs/existing/tasks", {"id": "late", "commandLine": "x"}, format="json"),
          409, "JobCompleted")


def test_anonymous_requests_get_401_in_the_batch_shape(anonymous, job):
    error(anonymous.get("/batch/jobs"), 401, "AuthenticationFailed")
    error(anonymous.get("/batch/jobs/existing/taskcounts"), 401, "AuthenticationFailed")
    error(anonymous.get("/batch/anything/else"), 401, "AuthenticationFailed")
    error(anonymous.post("/batch/jobs", {"id": "sneaky"}, format="json"), 401, "AuthenticationFailed")
    assert not Job.objects.filter(key="sneaky").exists()


def test_a_wrong_token_gets_401(anonymous, job):
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    error(anonymous.get("/batch/jobs"), 401, "AuthenticationFailed")


def test_a_bug_is_answered_in_batch_shape_as_a_500_internal_error(api, monkeypatch, caplog):
    """Clients retry a 500 InternalError; Django's HTML page is nothing they can read."""
    from tasks import counts

    assert api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json").status_code == 201

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(counts, "read", broken)  # fault injection: any unexpected exception in a view
    response = api.get("/batch/jobs/j/taskcounts")
    assert response.status_code == 500
    assert response.json()["code"] == "InternalError" and response.json()["message"]["lang"] == "en-US"
    assert "a bug" in caplog.text  # logged with its traceback, as Django would
