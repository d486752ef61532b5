"""Adding tasks to a job: Add Task, Add Task Collection, and the job manager with its job."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from batchapi.errors import BatchError, invalid_property
from batchapi.ids import id_key
from jobs.models import Job
from jobs.selectors import lock_open_job
from jobs.transitions import count
from pools.models import Pool

from .. import counts, dependencies, exits, node_tasks
from ..models import Task, TaskState


@dataclass
class AddResult:
    """One task of an Add Task Collection: the task stored, or why not."""

    batch_id: str
    task: Task | None = None
    error: BatchError | None = None


def add_tasks(*, job: Job, specs: list[dict]) -> list[AddResult]:
    """Add tasks to a job: one transaction for the task rows and their counts.

    `specs` are validated Task field values. A duplicate id (stored already, or
    earlier in the same list) fails that task alone with TaskExists, as the
    Batch service does for a collection.
    """
    for attempt in range(3):
        try:
            with transaction.atomic():
                lock_open_job(job)
                return _add_tasks(job, specs)
        except IntegrityError:
            # A concurrent add of the same id won the race (PostgreSQL); look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _add_tasks(job: Job, specs: list[dict]) -> list[AddResult]:
    now = timezone.now()
    keys = [id_key(spec["batch_id"]) for spec in specs]
    taken = set(Task.objects.filter(job=job, key__in=keys).values_list("key", flat=True))
    groups = dependencies.Groups(job)
    reserved = node_tasks.reserved_ids(job)
    most_slots = slots_per_node(job)
    results, new = [], []
    for spec, key in zip(specs, keys):
        if key in taken:
            results.append(AddResult(spec["batch_id"], error=BatchError(
                "TaskExists", "The specified task already exists.", 409, {"TaskId": spec["batch_id"]})))
            continue
        if key in reserved:
            results.append(AddResult(spec["batch_id"], error=reserved[key]))
            continue
        task = Task(job=job, key=key, state=TaskState.ACTIVE, state_transition_time=now,
                    creation_time=now, last_modified=now, **spec)
        try:
            if most_slots is not None and task.required_slots > most_slots:
                raise invalid_property("requiredSlots", f"at most the pool's taskSlotsPerNode ({most_slots})",
                                       task.required_slots)
            dependencies.refuse_without_flag(job, task.depends_on)
            exits.validate(task.exit_conditions, on_task_failure=job.on_task_failure)
            groups.place(task)
        except BatchError as error:
            results.append(AddResult(spec["batch_id"], error=error))
            continue
        taken.add(key)
        new.append(task)
        results.append(AddResult(spec["batch_id"], task=task))
    if new:
        Task.objects.bulk_create(new)
        count(job.pk, counts.with_slots({"active": len(new)}, {"active": sum(t.required_slots - 1 for t in new)}))
    return results


def slots_per_node(job: Job) -> int | None:
    """The taskSlotsPerNode of the job's pool (a task may take no more), or None while it has none."""
    return (Pool.objects.filter(account_id=job.account_id, key=job.pool_key)
            .values_list("task_slots_per_node", flat=True).first())


def add_task(*, job: Job, spec: dict) -> Task:
    (result,) = add_tasks(job=job, specs=[spec])
    if result.error:
        raise result.error
    return result.task
