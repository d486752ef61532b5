"""$filter on task and job lists: a table of expressions, valid and invalid, with the
tasks they select or the error they give, as the Batch docs on efficient list
queries describe the syntax."""

from datetime import UTC, datetime, timedelta

import pytest

from tasks.models import Task
from tasks.services import actions as task_actions
from tasks.services import runs as task_runs

from .helpers import add, claim, make_job

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def tasks(api):
    job = make_job("j", max_task_retry_count=1)
    add(job, "render-1", "render-2", "Render-3", "encode-1", "encode-2", "merge")
    claimed = {t.batch_id: t for t in claim(node_id="node-a", limit=5)}  # not merge
    task_runs.finish_task(task=claimed["render-1"], attempt=1, exit_code=0)
    task_runs.finish_task(task=claimed["render-2"], attempt=1, exit_code=3)  # retried: active again
    task_runs.finish_task(task=claimed["encode-2"], attempt=1, exit_code=137)
    claim(node_id="node-b", limit=2)  # the retries of render-2 and encode-2
    task_runs.finish_task(task=Task.objects.get(key="render-2"), attempt=2, exit_code=3)
    task_runs.finish_task(task=Task.objects.get(key="encode-2"), attempt=2, exit_code=0)
    task_actions.terminate_task(task=claimed["Render-3"])
    # encode-1 stays running, merge active; creation times a day apart, oldest first
    for i, key in enumerate(["render-1", "render-2", "render-3", "encode-1", "encode-2", "merge"]):
        Task.objects.filter(key=key).update(creation_time=T0 + timedelta(days=i))


def ids(api, expression: str) -> set[str] | tuple[int, str]:
    response = api.get("/batch/jobs/j/tasks", {"$filter": expression})
    if response.status_code != 200:
        body = response.json()
        return response.status_code, body["code"] + ": " + " ".join(v["value"] for v in body.get("values", []))
    return {t["id"] for t in response.json()["value"]}


ALL = {"render-1", "render-2", "Render-3", "encode-1", "encode-2", "merge"}

VALID = [
    ("state eq 'completed'", {"render-1", "render-2", "Render-3", "encode-2"}),
    ("state eq 'COMPLETED'", {"render-1", "render-2", "Render-3", "encode-2"}),  # values ignore case
    ("state ne 'completed'", {"encode-1", "merge"}),
    ("state eq 'running'", {"encode-1"}),
    ("state eq 'active' or state eq 'running'", {"encode-1", "merge"}),
    ("not (state eq 'completed')", {"encode-1", "merge"}),
    ("not state eq 'active'", ALL - {"merge"}),
    ("executionInfo/result eq 'failure'", {"render-2", "Render-3"}),
    ("executionInfo/result eq 'success'", {"render-1", "encode-2"}),
    ("executionInfo/exitCode eq 3", {"render-2"}),
    ("executionInfo/exitCode ne 0", {"render-2", "Render-3", "encode-1", "merge"}),  # no exit code is "not 0"
    ("executionInfo/exitCode gt 0", {"render-2"}),
    ("executionInfo/exitCode ge 0 and executionInfo/exitCode le 3", {"render-1", "render-2", "encode-2"}),
    ("executionInfo/exitCode lt 1", {"render-1", "encode-2"}),
    ("executionInfo/retryCount eq 1", {"render-2", "encode-2"}),
    ("startswith(id,'render')", {"render-1", "render-2", "Render-3"}),
    ("startswith(id, 'RENDER')", {"render-1", "render-2", "Render-3"}),
    ("id eq 'render-3'", {"Render-3"}),
    ("startswith(id,'encode') and state eq 'completed'", {"encode-2"}),
    ("(startswith(id,'encode') or id eq 'merge') and not (state eq 'running')", {"encode-2", "merge"}),
    ("creationTime lt DateTime'2026-05-03T00:00:00Z'", {"render-1", "render-2"}),
    ("creationTime ge DateTime'2026-05-05T12:00:00.000Z'", {"encode-2", "merge"}),
    ("creationTime gt DateTime'Sat, 02 May 2026 12:00:00 GMT'", {"Render-3", "encode-1", "encode-2", "merge"}),
    ("creationTime eq DateTime'2026-05-01T12:00:00+00:00'", {"render-1"}),
    ("stateTransitionTime gt DateTime'2020-01-01T00:00:00Z'", ALL),
    ("state eq 'completed' and executionInfo/result eq 'failure' and executionInfo/exitCode eq 3", {"render-2"}),
    ("id eq 'it''s'", set()),  # '' escapes a quote
]

INVALID = [
    ("colour eq 'red'", "colour"),                            # unknown property, named
    ("State eq 'active'", "State"),                            # property names are case-sensitive
    ("state eq 'sleeping'", "sleeping"),                       # not a state
    ("state gt 'active'", "eq or ne"),                         # enums compare with eq/ne only
    ("state has 'active'", "has"),                             # unknown operator, named
    ("state eq", "not well formed"),
    ("(state eq 'active'", "not well formed"),
    ("executionInfo/exitCode eq 'zero'", "int"),
    ("creationTime lt DateTime'yesterday'", "yesterday"),
    ("creationTime lt '2026-05-01'", "datetime"),
    ("startswith(state,'a')", "startswith"),
    ("endswith(id,'1')", "endswith"),
    ("state eq 'active' xor state eq 'running'", "xor"),
]


@pytest.mark.parametrize("expression, expected", VALID)
def test_valid_filters_select_the_right_tasks(api, tasks, expression, expected):
    assert ids(api, expression) == expected


@pytest.mark.parametrize("expression, named", INVALID)
def test_invalid_filters_are_400_naming_what_is_wrong(api, tasks, expression, named):
    status, error = ids(api, expression)
    assert status == 400
    assert error.startswith("InvalidQueryParameterValue: $filter")
    assert named in error, error


def test_the_table_has_at_least_thirty_expressions():
    assert len(VALID) + len(INVALID) >= 30


@pytest.mark.parametrize("expression, expected", [
    ("usesTaskDependencies eq true", {"deps"}),
    ("usesTaskDependencies eq false and priority ge 0", {"plain"}),
    ("priority lt 0", {"low"}),
    ("onAllTasksComplete eq 'noaction' and state eq 'active'", {"deps", "plain", "low"}),
])
def test_job_lists_filter_by_booleans_and_numbers(api, expression, expected):
    make_job("deps", uses_task_dependencies=True)
    make_job("plain", priority=5)
    make_job("low", priority=-5)
    response = api.get("/batch/jobs", {"$filter": expression})
    assert response.status_code == 200, response.content
    assert {j["id"] for j in response.json()["value"]} == expected
