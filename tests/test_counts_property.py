"""Random sequences of state changes through the services never let the counts drift."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchapi.errors import BatchError
from tasks import counts
from tasks.models import Task, TaskState
from tasks.services import actions as task_actions
from tasks.services import adding as task_adding
from tasks.services import runs as task_runs

from .helpers import claim, make_job

OPERATIONS = ("add", "claim", "succeed", "fail", "requeue", "terminate", "reactivate", "delete")
jobs_made = itertools.count()

steps = st.lists(
    st.tuples(st.sampled_from(OPERATIONS), st.integers(min_value=0, max_value=30), st.integers(1, 4)),
    min_size=1, max_size=40,
)


def pick(job, index, *states):
    tasks = Task.objects.filter(job=job, **({"state__in": states} if states else {})).order_by("pk")
    found = list(tasks)
    return found[index % len(found)] if found else None


def apply(job, operation, index, n):
    if operation == "add":
        ids = [f"t{index}-{i}" for i in range(n)]  # reused indexes make duplicates: TaskExists
        # requiredSlots 1 to 3: the default pool's nodes have 2 slots, so 3 is refused (400).
        task_adding.add_tasks(job=job, specs=[{"batch_id": i, "command_line": "/bin/true",
                                            "max_task_retry_count": n % 3, "required_slots": 1 + k % 3}
                                           for k, i in enumerate(ids)])
    elif operation == "claim":
        claim(node_id=f"node{n}", limit=n)
    elif operation in ("succeed", "fail"):
        task = pick(job, index, TaskState.RUNNING)
        if task:
            task_runs.finish_task(task=task, attempt=task.attempt, exit_code=0 if operation == "succeed" else n)
    elif operation == "requeue":
        task = pick(job, index, TaskState.RUNNING)
        if task:
            task_runs.requeue_tasks(node_id=task.node_id, attempts={task.pk: task.attempt})
    elif (task := pick(job, index)) is not None:
        action = {"terminate": task_actions.terminate_task, "reactivate": task_actions.reactivate_task,
                  "delete": task_actions.delete_task}[operation]
        action(task=task)


@pytest.mark.django_db
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_counts_equal_a_recount_after_every_step(steps):
    job = make_job(f"prop-{next(jobs_made)}")
    for operation, index, n in steps:
        try:
            apply(job, operation, index, n)
        except BatchError:
            pass  # refused (terminate a completed task, reactivate a success): nothing may change
        stored, real = counts.read(job.pk), counts.actual(job.pk)
        assert stored.as_dict() == real.as_dict(), (operation, index, n)
        assert stored.slots() == real.slots(), (operation, index, n)  # taskSlotCounts too


@pytest.mark.django_db
def test_recount_repairs_and_reports_drift():
    from django.core.management import call_command

    job = make_job("drifty")
    task_adding.add_tasks(job=job, specs=[{"batch_id": f"t{i}", "command_line": "x"} for i in range(5)])
    counts.apply(job.pk, {"active": 7, "failed": -2, "active_extra_slots": 3})  # damage, as a bug or a hand edit would

    with pytest.raises(SystemExit) as exit_info:
        call_command("recount_tasks", "DRIFTY")
    assert exit_info.value.code == 1
    assert counts.read(job.pk).as_dict() == counts.actual(job.pk).as_dict() == {
        "active": 5, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
    assert counts.read(job.pk).slots() == counts.actual(job.pk).slots()
    call_command("recount_tasks", "drifty")  # no drift left: exits normally
