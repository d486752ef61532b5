"""Why a job's active tasks are not running: the job page's "why waiting" line.

Each reason is read in a bounded number of queries, whatever the number of tasks or
nodes: the pool's node counts are count rows, a slot total is one aggregate over the
pool's usable nodes, and the example of a task waiting for its parents names at most a
few of those parents.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum
from django.urls import reverse

from pools import node_counts
from pools.models import SCHEDULABLE_STATES, ComputeNode, Pool, PoolState, SchedulingState
from tasks import counts
from tasks.dependencies import blocking_parents
from tasks.models import Task, TaskResult, TaskState

from .models import Job, JobState

# Node states by what they say of a pool that cannot run tasks, in the words the page uses.
NOT_TAKING = {"offline": "offline", "starttaskfailed": "failed their start task",
              "waitingforstarttask": "still running their start task", "unusable": "unusable",
              "unknown": "lost (no heartbeat)", "leavingpool": "leaving the pool", "rebooting": "rebooting",
              "creating": "being created", "starting": "starting", "preempted": "preempted"}


@dataclass
class Reason:
    text: str
    url: str = ""  # where to look further: the pool's page, the parent task's


def why_waiting(job: Job, current: counts.TaskCounts) -> list[Reason]:
    """The reasons, most telling first; none when no task is active."""
    if current.active == 0 or job.state in (JobState.COMPLETED, JobState.TERMINATING, JobState.DELETING):
        return []
    reasons = []
    if job.state in (JobState.DISABLED, JobState.DISABLING):
        reasons.append(Reason("the job is disabled: no task starts until it is enabled"))
    if job.max_parallel_tasks >= 0 and current.running >= job.max_parallel_tasks:
        reasons.append(Reason(f"maxParallelTasks is reached: {current.running} of at most "
                              f"{job.max_parallel_tasks} tasks run"))
    if pool_reason := _pool_reason(job):
        reasons.append(pool_reason)
    reasons += _parents_reasons(job)
    return reasons


def _pool_reason(job: Job) -> Reason | None:
    pool_id = job.pool_id
    pool = Pool.objects.filter(account_id=job.account_id, key=job.pool_key).only(
        "pk", "batch_id", "state", "allocation_state", "target_dedicated_nodes", "target_low_priority_nodes").first()
    if pool is None:
        hint = "" if settings.BATCHSITE_AUTO_POOLS else " (Batchsite makes no pool on its own here: create it)"
        return Reason(f"its pool {pool_id} does not exist{hint}")
    url = reverse("pool-detail", args=[pool.batch_id])
    if pool.state == PoolState.DELETING:
        return Reason(f"its pool {pool.batch_id} is being deleted", url)
    by_state: dict[str, int] = {}
    for kind in node_counts.read(pool.pk):
        for state, n in kind.as_dict().items():
            by_state[state] = by_state.get(state, 0) + n
    total = sum(by_state.values())
    target = pool.target_dedicated_nodes + pool.target_low_priority_nodes
    if total == 0:
        if pool.allocation_state == "resizing" and target:
            return Reason(f"its pool {pool.batch_id} has no node yet: it is resizing to {target}", url)
        return Reason(f"its pool {pool.batch_id} has no nodes", url)
    usable = ComputeNode.objects.filter(pool=pool, state__in=SCHEDULABLE_STATES,
                                        scheduling_state=SchedulingState.ENABLED)
    if not (by_state.get("idle", 0) + by_state.get("running", 0)) or not usable.exists():
        held = ", ".join(f"{n} {NOT_TAKING.get(state, state)}" for state, n in by_state.items()
                         if n and state not in ("idle", "running"))
        return Reason(f"no node of pool {pool.batch_id} takes tasks: {held or 'scheduling disabled'}", url)
    slots = usable.aggregate(total=Sum("slots"), used=Sum("running_task_slots_count"))
    if slots["total"] and slots["used"] >= slots["total"]:
        return Reason(f"all {slots['total']} slots of pool {pool.batch_id}'s nodes are in use", url)
    return None


def _parents_reasons(job: Job) -> list[Reason]:
    if not job.uses_task_dependencies:
        return []
    waiting = Task.objects.filter(job=job, state=TaskState.ACTIVE, waiting=True)
    example = waiting.only("pk", "batch_id", "dependency_group_id").order_by("pk").first()
    if example is None:
        return []
    n = waiting[:1001].count()
    parents, missing = blocking_parents(example.dependency_group_id, job.pk)
    said = [_parent_words(task) for task in parents] + [f"{key} (no such task yet)" for key in missing]
    many = "1000+" if n > 1000 else str(n)
    tasks = "task waits for its" if n == 1 else "tasks wait for their"
    url = reverse("task-detail", args=[job.batch_id, parents[0].batch_id]) if parents else ""
    return [Reason(f"{many} {tasks} parents: {example.batch_id} for {', '.join(said) or 'its parents'}",
                   url)]


def _parent_words(task: Task) -> str:
    if task.state == TaskState.COMPLETED and task.result == TaskResult.FAILURE:
        return f"{task.batch_id}, which failed (exit code {task.exit_code})"
    if task.state == TaskState.COMPLETED:
        return f"{task.batch_id}, which completed without satisfying it"
    return f"{task.batch_id} ({task.state})"

