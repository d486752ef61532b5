"""Task dependencies: which tasks wait, and what a parent's completion releases.

Batch's rules (dependsOn): a task is scheduled only when every task it names in
`taskIds`, and every task in each of its `taskIdRanges` (inclusive, integer ids),
has completed with dependencyAction satisfy (the default for exit code 0). A
parent that completed with block (the default for every failure) keeps its
dependents waiting; if it is reactivated and then satisfies, they run. Waiting
tasks are active, as Batch counts them.

Where the docs are silent we do this:
- a parent that does not exist (yet) is not done: the dependent waits for it to be
  added and to complete, for ids in a range as for named ids;
- ids match without regard to case, like every Batch id; a range names the tasks
  whose id is the integer in plain decimal ("7", not "007");
- a parent that satisfied and is then deleted or reactivated no longer counts, so
  its dependents that have not started wait again.

Scale: the tasks of a job with the same dependsOn share one `DependencyGroup`,
whose `satisfied` counter a parent's completion moves by one; the group's tasks
are released (one indexed UPDATE) when it reaches `needed`. A parent finds its
groups through indexed edges (by id) and ranges (by integer id), so neither a
chain of 10,000 nor 100,000 tasks on one range makes anything scan the job.
"""

import hashlib
import json

from django.db import connection
from django.db.models import F
from django.utils import timezone

from batchapi.errors import BatchError, invalid_property
from batchapi.ids import id_key
from batchapi.input import INT32_MAX, INT64_MAX

from .models import DependencyEdge, DependencyGroup, DependencyRange, Task, TaskState

MAX_TASK_IDS_CHARS = 64_000  # the combined length of dependsOn.taskIds


def int_id(batch_id: str) -> int | None:
    """The integer a taskIdRange matches this id by, or None."""
    if batch_id.isascii() and batch_id.isdigit() and str(int(batch_id)) == batch_id and int(batch_id) <= INT64_MAX:
        return int(batch_id)  # a larger one fits no column; no range (int32) reaches it
    return None


def normalise(depends_on: dict | None) -> tuple[list[str], list[tuple[int, int]]] | None:
    """The parent keys and merged ranges a dependsOn names; None for no dependencies.

    Raises the Batch errors for a list that is too long or a range that is not one.
    Ids a range covers are dropped from the keys and overlapping ranges merged, so
    each parent is counted once; a one-id range becomes a key (found by equality).
    """
    if not depends_on:
        return None
    if not isinstance(depends_on, dict) or set(depends_on) - {"taskIds", "taskIdRanges"}:
        raise invalid_property("dependsOn", "expected an object with taskIds and taskIdRanges")
    ids = depends_on.get("taskIds") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise invalid_property("dependsOn.taskIds", "expected a list of task ids")
    if sum(len(i) for i in ids) > MAX_TASK_IDS_CHARS:
        raise BatchError("TaskDependencyListTooLong",
                         "The task dependency list is too long: the ids may total at most 64,000 characters. "
                         "Consider using task id ranges instead.", 400)
    ranges = []
    for r in depends_on.get("taskIdRanges") or []:
        start, end = (r.get("start"), r.get("end")) if isinstance(r, dict) else (None, None)
        if not (_whole(start) and _whole(end)) or int(start) < 0 or int(start) > int(end) or int(end) > INT32_MAX:
            raise invalid_property("dependsOn.taskIdRanges",
                                   f"a range needs integer start <= end, both from 0 to {INT32_MAX} (int32)")
        ranges.append((int(start), int(end)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    keys = {id_key(i) for i in ids}
    keys = {k for k in keys if not _covered(int_id(k), merged)}
    keys |= {str(start) for start, end in merged if start == end}
    merged = [(start, end) for start, end in merged if start != end]
    if not keys and not merged:
        return None
    return sorted(keys), merged


def _whole(value) -> bool:
    # The CLI sends integers as strings.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit()
                                      and len(value) <= 32)


def _covered(n: int | None, ranges) -> bool:
    return n is not None and any(start <= n <= end for start, end in ranges)



def refuse_without_flag(job, depends_on) -> None:
    """A task with dependencies needs a job created with usesTaskDependencies."""
    if depends_on and not job.uses_task_dependencies:
        # The Batch service answers 409 Conflict: the job, not the body, is what does not fit.
        raise BatchError("TaskDependenciesNotSpecifiedOnJob",
                         "The job does not have usesTaskDependencies set, so its tasks cannot have dependencies.",
                         409, {"JobId": job.batch_id})


class Groups:
    """The groups of one Add Task (Collection) call, found or made once per dependsOn."""

    def __init__(self, job):
        self.job = job
        self.by_signature: dict[str, DependencyGroup] = {}

    def place(self, task: Task) -> None:
        """Set the task's group and whether it waits, before it is stored."""
        task.int_id = int_id(task.batch_id)
        parents = normalise(task.depends_on)
        if parents is None:
            return
        group = self._group(*parents)
        task.dependency_group = group
        task.waiting = group.satisfied < group.needed

    def _group(self, keys: list[str], ranges: list[tuple[int, int]]) -> DependencyGroup:
        signature = hashlib.sha256(json.dumps([keys, ranges]).encode()).hexdigest()
        group = self.by_signature.get(signature)
        if group is None:
            group = DependencyGroup.objects.filter(job=self.job, signature=signature).first()
            if group is None:
                group = self._create(signature, keys, ranges)
            self.by_signature[signature] = group
        return group

    def _create(self, signature: str, keys: list[str], ranges: list[tuple[int, int]]) -> DependencyGroup:
        # The job's row is locked (lock_open_job), and parents take a shared lock on it
        # before crediting groups, so no parent completes between this count and the
        # edges becoming visible.
        done = Task.objects.filter(job=self.job, satisfies_dependents=True)
        satisfied = sum(done.filter(key__in=keys[i:i + 1000]).count() for i in range(0, len(keys), 1000))
        satisfied += sum(done.filter(int_id__gte=start, int_id__lte=end).count() for start, end in ranges)
        needed = len(keys) + sum(end - start + 1 for start, end in ranges)
        group = DependencyGroup.objects.create(job=self.job, signature=signature, needed=needed,
                                               satisfied=satisfied)
        DependencyEdge.objects.bulk_create(
            [DependencyEdge(group=group, job=self.job, parent_key=k) for k in keys], batch_size=1000)
        DependencyRange.objects.bulk_create(
            [DependencyRange(group=group, job=self.job, start=s, end=e) for s, e in ranges])
        return group


def hold_parents(job_pk: int) -> None:
    """Before a parent credits or debits groups: wait for any Add Task of the job to commit.

    Add Task holds the job's row FOR UPDATE while it counts a new group's done
    parents; this shared lock makes a completing parent either wait for that add
    (and then see its edges) or be seen by it. SQLite's IMMEDIATE transactions
    already run one writer at a time.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM jobs_job WHERE id = %s FOR SHARE", [job_pk])


def credit(task: Task, delta: int) -> None:
    """A parent's completion counts (+1) or stops counting (-1) for its dependents.

    The caller has set or cleared `task.satisfies_dependents` in the same
    transaction (a compare-and-set, so each parent counts once).
    """
    groups = set(DependencyEdge.objects.filter(job_id=task.job_id, parent_key=task.key)
                 .values_list("group_id", flat=True))
    if task.int_id is not None:
        groups |= set(DependencyRange.objects.filter(job_id=task.job_id, start__lte=task.int_id,
                                                     end__gte=task.int_id).values_list("group_id", flat=True))
    if not groups:
        return
    DependencyGroup.objects.filter(pk__in=groups).update(satisfied=F("satisfied") + delta)
    # The groups that changed side are read first and named by id: as a subquery,
    # PostgreSQL with statistics older than the waiting tasks joined it to a scan of
    # the whole task table, on every parent's completion.
    if delta > 0:
        ready = list(DependencyGroup.objects.filter(pk__in=groups, satisfied__gte=F("needed"))
                     .values_list("pk", flat=True))
        if ready:
            Task.objects.filter(dependency_group__in=ready, waiting=True).update(
                waiting=False, last_modified=timezone.now())
    else:
        unready = list(DependencyGroup.objects.filter(pk__in=groups, satisfied__lt=F("needed"))
                       .values_list("pk", flat=True))
        if unready:
            Task.objects.filter(dependency_group__in=unready, state=TaskState.ACTIVE, waiting=False).update(
                waiting=True, last_modified=timezone.now())


def satisfy(task: Task) -> None:
    """The parent completed with dependencyAction satisfy: credit its dependents once."""
    if Task.objects.filter(pk=task.pk, satisfies_dependents=False).update(satisfies_dependents=True):
        credit(task, +1)


def unsatisfy(task: Task) -> None:
    """The parent (about to be reactivated or deleted) no longer counts for its dependents."""
    if Task.objects.filter(pk=task.pk, satisfies_dependents=True).update(satisfies_dependents=False):
        credit(task, -1)



def blocking_parents(group_pk: int, job_pk: int, *, limit: int = 3) -> tuple[list[Task], list[str]]:
    """What a dependency group still waits for, a few of each: (parent tasks that have not
    satisfied it, failed or not yet done; parent ids no task has yet). Bounded reads: the
    group's first explicit ids, and the first unsatisfied tasks of each of its ranges."""
    keys = list(DependencyEdge.objects.filter(group_id=group_pk).values_list("parent_key", flat=True)[:50])
    found = list(Task.objects.filter(job_id=job_pk, key__in=keys, satisfies_dependents=False)
                 .only("pk", "batch_id", "key", "state", "result", "exit_code").order_by("pk")[:limit])
    present = set(Task.objects.filter(job_id=job_pk, key__in=keys).values_list("key", flat=True))
    missing = [key for key in keys if key not in present][:limit]
    for start, end in DependencyRange.objects.filter(group_id=group_pk).values_list("start", "end")[:5]:
        if len(found) >= limit:
            break
        found += list(Task.objects.filter(job_id=job_pk, int_id__gte=start, int_id__lte=end,
                                          satisfies_dependents=False)
                      .only("pk", "batch_id", "key", "state", "result", "exit_code")
                      .order_by("int_id")[:limit - len(found)])
    return found, missing
