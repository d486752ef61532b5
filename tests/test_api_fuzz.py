"""A bounded fuzz of the Batch API: whatever a client sends, no 5xx, every error in Batch's shape,
and whatever is stored reads back.

Bodies are built from the real property names of Add Job, Add Task, Add Task
Collection, Update/Replace Job and Update Task, each property either plausible or
drawn from values that broke Batchsite before (issue 10): NUL and lone surrogates,
nesting far past any limit, integers past every column, NaN, wrong types. Paths
and query parameters ($filter, $select, $expand, maxresults, $skiptoken,
api-version) and a few headers get the same strings, percent-encoded as a client
would send them. Derandomized and bounded: the same examples on every run, well
under a minute on SQLite or PostgreSQL.
"""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.serializers import JobAddSerializer, JobConstraintsSerializer, JobUpdateSerializer
from tasks.serializers import (
    JobManagerTaskSerializer,
    TaskAddSerializer,
    TaskConstraintsSerializer,
    TaskUpdateSerializer,
)

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])

NASTY_STRINGS = ["\x00", "a\x00b", "\ud800", "\udfff", "x\udc80y", "\ud83d", "😀", "²", "١٢", "", " ", "'", "''",
                 "%00", "%ED%A0%80", "\u202e", "\r\n", "x" * 5000, "NaN", "-1", "1e400", "9" * 40, "../..", "a/b",
                 "PT1H", "P10675199DT2H48M5.4775807S", "-PT1S", "DateTime'9999-12-31T23:59:59-01:00'"]
NASTY_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**30)]

text = st.sampled_from(NASTY_STRINGS) | st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=()), max_size=12)
integers = st.sampled_from(NASTY_INTS) | st.integers(-(2**70), 2**70)


class Deep:
    """A list nested `levels` deep, written into the body text (json.dumps would recurse)."""

    def __init__(self, levels: int):
        self.levels = levels


deep = st.sampled_from([63, 64, 65, 1_000, 100_000]).map(Deep)
scalars = text | integers | st.booleans() | st.none() | st.floats() | deep
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                      max_leaves=8)

ids = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
PLAUSIBLE = {
    "id": ids,
    "commandLine": st.just("/bin/true"),
    "displayName": st.just("a name"),
    "priority": st.integers(-1000, 1000),
    "maxParallelTasks": st.just(4),
    "requiredSlots": st.just(1),
    "maxTaskRetryCount": st.just(2),
    "maxWallClockTime": st.just("PT1H"),
    "retentionTime": st.just("P1D"),
    "environmentSettings": st.just([{"name": "A", "value": "b"}]),
    "commonEnvironmentSettings": st.just([{"name": "A", "value": "b"}]),
    "metadata": st.just([{"name": "k", "value": "v"}]),
    "dependsOn": st.just({"taskIds": ["t0"], "taskIdRanges": [{"start": 1, "end": 3}]}),
    "poolInfo": st.just({"poolId": "local"}),
}


def property_values(name: str, nested: dict | None = None):
    """A value for the property `name`: plausible, nasty, or (for an object) built from its own members."""
    options = [values]
    if name in PLAUSIBLE:
        options.append(PLAUSIBLE[name])
    if nested and name in nested:
        options.append(body_of(nested[name]))
    return st.one_of(*options)


def body_of(serializer, *, required: dict | None = None, nested: dict | None = None):
    """A body with the serializer's real property names, each present or not."""
    names = [name for name, field in serializer().fields.items() if field is not None]
    required = required or {}
    return st.fixed_dictionaries(
        {name: strategy for name, strategy in required.items()},
        optional={name: property_values(name, nested) for name in names if name not in required},
    )


JOB_NESTED = {"constraints": JobConstraintsSerializer,
              "jobManagerTask": JobManagerTaskSerializer}
TASK_NESTED = {"constraints": TaskConstraintsSerializer}

job_bodies = body_of(JobAddSerializer, required={"id": ids}, nested=JOB_NESTED)
job_updates = body_of(JobUpdateSerializer, nested={"constraints": JobConstraintsSerializer})
task_bodies = body_of(TaskAddSerializer, required={"id": ids, "commandLine": st.just("/bin/true")},
                      nested=TASK_NESTED)
task_updates = body_of(TaskUpdateSerializer, nested=TASK_NESTED)
collections = st.fixed_dictionaries({"value": st.lists(task_bodies | values, max_size=3)}) | values


def written(data) -> str:
    """The body as a client's JSON text: NUL and surrogates as \\u escapes, NaN as NaN, Deep as deep."""
    deep_ones = []

    def mark(value):
        deep_ones.append(value.levels)
        return f"__deep_{len(deep_ones) - 1}__"

    result = json.dumps(data, default=mark)
    for i, levels in enumerate(deep_ones):
        result = result.replace(f'"__deep_{i}__"', "[" * levels + "]" * levels)
    return result


def encoded(value: str) -> str:
    """A path segment or query value percent-encoded as UTF-8; a lone surrogate as the bytes it would be."""
    return quote(value, safe="", errors="surrogatepass")


def assert_answered_in_batch_shape(response):
    assert response.status_code < 500, (response.status_code, response.content[:800])
    content = response.content.decode("utf-8")  # every answer is UTF-8
    if response.status_code >= 400:
        error = json.loads(content)
        assert isinstance(error["code"], str) and error["code"], error
        assert error["message"]["lang"] == "en-US" and isinstance(error["message"]["value"], str), error
        assert error["odata.metadata"].endswith("errors/@Element"), error
        for item in error.get("values", []):
            assert set(item) == {"key", "value"} and isinstance(item["value"], str), error
    return response


def reads_back(api, response, *lists):
    """A created resource and the lists that hold it still read (nothing stored breaks a read)."""
    if response is not None and response.status_code == 201:
        location = response["Location"].split("testserver", 1)[1]
        assert assert_answered_in_batch_shape(api.get(location)).status_code == 200
    for path in lists:
        assert assert_answered_in_batch_shape(api.get(path)).status_code == 200


@pytest.fixture
def fuzz_job(api):
    """The job tasks are added to, with dependencies and exit options allowed, and one task in it."""
    assert api.post("/batch/jobs", {"id": "fuzz", "usesTaskDependencies": True,
                                    "onTaskFailure": "performexitoptionsjobaction"}, format="json").status_code == 201
    assert api.post("/batch/jobs/fuzz/tasks", {"id": "t0", "commandLine": "/bin/true"},
                    format="json").status_code == 201
    return "fuzz"


def send(api, method: str, path: str, data) -> object:
    return assert_answered_in_batch_shape(api.generic(method, path, written(data), content_type="application/json"))


@FUZZ
@given(data=job_bodies)
def test_add_job_never_fails_on_its_input(api, data):
    response = send(api, "POST", "/batch/jobs", data)
    reads_back(api, response, "/batch/jobs")


@FUZZ
@given(data=task_bodies)
def test_add_task_never_fails_on_its_input(api, fuzz_job, data):
    response = send(api, "POST", "/batch/jobs/fuzz/tasks", data)
    reads_back(api, response, "/batch/jobs/fuzz/tasks")


@FUZZ
@given(data=collections)
def test_add_task_collection_never_fails_on_its_input(api, fuzz_job, data):
    response = send(api, "POST", "/batch/jobs/fuzz/addtaskcollection", data)
    reads_back(api, response, "/batch/jobs/fuzz/tasks")


@FUZZ
@given(data=job_updates, method=st.sampled_from(["PATCH", "PUT"]))
def test_update_job_never_fails_on_its_input(api, fuzz_job, data, method):
    send(api, method, "/batch/jobs/fuzz", data)
    reads_back(api, None, "/batch/jobs/fuzz", "/batch/jobs")


@FUZZ
@given(data=task_updates)
def test_update_task_never_fails_on_its_input(api, fuzz_job, data):
    send(api, "PUT", "/batch/jobs/fuzz/tasks/t0", data)
    reads_back(api, None, "/batch/jobs/fuzz/tasks/t0", "/batch/jobs/fuzz/tasks")


ROUTES = ["/batch/jobs", "/batch/jobs/{job}", "/batch/jobs/{job}/tasks", "/batch/jobs/{job}/tasks/{task}",
          "/batch/jobs/{job}/taskcounts", "/batch/jobs/{job}/jobpreparationandreleasetaskstatus",
          "/batch/jobs/{job}/tasks/{task}/files", "/batch/jobs/{job}/tasks/{task}/files/{task}",
          "/batch/{job}"]
QUERY = ["$filter", "$select", "$expand", "maxresults", "$skiptoken", "api-version", "recursive", "timeout"]
FILTERS = st.sampled_from(["id eq '{}'", "state eq '{}'", "startswith(id,'{}')", "priority gt {}",
                           "creationTime gt DateTime'{}'", "{}", "executionInfo/exitCode eq {}"])
HEADERS = ["HTTP_BATCHSITE_ACCOUNT", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
           "HTTP_IF_UNMODIFIED_SINCE", "HTTP_OCP_RANGE", "HTTP_CLIENT_REQUEST_ID", "HTTP_OCP_DATE"]
segments = text | st.sampled_from(["fuzz", "t0", "FUZZ"])
query_values = text | integers.map(str) | st.tuples(FILTERS, text | integers.map(str)).map(lambda f: f[0].format(f[1]))
latin1 = text.map(lambda s: s.encode("latin-1", "ignore").decode("latin-1"))  # all a header can carry


@FUZZ
@given(route=st.sampled_from(ROUTES), job=segments, task=segments,
       query=st.dictionaries(st.sampled_from(QUERY) | text, query_values, max_size=4),
       headers=st.dictionaries(st.sampled_from(HEADERS), latin1, max_size=2))
def test_any_path_query_and_header_is_answered_in_batch_shape(api, fuzz_job, route, job, task, query, headers):
    path = route.format(job=encoded(job), task=encoded(task))
    if query:
        path += "?" + "&".join(f"{encoded(k)}={encoded(v)}" for k, v in query.items())
    assert_answered_in_batch_shape(api.get(path, **headers))


ACTIONS = [("POST", "/batch/jobs/{job}/terminate"), ("POST", "/batch/jobs/{job}/disable"),
           ("POST", "/batch/jobs/{job}/enable"), ("POST", "/batch/jobs/{job}/tasks/{task}/terminate"),
           ("POST", "/batch/jobs/{job}/tasks/{task}/reactivate"), ("DELETE", "/batch/jobs/{job}/tasks/{task}"),
           ("DELETE", "/batch/jobs/{job}"), ("POST", "/batch/{job}")]
action_bodies = st.fixed_dictionaries({}, optional={"terminateReason": values, "disableTasks": values}) | values


@FUZZ
@given(action=st.sampled_from(ACTIONS), job=segments, task=segments, data=action_bodies,
       headers=st.dictionaries(st.sampled_from(HEADERS), latin1, max_size=2))
def test_any_action_is_answered_in_batch_shape(api, fuzz_job, action, job, task, data, headers):
    method, route = action
    path = route.format(job=encoded(job), task=encoded(task))
    assert_answered_in_batch_shape(api.generic(method, path, written(data), content_type="application/json",
                                               **headers))
    reads_back(api, None, "/batch/jobs", "/batch/jobs/fuzz/tasks" if api.get("/batch/jobs/fuzz").status_code == 200
               else "/batch/jobs")


# --- the dashboard's routes (jobs/urls.py), as a logged-in browser reaches them ----------------------

PAGES = ["/", "/jobs/{job}/", "/jobs/{job}/durations", "/jobs/{job}/tasks.csv", "/jobs/{job}/tasks/{task}/",
         "/jobs/{job}/tasks/{task}/logs/{task}", "/jobs/{job}/tasks/{task}/logs/stdout.txt",
         "/jobs/{job}/tasks/{task}/files/{task}", "/accounts/login/"]
PAGE_QUERY = ["q", "state", "result", "show", "before", "after", "next"]
FORMS = [("/jobs/{job}/actions/tasks", ["action", "task", "query", "next"]),
         ("/jobs/{job}/actions/{task}", ["x"]), ("/accounts/switch/", ["account"]),
         ("/accounts/login/", ["username", "password"])]


def assert_page_answered(response):
    assert response.status_code < 500, (response.status_code, response.content[:800])
    if response.status_code == 400:
        assert response["Content-Type"].startswith("text/plain")
    b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def browser(owner, fuzz_job):
    from django.test import Client

    client = Client()
    client.force_login(owner)
    return client


@FUZZ
@given(page=st.sampled_from(PAGES), job=segments, task=segments,
       query=st.dictionaries(st.sampled_from(PAGE_QUERY) | text, query_values, max_size=3),
       htmx=st.booleans())
def test_any_dashboard_page_is_answered_without_a_server_error(browser, page, job, task, query, htmx):
    path = page.format(job=encoded(job), task=encoded(task))
    if query:
        path += "?" + "&".join(f"{encoded(k)}={encoded(v)}" for k, v in query.items())
    headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "task-table"} if htmx else {}
    assert_page_answered(browser.get(path, **headers))


@FUZZ
@given(form=st.sampled_from(FORMS), job=segments, task=segments, fields=st.data())
def test_any_dashboard_form_is_answered_without_a_server_error(browser, form, job, task, fields):
    route, names = form
    data = fields.draw(st.dictionaries(st.sampled_from(names) | text, st.lists(query_values, max_size=2) | query_values,
                                       max_size=4))
    path = route.format(job=encoded(job), task=encoded(task))
    pairs = [(k, v) for k, vs in data.items() for v in (vs if isinstance(vs, list) else [vs])]
    form = "&".join(f"{encoded(k)}={encoded(v)}" for k, v in pairs)  # as a browser encodes a form
    assert_page_answered(browser.post(path, form, content_type="application/x-www-form-urlencoded"))
