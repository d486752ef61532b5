"""`manage.py demo` makes a job a new user can watch: hundreds of varied tasks, counted exactly."""

import re

import pytest
from django.core.management import call_command

from jobs.models import Job
from tasks.models import Task

from .helpers import assert_counts_exact

pytestmark = pytest.mark.django_db


def test_the_demo_job_has_varied_tasks_some_failing_some_retried_some_waiting():
    call_command("demo", "--id", "demo-test", "--seed", "3")
    job = Job.objects.get(batch_id="demo-test")
    tasks = Task.objects.filter(job=job)
    assert tasks.count() == 300 and job.uses_task_dependencies
    commands = list(tasks.values_list("command_line", flat=True))
    assert sum(bool(re.search(r"code = \d+, [\d.]+, [1-9]", c)) for c in commands) >= 10  # some fail
    assert sum(".attempt" in c for c in commands) >= 10  # some fail once, then succeed when retried
    assert tasks.exclude(depends_on=None).count() == 6
    assert_counts_exact(job.pk)


@pytest.mark.django_db(transaction=True)
def test_the_demo_tasks_run_in_the_sandbox(run_worker):
    """Their Python is one the task user can run (Batchsite's own is hidden from tasks)."""
    call_command("demo", "--id", "demo-run", "--seed", "1", "--tasks", "6")
    run_worker("--slots", "6")
    tasks = Task.objects.filter(job__batch_id="demo-run")
    assert not tasks.filter(failure_info__code="CommandProgramNotFound").exists()
    assert tasks.filter(result="success").count() >= 4
