"""Reads of tasks that the API, the pages, the services and the worker share."""

from batchapi.errors import task_not_found
from batchapi.ids import find_by_id

from .models import RUNNING_STATES, Task


def find_task(job, task_id: str, *, only=None) -> Task | None:
    """Task `task_id` of `job` (ids are unique without regard to case), or None."""
    task = find_by_id(Task.objects.filter(job=job), task_id, only=only)
    if task is not None:
        task.job = job  # already loaded: no second query for it
    return task


def get_task(job, task_id: str, *, only=None) -> Task:
    """As `find_task`, or 404 TaskNotFound."""
    task = find_task(job, task_id, only=only)
    if task is None:
        raise task_not_found(task_id)
    return task


def current_runs(*, node_id: str, attempts: dict[int, int]) -> set[int]:
    """Of the runs a worker holds ({pk: attempt}), those still its to finish."""
    rows = Task.objects.filter(pk__in=list(attempts), node_id=node_id, state__in=RUNNING_STATES)
    return {pk for pk, attempt in rows.values_list("pk", "attempt") if attempts[pk] == attempt}
