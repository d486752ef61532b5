"""Each supported task-list filter is served by an index: on PostgreSQL (with planner
statistics) the first page of a filter on state, result, exit code or id prefix is an
index scan that reads about a page of rows, never a scan of the task table.

For a common value the planner may walk the primary key and filter (it finds a
page within a few thousand rows); for a rare one it takes the filter's own index.
Either way EXPLAIN ANALYZE shows how many rows were read, and that is what we pin.
"""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from .helpers import claim, make_big_job, make_job

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def big_job():
    if connection.vendor != "postgresql":
        pytest.skip("query plans with statistics are PostgreSQL's; run with DATABASE_URL=postgres://…")
    job = make_big_job(60_000, "plans", prefixes=("render-", "encode-"))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tasks_task")
    return job


@pytest.mark.parametrize("expression, found, index", [
    ("state eq 'completed'", 1000, None),
    ("state eq 'active'", 1000, None),
    ("state eq 'running'", 0, None),
    ("executionInfo/result eq 'failure'", 1000, None),
    ("executionInfo/result eq 'success' and executionInfo/exitCode eq 0", 1000, None),
    ("executionInfo/exitCode eq 1", 1000, None),
    ("executionInfo/exitCode eq 77", 0, "task_job_exit_code"),
    ("startswith(id,'render')", 1000, None),
    ("startswith(id,'nothing')", 0, "task_key_prefix"),
])
def test_the_first_page_of_a_filter_reads_about_a_page(api, big_job, expression, found, index):
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/batch/jobs/plans/tasks", {"$filter": expression, "$select": "id,state"})
    assert response.status_code == 200
    assert len(response.json()["value"]) == found
    (sql,) = [q["sql"] for q in queries if 'FROM "tasks_task"' in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN ANALYZE " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on tasks_task" not in plan, plan
    removed = sum(int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan))
    assert removed < 10_000, plan  # of 60,000: a few pages' worth at most
    if index:
        assert index in plan, plan


def test_claiming_reads_runnable_tasks_only_whatever_the_statistics_say(big_job):
    """A new job's tasks are not in the planner's statistics (autovacuum analyzes after
    10% of the table changed): the claim must still probe the runnable-task index, not
    walk the primary key or hash every active task of every job."""
    from tasks.services import adding as task_adding
    from tasks.services import runs as task_runs

    job = make_job("fresh", priority=10, uses_task_dependencies=True)
    task_adding.add_tasks(job=job, specs=[{"batch_id": f"merge-{i}", "command_line": "x",
                                        "depends_on": {"taskIdRanges": [{"start": 1, "end": 10}]}}
                                       for i in range(5000)])
    task_adding.add_tasks(job=job, specs=[{"batch_id": str(i), "command_line": "x"} for i in range(1, 11)])
    with CaptureQueriesContext(connection) as queries:
        claimed = claim(node_id="n", limit=4)
    assert [t.batch_id for t in claimed] == ["1", "2", "3", "4"]
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "t.waiting" in q["sql"]]
    assert len(reads) == 2, reads
    for sql in reads:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN ANALYZE " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "task_runnable_in_job" in plan, plan
        assert "Seq Scan on tasks_task" not in plan, plan
        assert "Rows Removed by Filter" not in plan, plan

    # Each parent's completion credits the group, and the last releases its tasks:
    # neither may plan a scan of the task table.
    with CaptureQueriesContext(connection) as queries:
        task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0) for t in claimed])
    writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE \"tasks_task\"")]
    assert writes
    for sql in writes:
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "Seq Scan on tasks_task" not in plan, plan
