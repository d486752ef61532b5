"""The dashboard's pages, through Django's test client: access, cost, actions, logs, export."""

import re
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import dashboard
from tasks import counts
from tasks.models import CountSample, Task
from tasks.services import runs as task_runs

from .helpers import add, assert_counts_exact, claim, make_big_job, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, owner):
    client.force_login(owner)
    return client


def bounded(sql: str) -> bool:
    """A SELECT reads a bounded number of rows: it has a LIMIT or is an aggregate."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return True
    return bool(re.search(r"\bLIMIT\b|\b(COUNT|SUM|MAX|MIN)\(", sql, re.IGNORECASE))


# --- access -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/jobs/j/", "/jobs/j/tasks/a/", "/jobs/j/tasks.csv", "/jobs/j/durations",
                                  "/jobs/j/tasks/a/logs/stdout.txt?before=10", "/jobs/j/tasks/a/files/stdout.txt"])
def test_every_page_sends_an_anonymous_visitor_to_log_in(client, path):
    job = make_job("j")
    add(job, "a")
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_actions_refuse_anonymous_visitors(client):
    job = make_job("j")
    (task,) = add(job, "a")
    claim(node_id="n", limit=1)
    task_runs.finish_task(task=task, attempt=1, exit_code=1)
    response = client.post("/jobs/j/actions/rerun-failed")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert Task.objects.get(pk=task.pk).state == "completed"


def test_the_login_page_logs_in_and_goes_back(client, owner):
    response = client.post("/accounts/login/", {"username": "owner", "password": "owner-password-1", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


# --- cost ---------------------------------------------------------------------------------


def test_the_job_page_of_a_hundred_thousand_tasks_reads_none_of_them_whole(browser, django_assert_max_num_queries):
    job = make_big_job(100_000)
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(f"/jobs/{job.batch_id}/")
    assert response.status_code == 200
    assert b'id="count-active"' in response.content
    # session, user, the account shown, job, counts, samples, one page of tasks; and why its
    # active tasks wait: the job's pool, its node counts (it has none)
    assert len(queries) == 9, [q["sql"] for q in queries]
    unbounded = [q["sql"] for q in queries if not bounded(q["sql"])]
    assert not unbounded
    assert response.content.count(b'data-pk="') == dashboard.PAGE_SIZE


def test_the_duration_charts_of_a_hundred_thousand_tasks_are_aggregates_and_a_sample(browser):
    job = make_big_job(100_000)
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(f"/jobs/{job.batch_id}/durations")
    assert response.status_code == 200
    # session, user, the account shown, job, counts, range, buckets, sample; and the node
    # timeline: its span, the busiest nodes, whether the runs are few, the runs (or their counts)
    assert len(queries) == 12, [q["sql"] for q in queries]
    assert all(bounded(q["sql"]) for q in queries)
    assert b'id="durations-data"' in response.content and b'"succeeded": [' in response.content
    histogram = dashboard.duration_histogram(job)
    assert sum(histogram.succeeded) + sum(histogram.failed) == counts.read(job.pk).completed
    points = dashboard.run_scatter(job, counts.read(job.pk).completed)
    assert 1000 <= len(points) <= dashboard.SCATTER_POINTS


def test_a_task_table_page_costs_the_same_at_any_depth_and_filter(browser, django_assert_num_queries):
    job = make_big_job(3000, "deep")
    last = Task.objects.filter(job=job).order_by("-pk").values_list("pk", flat=True)[60]
    for query in ("", f"after={last}", "state=completed", "result=failure", "q=t0012", f"state=active&after={last}"):
        with CaptureQueriesContext(connection) as queries:
            response = browser.get(f"/jobs/deep/?{query}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="task-table")
        assert response.status_code == 200
        # session, user, the account shown, job, one page
        assert len(queries) == 5, (query, [q["sql"] for q in queries])
        assert all(bounded(q["sql"]) for q in queries)
        assert b"<html" not in response.content  # the fragment, not the page


def test_the_task_table_filters_and_pages(browser):
    job = make_job("j")
    add(job, *[f"a{i:03d}" for i in range(60)])
    add(job, "b1", "b2")
    first = browser.get("/jobs/j/", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="task-table")
    ids = re.findall(rb'href="/jobs/j/tasks/([^/]+)/"', first.content)
    assert len(ids) == 50 and ids[0] == b"a000"
    after = re.search(rb"after=(\d+)", first.content).group(1).decode()
    second = browser.get(f"/jobs/j/?after={after}", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="task-table")
    assert re.findall(rb'href="/jobs/j/tasks/([^/]+)/"', second.content) == [
        f"a{i:03d}".encode() for i in range(50, 60)] + [b"b1", b"b2"]
    found = browser.get("/jobs/j/?q=B", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="task-table")
    assert re.findall(rb'href="/jobs/j/tasks/([^/]+)/"', found.content) == [b"b1", b"b2"]


def test_the_jobs_list_splits_current_from_completed_and_searches(browser, django_assert_max_num_queries):
    from jobs.services.lifecycle import terminate_job

    for i in range(5):
        add(make_job(f"run-{i}"), "a", "b")
    terminate_job(job=make_job("old-one"))
    with django_assert_max_num_queries(7):  # session, user, the account shown, jobs, their counts, tab counts,
        # and live workers that run tasks unconfined (warned of)
        current = browser.get("/")
    assert b"run-4" in current.content and b"old-one" not in current.content
    completed = browser.get("/?show=completed")
    assert b"old-one" in completed.content and b"run-4" not in completed.content
    searched = browser.get("/?show=all&q=RUN-3")
    assert b"run-3" in searched.content and b"run-2" not in searched.content


# --- actions keep the counts exact ---------------------------------------------------------


def run_and_fail(job, *tasks):
    claimed = claim(node_id="n", limit=len(tasks))
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 1) for t in claimed])


def test_rerunning_failed_tasks_from_the_page(browser):
    job = make_job("j")
    tasks = add(job, "a", "b", "c")
    run_and_fail(job, *tasks)
    response = browser.post("/jobs/j/actions/tasks", {"action": "rerun", "task": [tasks[0].pk]},
                            HTTP_HX_REQUEST="true", HTTP_HX_TARGET="task-table")
    assert response.status_code == 200 and b"1 failed task(s) will run again" in response.content
    assert Task.objects.get(pk=tasks[0].pk).state == "active"
    assert Task.objects.get(pk=tasks[0].pk).retry_count == 0
    assert_counts_exact(job.pk)
    browser.post("/jobs/j/actions/rerun-failed")
    assert set(Task.objects.filter(job=job).values_list("state", flat=True)) == {"active"}
    assert_counts_exact(job.pk)


def test_terminating_and_deleting_selected_tasks(browser):
    job = make_job("j")
    a, b, c = add(job, "a", "b", "c")
    claim(node_id="n", limit=1)
    browser.post("/jobs/j/actions/tasks", {"action": "terminate", "task": [a.pk, b.pk]})
    assert list(Task.objects.filter(pk__in=[a.pk, b.pk]).values_list("failure_info__code", flat=True)) == [
        "TaskEnded", "TaskEnded"]
    browser.post("/jobs/j/actions/tasks", {"action": "delete", "task": [c.pk]})
    assert not Task.objects.filter(pk=c.pk).exists()
    assert_counts_exact(job.pk)
    assert counts.read(job.pk).failed == 2


def test_terminating_the_job_from_the_page(browser):
    job = make_job("j")
    add(job, "a")
    response = browser.post("/jobs/j/actions/terminate", follow=True)
    assert b"terminated" in response.content
    job.refresh_from_db()
    assert job.state == "completed"
    again = browser.post("/jobs/j/actions/terminate", follow=True)
    assert b"already in a completed state" in again.content


# --- logs ------------------------------------------------------------------------------------


def write_log(task, name: str, data: bytes):
    from tasks.files import task_dir

    directory = task_dir(task)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def test_the_task_page_shows_the_tail_and_loads_earlier_chunks(browser):
    job = make_job("j")
    (task,) = add(job, "a")
    lines = b"".join(b"line %06d\n" % i for i in range(20_000))  # 240 KB
    write_log(task, "stdout.txt", lines)
    page = browser.get("/jobs/j/tasks/a/")
    assert b"line 019999" in page.content and b"line 000000" not in page.content
    start = int(re.search(rb"before=(\d+)", page.content).group(1))
    assert lines[start - 1:start] == b"\n"  # the tail starts on a whole line
    earlier = browser.get(f"/jobs/j/tasks/a/logs/stdout.txt?before={start}")
    text = earlier.content.decode()
    assert text.count("line ") > 5000 and f"line {int(lines[start:start + 11][5:11]) - 1:06d}" in text
    assert browser.get("/jobs/j/tasks/a/logs/other.txt?before=1").status_code == 404


def test_a_log_is_downloaded_whole(browser):
    job = make_job("j")
    (task,) = add(job, "a")
    write_log(task, "stderr.txt", b"x" * 300_000)
    response = browser.get("/jobs/j/tasks/a/files/stderr.txt")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == b"x" * 300_000
    assert browser.get("/jobs/j/tasks/a/files/../../../secret").status_code == 404


def test_the_csv_export_streams_every_matching_task(browser):
    job = make_big_job(4500, "csv")
    response = browser.get("/jobs/csv/tasks.csv?result=failure")
    body = b"".join(response.streaming_content).decode()
    lines = body.strip().splitlines()
    assert lines[0].startswith("id,state,result,exit_code")
    assert len(lines) - 1 == Task.objects.filter(job=job, result="failure").count() == 150
    assert all(",failure,1," in line for line in lines[1:])


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_csv_export_is_sent_chunk_by_chunk_not_drained_first(owner):
    """Django drains a synchronous iterator whole before sending under ASGI: the export's
    body must be an asynchronous one there, read a keyset chunk at a time."""
    import asyncio

    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    from jobs.views import CSV_CHUNK

    make_big_job(2 * CSV_CHUNK + 7, "big-csv")
    client = AsyncClient()

    async def export():
        await sync_to_async(client.force_login)(owner)
        response = await client.get("/jobs/big-csv/tasks.csv")
        assert response.is_async
        chunks = [chunk async for chunk in response.streaming_content]
        await sync_to_async(connections.close_all)()  # the ORM's thread keeps none open after the test
        return chunks

    chunks = asyncio.run(export())
    assert len(chunks) == 3  # the header with the first chunk, then two more queries' worth
    lines = b"".join(chunks).decode().strip().splitlines()
    assert len(lines) == 1 + 2 * CSV_CHUNK + 7 and len(set(lines)) == len(lines)


# --- count samples ------------------------------------------------------------------------------


def test_counts_are_sampled_at_most_once_a_second_per_job():
    job = make_job("j")
    counts._sampled.clear()
    add(job, *[f"t{i}" for i in range(20)])
    for _ in range(10):
        claim(node_id="n", limit=1)
    samples = list(CountSample.objects.filter(job=job))
    assert 1 <= len(samples) <= 2  # the work took at most two different seconds
    assert len({s.at for s in samples}) == len(samples)


def test_old_samples_are_thinned_to_one_a_minute_then_one_in_ten():
    job = make_job("j")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=8)
    CountSample.objects.bulk_create(
        CountSample(job=job, at=start + timedelta(seconds=s), active=s, running=0, completed=0, succeeded=0,
                    failed=0) for s in range(0, 8 * 3600, 5))  # every 5 s for 8 hours: 5,760 rows
    while counts.thin_samples():
        pass
    kept = list(CountSample.objects.filter(job=job).order_by("at").values_list("at", flat=True))
    now = timezone.now()
    minute_cutoff = counts._bucket(now - timedelta(minutes=10), "minute")
    ten_minute_cutoff = counts._bucket(now - timedelta(hours=6), "ten_minutes")
    recent = [at for at in kept if at >= minute_cutoff]
    middle = [at for at in kept if ten_minute_cutoff <= at < minute_cutoff]
    old = [at for at in kept if at < ten_minute_cutoff]
    assert len(recent) >= 100  # the last ten minutes keep their resolution
    assert len({at.replace(second=0) for at in middle}) == len(middle)  # one a minute
    assert len({counts._bucket(at, "ten_minutes") for at in old}) == len(old) <= 13  # one in ten minutes
    assert len(kept) < 600

