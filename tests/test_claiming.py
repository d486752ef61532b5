"""Claiming: priority order, creation order, and never the same task twice."""

import threading

import pytest
from django.db import connection, transaction

from batchapi.errors import BatchError
from jobs.models import Job, JobState
from jobs.services.lifecycle import terminate_job
from tasks.models import Task
from tasks.services import adding as task_adding
from tasks.services import sweeps

from .helpers import add, assert_counts_exact, claim, make_job


@pytest.mark.django_db
def test_higher_priority_jobs_first_then_creation_order():
    low, high, also_high = make_job("low", priority=-5), make_job("high", priority=500), make_job("high2", priority=500)
    add(low, "l1")
    add(also_high, "h2-1")
    add(high, "h1", "h2", "h3")
    order = []
    while claimed := claim(node_id="n", limit=1):
        order.append(claimed[0].batch_id)
    assert order == ["h1", "h2", "h3", "h2-1", "l1"]


@pytest.mark.django_db
def test_max_parallel_tasks_caps_what_one_job_runs():
    job = make_job("capped", max_parallel_tasks=2)
    add(job, *[f"t{i}" for i in range(5)])
    assert len(claim(node_id="n", limit=5)) == 2
    assert claim(node_id="n", limit=5) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgres_a_claimer_skips_rows_another_claimer_holds():
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED is PostgreSQL's; SQLite serialises claimers with IMMEDIATE transactions")
    job = make_job("contended")
    add(job, "first", "second")
    first = Task.objects.get(key="first")
    locked, release = threading.Event(), threading.Event()

    def hold_first():
        with transaction.atomic():
            Task.objects.select_for_update().get(pk=first.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_first)
    holder.start()
    try:
        assert locked.wait(10)
        # Without SKIP LOCKED this would block on "first" until the holder lets go.
        claimed = claim(node_id="n", limit=2)
        assert [t.batch_id for t in claimed] == ["second"]
    finally:
        release.set()
        holder.join()


@pytest.mark.django_db
def test_a_run_left_in_an_ended_job_is_swept_up():
    job = make_job("ended")
    add(job, "stray")
    claim(node_id="n", limit=1)
    # As if the claim had committed just after Terminate Job ended the running tasks:
    Job.objects.filter(pk=job.pk).update(state=JobState.COMPLETED)
    assert sweeps.end_runs_of_ended_jobs() == 1
    stray = Task.objects.get(key="stray")
    assert (stray.state, stray.failure_info["code"]) == ("completed", "TaskEnded")
    assert_counts_exact(job.pk)
    assert sweeps.end_runs_of_ended_jobs() == 0


@pytest.mark.django_db
def test_nothing_is_added_to_a_job_that_ended_after_it_was_read():
    job = make_job("raced")
    stale = Job.objects.get(pk=job.pk)  # read while active
    terminate_job(job=job)
    with pytest.raises(BatchError) as error:
        task_adding.add_tasks(job=stale, specs=[{"batch_id": "late", "command_line": "x"}])
    assert error.value.code == "JobCompleted"
    assert not Task.objects.exists()
