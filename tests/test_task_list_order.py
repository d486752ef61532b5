"""A job's unfiltered task list is its tasks in creation order: an index walk that stops
after a page, never all of the job's rows gathered and sorted (on SQLite that was a
sort of a million rows when the job's own index was missing)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from .helpers import add, make_job, query_plan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("params", [{}, {"$skiptoken": "3"}, {"$filter": "startswith(id,'t')"}])
def test_task_pages_walk_an_index_in_order(api, params):
    if "$filter" in params and connection.vendor == "postgresql":
        pytest.skip("PostgreSQL weighs a prefix by its statistics (a rare one takes task_key_prefix and sorts "
                    "a few rows); test_list_query_plans pins it on 60,000 analyzed tasks")
    job = make_job("j")
    add(job, *[f"t{i}" for i in range(20)])
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/batch/jobs/j/tasks", {"maxresults": 5, **params})
    assert response.status_code == 200 and len(response.json()["value"]) == 5
    (sql,) = [q["sql"] for q in queries if 'FROM "tasks_task"' in q["sql"]]
    plan = query_plan(sql)
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
