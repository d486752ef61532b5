"""Exit conditions and the job's reactions: onTaskFailure, onAllTasksComplete and the
job's maxWallClockTime, as the Batch docs word them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobState
from jobs.services.lifecycle import update_job
from tasks import counts, exits, outcomes
from tasks.models import Task, TaskState
from tasks.services import actions as task_actions
from tasks.services import runs as task_runs
from tasks.services.sweeps import settle_jobs

from .helpers import add, assert_counts_exact, claim, make_job

pytestmark = pytest.mark.django_db

CONDITIONS = {
    "exitCodes": [{"code": 2, "exitOptions": {"jobAction": "disable"}},
                  {"code": 0, "exitOptions": {"dependencyAction": "block"}}],
    "exitCodeRanges": [{"start": 2, "end": 9, "exitOptions": {"jobAction": "none", "dependencyAction": "satisfy"}},
                       {"start": "10", "end": "19", "exitOptions": {}}],
    "preProcessingError": {"jobAction": "none"},
    "fileUploadError": {"dependencyAction": "satisfy"},
    "default": {"jobAction": "disable", "dependencyAction": "satisfy"},
}


@pytest.mark.parametrize("conditions, exit_code, condition, expected", [
    # The documented defaults: none/satisfy for exit code 0, terminate/block for every other condition.
    (None, 0, exits.EXIT_CODE, ("none", "satisfy")),
    (None, 1, exits.EXIT_CODE, ("terminate", "block")),
    (None, None, exits.PRE_PROCESSING_ERROR, ("terminate", "block")),
    (None, 0, exits.FILE_UPLOAD_ERROR, ("terminate", "block")),
    # exitCodes first (the first that lists the code), missing options take the defaults.
    (CONDITIONS, 2, exits.EXIT_CODE, ("disable", "block")),
    (CONDITIONS, 0, exits.EXIT_CODE, ("none", "block")),
    # then exitCodeRanges; the CLI's strings count as integers.
    (CONDITIONS, 5, exits.EXIT_CODE, ("none", "satisfy")),
    (CONDITIONS, 12, exits.EXIT_CODE, ("terminate", "block")),
    # then default, for any non-zero code not listed...
    (CONDITIONS, 77, exits.EXIT_CODE, ("disable", "satisfy")),
    (CONDITIONS, -1, exits.EXIT_CODE, ("disable", "satisfy")),
    # ...but never for exit code 0.
    ({"default": {"dependencyAction": "block"}}, 0, exits.EXIT_CODE, ("none", "satisfy")),
    # preProcessingError, else default.
    (CONDITIONS, None, exits.PRE_PROCESSING_ERROR, ("none", "block")),
    ({"default": {"jobAction": "none"}}, None, exits.PRE_PROCESSING_ERROR, ("none", "block")),
    # a file upload error takes its exit code's options if listed, else fileUploadError, else default.
    (CONDITIONS, 5, exits.FILE_UPLOAD_ERROR, ("none", "satisfy")),
    (CONDITIONS, 77, exits.FILE_UPLOAD_ERROR, ("terminate", "satisfy")),
    ({"default": {"jobAction": "none"}}, 77, exits.FILE_UPLOAD_ERROR, ("none", "block")),
])
def test_the_options_that_apply(conditions, exit_code, condition, expected):
    options = exits.options_for(conditions, exit_code=exit_code, condition=condition)
    assert (options.job_action, options.dependency_action) == expected


def test_the_condition_of_a_failure():
    assert exits.condition_of(None) == exits.EXIT_CODE
    assert exits.condition_of(outcomes.FAILURE_EXIT_CODE) == exits.EXIT_CODE
    assert exits.condition_of(outcomes.program_not_found("x", "no")) == exits.PRE_PROCESSING_ERROR
    assert exits.condition_of(outcomes.wall_clock_expired(timedelta(seconds=1))) == exits.EXIT_CODE


def finish(job, exit_codes: dict[str, int]) -> None:
    claimed = claim(node_id="node", limit=100)
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, exit_codes[t.batch_id]) for t in claimed
                           if t.batch_id in exit_codes])


def test_a_failed_task_terminates_its_job_by_default_with_performexitoptionsjobaction():
    job = make_job("j", on_task_failure="performexitoptionsjobaction")
    add(job, "bad", "long", "later")
    claim(node_id="node", limit=2)  # bad and long run; later waits
    bad = Task.objects.get(key="bad")
    task_runs.finish_task(task=bad, attempt=1, exit_code=1)
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "TaskFailed")
    long = Task.objects.get(key="long")
    assert (long.state, long.failure_info["code"]) == (TaskState.COMPLETED, "TaskEnded")
    assert Task.objects.get(key="later").state == TaskState.ACTIVE  # never scheduled
    assert claim(node_id="node", limit=5) == []
    assert_counts_exact(job.pk)


def test_with_noaction_a_failed_task_leaves_its_job_alone():
    job = make_job("j")
    add(job, "bad", "good")
    finish(job, {"bad": 1, "good": 0})
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE


def test_job_action_disable_requeues_the_running_tasks():
    job = make_job("j", on_task_failure="performexitoptionsjobaction")
    add(job, "bad", exit_conditions={"default": {"jobAction": "disable"}})
    add(job, "running")
    add(job, "waiting-to-run")
    claimed = claim(node_id="node", limit=2)
    task_runs.finish_task(task=claimed[0], attempt=1, exit_code=3)
    job.refresh_from_db()
    assert job.state == JobState.DISABLED
    running = Task.objects.get(key="running")
    assert (running.state, running.requeue_count) == (TaskState.ACTIVE, 1)
    assert claim(node_id="node", limit=5) == []  # a disabled job schedules nothing
    assert_counts_exact(job.pk)


def test_job_action_none_and_retries_leave_the_job_running():
    job = make_job("j", on_task_failure="performexitoptionsjobaction", max_task_retry_count=1)
    add(job, "tolerated", exit_conditions={"exitCodes": [{"code": 4, "exitOptions": {"jobAction": "none"}}]})
    add(job, "retried")
    finish(job, {"tolerated": 4, "retried": 1})  # retried has a retry left: not failed yet
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    finish(job, {"retried": 1})
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "TaskFailed")


def test_a_job_action_on_a_job_with_noaction_is_refused(api):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/j/tasks", {
        "id": "t", "commandLine": "x", "exitConditions": {"default": {"jobAction": "terminate"}}}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidPropertyValue"
    assert {"key": "PropertyName", "value": "exitConditions.default.jobAction"} in body["values"]
    # a dependencyAction alone is fine
    assert api.post("/batch/jobs/j/tasks", {
        "id": "t", "commandLine": "x", "exitConditions": {"default": {"dependencyAction": "satisfy"}}},
        format="json").status_code == 201


@pytest.mark.parametrize("conditions", [
    {"exitCodes": [{"exitOptions": {}}]},
    {"exitCodeRanges": [{"start": 5, "end": 1}]},
    {"default": {"jobAction": "explode"}},
    {"default": {"dependencyAction": "maybe"}},
    {"sometimes": {}},
])
def test_malformed_exit_conditions_are_refused(api, conditions):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"},
                             "onTaskFailure": "performexitoptionsjobaction"}, format="json")
    response = api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "x", "exitConditions": conditions},
                        format="json")
    assert (response.status_code, response.json()["code"]) == (400, "InvalidPropertyValue")
    assert not Task.objects.exists()


def test_on_all_tasks_complete_terminates_the_job_when_the_last_task_completes():
    job = make_job("j")
    add(job, "a", "b")
    update_job(job=job, changes={"on_all_tasks_complete": "terminatejob"})  # as the docs advise: after adding
    a, b = claim(node_id="node", limit=2)
    task_runs.finish_task(task=a, attempt=a.attempt, exit_code=0)
    job.refresh_from_db()
    assert job.state == JobState.ACTIVE
    task_runs.finish_task(task=b, attempt=b.attempt, exit_code=1)
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "AllTasksComplete")
    assert job.end_time is not None


def test_a_job_with_no_tasks_counts_as_all_complete():
    job = make_job("empty", on_all_tasks_complete="terminatejob")
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "AllTasksComplete")


def test_terminating_the_last_active_task_completes_the_job_too():
    job = make_job("j")
    add(job, "only")
    update_job(job=job, changes={"on_all_tasks_complete": "terminatejob"})
    task_actions.terminate_task(task=Task.objects.get(key="only"))
    assert Job.objects.get(pk=job.pk).terminate_reason == "AllTasksComplete"


def test_housekeeping_settles_a_job_a_race_left_open():
    """Two transactions finishing the last two tasks may each see the other's still running."""
    job = make_job("j")
    add(job, "a")
    Job.objects.filter(pk=job.pk).update(on_all_tasks_complete="terminatejob")  # as if set mid-race
    finish(job, {"a": 0})
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    job2 = make_job("j2")
    Job.objects.filter(pk=job2.pk).update(on_all_tasks_complete="terminatejob")
    settle_jobs()
    assert Job.objects.get(pk=job2.pk).state == JobState.COMPLETED


def test_a_job_past_its_max_wall_clock_time_is_terminated_with_its_running_tasks():
    job = make_job("j", max_wall_clock_time=timedelta(minutes=1))
    add(job, "running", "queued")
    claim(node_id="node", limit=1)
    settle_jobs()
    assert Job.objects.get(pk=job.pk).state == JobState.ACTIVE  # not yet
    Job.objects.filter(pk=job.pk).update(start_time=timezone.now() - timedelta(minutes=2))
    settle_jobs()
    job.refresh_from_db()
    assert (job.state, job.terminate_reason) == (JobState.COMPLETED, "MaxWallClockTimeExpiry")
    assert Task.objects.get(key="running").failure_info["code"] == "TaskEnded"
    assert counts.read(job.pk).as_dict() == {"active": 1, "running": 0, "completed": 1, "succeeded": 0, "failed": 1}
    assert_counts_exact(job.pk)


def test_priority_orders_claims_across_jobs_and_max_parallel_tasks_caps_a_job():
    low = make_job("low", priority=-5)
    high = make_job("high", priority=500, max_parallel_tasks=2)
    add(low, "l1", "l2", "l3")
    add(high, "h1", "h2", "h3")
    first = claim(node_id="n", limit=5)
    assert [t.batch_id for t in first] == ["h1", "h2"]  # the high job, up to its cap
    second = claim(node_id="n", limit=5)
    assert [t.batch_id for t in second] == ["l1", "l2", "l3"]  # the cap leaves room for the low job
    task_runs.finish_tasks([task_runs.RunEnd(first[0], first[0].attempt, 0)])
    assert [t.batch_id for t in claim(node_id="n", limit=5)] == ["h3"]
    # Running lower-priority tasks were not preempted.
    assert set(Task.objects.filter(job=low).values_list("state", flat=True)) == {TaskState.RUNNING}
