"""Input no database stores alike, no response can carry or no parser can walk: a 400, never a 500
or a hang, and nothing stored that a later read cannot render (issue 10, findings 3, 6 and 7).

Run on SQLite and on PostgreSQL (DATABASE_URL=postgres://…): the two refused different
things before, and must refuse the same things now.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from jobs.models import Job
from tasks.models import Task

from .browser import session_cookie
from .helpers import add, make_job
from .test_api_errors import error, snapshot

pytestmark = pytest.mark.django_db

SURROGATE = "\ud800"


def post_json(api, path: str, text: str):
    """POST a body written by hand: json.dumps refuses what these tests send (NaN, depth)."""
    return api.generic("POST", path, text, content_type="application/json")


def body(data) -> str:
    return json.dumps(data)  # writes a lone surrogate as "\ud800" and NUL as "\u0000", as a client would


@pytest.fixture
def job(api):
    assert api.post("/batch/jobs", {"id": "job", "usesTaskDependencies": True}, format="json").status_code == 201
    return Job.objects.get(key="job")


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


# --- finding 6: stored input that broke reads ------------------------------------------------------


def test_a_lone_surrogate_in_a_kept_as_sent_object_is_refused_and_nothing_is_stored(api, job):
    before = snapshot()
    response = post_json(api, "/batch/jobs/job/tasks", body(
        {"id": "t", "commandLine": "x", "affinityInfo": {"affinityId": SURROGATE}}))
    values = error(response, 400, "InvalidPropertyValue")
    assert values["PropertyName"] == "affinityInfo.affinityId"
    assert "surrogate" in values["Reason"]
    assert snapshot() == before
    assert api.get("/batch/jobs/job/tasks").status_code == 200


def test_a_job_manager_whose_user_name_is_a_lone_surrogate_is_refused(api):
    response = post_json(api, "/batch/jobs", body({"id": "managed", "jobManagerTask": {
        "id": "m", "commandLine": "x", "userIdentity": {"userName": SURROGATE}}}))
    assert error(response, 400, "InvalidPropertyValue")["PropertyName"] == "jobManagerTask.userIdentity.userName"
    assert not Job.objects.filter(key="managed").exists()
    assert api.get("/batch/jobs").status_code == 200


def test_rows_stored_with_lone_surrogates_before_the_fix_still_read(api, job):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL never stored a lone surrogate (jsonb and text refuse one)")
    # As the API stored them before input was checked, into JSON columns (SQLite's text
    # columns refuse them; its JSON is text with the surrogate escaped).
    add(job, "old", affinity_info={"affinityId": SURROGATE}, environment_settings=[{"name": "A", "value": SURROGATE}])
    Job.objects.filter(pk=job.pk).update(job_manager_task={"id": "m", "commandLine": "x",
                                                           "userIdentity": {"userName": SURROGATE}})
    for path in ("/batch/jobs/job/tasks/old", "/batch/jobs/job/tasks", "/batch/jobs/job", "/batch/jobs"):
        response = api.get(path)
        assert response.status_code == 200, path
        assert "\\ud800" in response.content.decode("ascii")  # escaped: still the same JSON string
    task = api.get("/batch/jobs/job/tasks/old").json()
    assert task["affinityInfo"] == {"affinityId": SURROGATE}
    assert task["environmentSettings"] == [{"name": "A", "value": SURROGATE}]


# --- finding 7: nesting, lone surrogates echoed, integers out of range, NUL ----------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_too_deep_is_an_invalid_request_body(api, depth):
    before = snapshot()
    text = '{"id": "deep", "networkConfiguration": ' + "[" * depth + "]" * depth + "}"
    assert "nested" in error(post_json(api, "/batch/jobs", text), 400, "InvalidRequestBody")["Reason"]
    assert snapshot() == before


def test_json_nested_64_deep_is_taken_and_65_is_not(api):
    def nested(levels):  # the body itself is the first level
        return '{"id": "d%d", "networkConfiguration": ' % levels + '{"a": ' * (levels - 2) + "{}" + "}" * (
            levels - 2) + "}"

    assert post_json(api, "/batch/jobs", nested(64)).status_code == 201
    assert api.get("/batch/jobs/d64").status_code == 200
    error(post_json(api, "/batch/jobs", nested(65)), 400, "InvalidRequestBody")


@pytest.mark.parametrize("text", [
    '{"id": "n", "networkConfiguration": {"a": NaN}}',
    '{"id": "n", "networkConfiguration": {"a": -Infinity}}',
    '{"id": "n", "networkConfiguration": {"a": 1e400}}',
    '{"id": "n", "networkConfiguration": {"a": ' + "9" * 5000 + "}}",
])
def test_numbers_json_cannot_carry_are_an_invalid_request_body(api, text):
    before = snapshot()
    error(post_json(api, "/batch/jobs", text), 400, "InvalidRequestBody")
    assert snapshot() == before


def test_a_lone_surrogate_in_an_id_is_refused_without_echoing_it(api):
    response = post_json(api, "/batch/jobs", body({"id": SURROGATE}))
    values = error(response, 400, "InvalidPropertyValue")
    assert values["PropertyName"] == "id"
    response.content.decode("utf-8")  # the answer is UTF-8 all through


def test_a_lone_surrogate_in_a_property_name_is_an_invalid_request_body(api):
    response = post_json(api, "/batch/jobs", body({"id": "j", "networkConfiguration": {"a" + SURROGATE: 1}}))
    assert "\\ud800" in error(response, 400, "InvalidRequestBody")["PropertyName"]


JOB_INTEGERS = [
    ({"maxParallelTasks": 2**63}, "maxParallelTasks"),
    ({"maxParallelTasks": 2**31}, "maxParallelTasks"),
    ({"maxParallelTasks": "9" * 40}, "maxParallelTasks"),
    ({"priority": 10**30}, "priority"),
    ({"priority": "²"}, "priority"),
    ({"constraints": {"maxTaskRetryCount": 10**30}}, "maxTaskRetryCount"),
    ({"constraints": {"maxTaskRetryCount": -(2**31) - 1}}, "maxTaskRetryCount"),
    ({"jobManagerTask": {"id": "m", "commandLine": "x", "requiredSlots": 10**30}}, "requiredSlots"),
]


@pytest.mark.parametrize("fields,prop", JOB_INTEGERS)
def test_a_job_integer_out_of_range_is_an_invalid_property_value(api, fields, prop):
    before = snapshot()
    values = error(post_json(api, "/batch/jobs", body({"id": "big", **fields})), 400, "InvalidPropertyValue")
    assert values["PropertyName"] == prop
    assert snapshot() == before


def test_the_largest_int32_is_taken_on_every_database(api):
    response = api.post("/batch/jobs", {"id": "edge", "maxParallelTasks": 2**31 - 1,
                                        "constraints": {"maxTaskRetryCount": 2**31 - 1}}, format="json")
    assert response.status_code == 201
    assert api.get("/batch/jobs/edge").json()["maxParallelTasks"] == 2**31 - 1


TASK_INTEGERS = [
    ({"requiredSlots": 10**30}, "InvalidPropertyValue"),
    ({"constraints": {"maxTaskRetryCount": 10**30}}, "InvalidPropertyValue"),
    ({"dependsOn": {"taskIdRanges": [{"start": 1, "end": 10**30}]}}, "InvalidPropertyValue"),
    ({"dependsOn": {"taskIdRanges": [{"start": "²", "end": "3"}]}}, "InvalidPropertyValue"),
    ({"dependsOn": {"taskIdRanges": [{"start": "0" * 5000, "end": "3"}]}}, "InvalidPropertyValue"),
    ({"exitConditions": {"exitCodes": [{"code": "²", "exitOptions": {"dependencyAction": "block"}}]}},
     "InvalidPropertyValue"),
    ({"exitConditions": {"exitCodeRanges": [{"start": "1" * 5000, "end": 1}]}}, "InvalidPropertyValue"),
]


@pytest.mark.parametrize("fields,code", TASK_INTEGERS)
def test_a_task_integer_out_of_range_is_refused(api, job, fields, code):
    before = snapshot()
    error(post_json(api, "/batch/jobs/job/tasks", body({"id": "big", "commandLine": "x", **fields})), 400, code)
    assert snapshot() == before


def test_a_numeric_task_id_larger_than_any_column_is_still_a_task(api, job):
    task_id = "9" * 64  # a valid Batch id; as an integer it fits no column and no range names it
    assert api.post("/batch/jobs/job/tasks", {"id": task_id, "commandLine": "x"}, format="json").status_code == 201
    assert api.get(f"/batch/jobs/job/tasks/{task_id}").status_code == 200
    assert Task.objects.get(key=task_id).int_id is None


KEPT_AS_SENT_WITH_NUL = [
    ({"containerSettings": {"imageName": "a\x00b"}}, "containerSettings.imageName"),
    ({"applicationPackageReferences": [{"applicationId": "\x00"}]}, "applicationPackageReferences[0].applicationId"),
    ({"environmentSettings": [{"name": "A", "value": "\x00"}]}, "environmentSettings[0].value"),
    ({"userIdentity": {"autoUser": {"scope": "task\x00"}}}, "userIdentity.autoUser.scope"),
    ({"commandLine": "echo \x00"}, "commandLine"),
]


@pytest.mark.parametrize("duration", ["P171285182016D", "PT99999999999999999999H", "P999999999999D"])
def test_a_duration_longer_than_any_timedelta_is_an_invalid_property_value(api, job, duration):
    response = api.post(f"/batch/jobs/{job}/addtaskcollection", {"value": [
        {"id": "d", "commandLine": "x", "constraints": {"maxWallClockTime": duration}}]}, format="json")
    assert response.status_code == 200
    [result] = response.json()["value"]
    assert result["status"] == "clienterror" and result["error"]["code"] == "InvalidPropertyValue"
    response = api.post(f"/batch/jobs/{job}/tasks", {"id": "d", "commandLine": "x",
                                                      "constraints": {"maxWallClockTime": duration}}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "InvalidPropertyValue")


@pytest.mark.parametrize("fields,prop", KEPT_AS_SENT_WITH_NUL)
def test_a_nul_in_a_task_body_is_an_invalid_property_value(api, job, fields, prop):
    before = snapshot()
    response = post_json(api, "/batch/jobs/job/tasks", body({"id": "t", "commandLine": "x", **fields}))
    values = error(response, 400, "InvalidPropertyValue")
    assert values["PropertyName"] == prop and "NUL" in values["Reason"]
    assert snapshot() == before


def test_a_nul_in_job_metadata_is_an_invalid_property_value(api):
    response = post_json(api, "/batch/jobs", body({"id": "m", "metadata": [{"name": "k", "value": "\x00"}]}))
    assert error(response, 400, "InvalidPropertyValue")["PropertyName"] == "metadata[0].value"


def test_a_nul_in_a_collection_task_is_refused_for_the_whole_body(api, job):
    before = snapshot()
    response = post_json(api, "/batch/jobs/job/addtaskcollection", body({"value": [
        {"id": "fine", "commandLine": "x"}, {"id": "nul", "commandLine": "x", "displayName": "\x00"}]}))
    assert error(response, 400, "InvalidPropertyValue")["PropertyName"] == "value[1].displayName"
    assert snapshot() == before


def test_a_nul_in_an_api_path_is_an_invalid_uri(api, job):
    error(api.get("/batch/jobs/a%00b"), 400, "InvalidUri")
    error(api.get("/batch/jobs/job/tasks/t%00"), 400, "InvalidUri")
    error(api.delete("/batch/jobs/job%00"), 400, "InvalidUri")
    assert Job.objects.filter(pk=job.pk).exists()


def test_a_path_with_a_newline_is_answered_in_batch_shape(api):
    error(api.get("/batch/jobschedules/a%0Ab"), 404, "ResourceNotFound")
    error(api.get("/batch/jobs/a%0Ab"), 404, "JobNotFound")
    error(api.get("/batch/pools/a%0Ab"), 404, "PoolNotFound")


@pytest.mark.parametrize("query,name", [
    ("$filter=id eq '%00'", "$filter"),
    ("$select=id%00", "$select"),
    ("$skiptoken=%00", "$skiptoken"),
    ("api-version=2025-06-01%00", "api-version"),
    ("x%00=1", "x\\u0000"),
])
def test_a_nul_in_an_api_query_is_an_invalid_query_parameter_value(api, job, query, name):
    values = error(api.get(f"/batch/jobs?{query}"), 400, "InvalidQueryParameterValue")
    assert values["QueryParameterName"] == name


def test_a_nul_in_the_account_header_is_an_invalid_header_value(api):
    values = error(api.get("/batch/jobs", HTTP_BATCHSITE_ACCOUNT="a\x00"), 400, "InvalidHeaderValue")
    assert values["HeaderName"] == "batchsite-account"


def test_a_control_character_in_an_echoed_header_is_refused_not_echoed(api):
    response = api.get("/batch/jobs", HTTP_CLIENT_REQUEST_ID="a\nSet-Cookie: x=y",
                       HTTP_RETURN_CLIENT_REQUEST_ID="true")
    assert error(response, 400, "InvalidHeaderValue")["HeaderName"] == "client-request-id"
    assert "client-request-id" not in response


def test_a_skiptoken_beyond_any_primary_key_is_refused(api, job):
    error(api.get(f"/batch/jobs?$skiptoken={2**63}"), 400, "InvalidQueryParameterValue")
    assert api.get(f"/batch/jobs?$skiptoken={2**63 - 1}").json() == {"value": []}


@pytest.mark.parametrize("flt", [
    "not " * 2000 + "id eq 'a'",
    " or ".join(["id eq 'a'"] * 3000),
    " and ".join(["priority gt 1"] * 1200),
    "creationTime gt DateTime'9999-12-31T23:59:59-01:00'",
    "creationTime gt DateTime'0001-01-01T00:00:00+14:00'",
    "priority eq " + "9" * 5000,
])
def test_a_filter_too_large_for_the_database_is_an_invalid_query_parameter_value(api, job, flt):
    error(api.get("/batch/jobs", {"$filter": flt}), 400, "InvalidQueryParameterValue")


def test_a_filter_of_256_comparisons_is_answered(api, job):
    response = api.get("/batch/jobs", {"$filter": " or ".join([f"id eq 'j{i}'" for i in range(255)] + ["id eq 'job'"])})
    assert [j["id"] for j in response.json()["value"]] == ["job"]
    response = api.get("/batch/jobs/job/tasks", {"$filter": " and ".join(["executionInfo/exitCode ne 7"] * 256)})
    assert response.status_code == 200


def test_an_if_modified_since_without_a_zone_is_read_as_gmt(api, job):
    response = api.get("/batch/jobs/job", HTTP_IF_MODIFIED_SINCE="Mon, 01 Jan 2024 00:00:00 -0000")
    assert response.status_code == 200
    later = (timezone.now() + timezone.timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S -0000")
    assert api.get("/batch/jobs/job", HTTP_IF_MODIFIED_SINCE=later).status_code == 304


# --- the dashboard: plain 400s ------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/?q=%00", "/?q=%ED%A0%80%00", "/jobs/job/?q=%00", "/jobs/job/tasks.csv?q=%00", "/jobs/a%00b/",
    "/jobs/job/tasks/t%00/", "/accounts/login/?next=%00",
])
def test_a_nul_on_a_dashboard_page_is_a_plain_400(browser, job, path):
    response = browser.get(path)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")


def test_a_nul_in_the_account_switch_is_a_plain_400(browser):
    response = browser.post("/accounts/switch/", {"account": "\x00"})
    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_a_nul_in_the_login_form_is_a_plain_400(client):
    assert client.post("/accounts/login/", {"username": "a\x00", "password": "x"}).status_code == 400


# --- finding 3: the hang on PostgreSQL, against a live daphne --------------------------------------


def connections_to_this_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_nul_in_the_csv_export_answers_400_at_once_and_holds_no_connection(server, owner):
    job = make_job("j")
    add(job, "t1", "t2")
    cookie = session_cookie(owner, server.url)
    headers = {"Cookie": f"{cookie['name']}={cookie['value']}"}

    def get(path):
        request = urllib.request.Request(server.url + path, headers=headers)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, time.monotonic() - started
        except urllib.error.HTTPError as answer:
            return answer.code, time.monotonic() - started

    assert get("/jobs/j/tasks.csv")[0] == 200  # the server is up and has its connection
    postgres = connection.vendor == "postgresql"
    before = connections_to_this_database() if postgres else None
    answers = [get(path) for path in ["/jobs/j/tasks.csv?q=%00", "/?q=%00", "/batch/jobs/a%00b"] * 7]
    assert {status for status, _ in answers} == {400}
    assert max(seconds for _, seconds in answers) < 5  # each answers, none waits for a timeout
    if postgres:  # before the fix: one more connection for every request, kept for good
        assert connections_to_this_database() <= before
    assert get("/jobs/j/tasks.csv")[0] == 200
