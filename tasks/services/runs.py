"""A node's runs: claiming tasks for it, and recording how each run ended.

A run's end can move its job: its exit conditions may disable or terminate it,
a job manager's end may end it, and a last task's end may complete it
(`settle_job`). Those happen in the same transaction as the run's end.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from batchapi.errors import BatchError
from jobs.models import Job, OnTaskFailure
from jobs.services.lifecycle import disable_job, settle_job, terminate_job
from jobs.transitions import count, move
from pools import node_load

from .. import counts, dependencies, exits, node_tasks, stats
from ..models import RUNNING_STATES, NodeTask, Task, TaskKind, TaskResult, TaskState
from ..outcomes import FAILURE_EXIT_CODE, files_expire_after, run_time_until

# The claim's two reads, in SQL because their plans must not depend on planner
# statistics (which lag behind a job of 100,000 new tasks by up to a minute, or
# for good when autovacuum does not think the change large enough). Both read the
# partial index task_runnable_in_job, which holds runnable tasks only (not those
# waiting for parents), in the order `id + 0` that no other index supplies: with
# plain `id` PostgreSQL walked the primary key past every other job's rows, and an
# EXISTS became a hash join over all active tasks. The job is a value the planner
# cannot see (a correlated column, or `(SELECT %s)`): for a literal id missing
# from its statistics it guessed "one row", and at 1,100,000 tasks chose a plain
# job index and a sort, which reads every task of the job. SQLite is told the
# index outright; its planner preferred task_job_state and walked past waiting tasks.
_TASK, _JOB = Task._meta.db_table, Job._meta.db_table


def _runnable(alias: str) -> str:
    hint = " INDEXED BY task_runnable_in_job" if connection.vendor == "sqlite" else ""
    return (f"{_TASK} {alias}{hint} WHERE {alias}.state = 'active' AND NOT {alias}.waiting")


def _jobs_with_runnable_tasks(node_id: str, node: node_load.Claimer) -> list[Job]:
    """Up to 4 active jobs of the node's pool that have a runnable task, highest priority first, then oldest.

    The jobs of the pool are a range of job_active_in_pool. One index probe per
    active job: a scalar subquery with LIMIT is run as such (an EXISTS would be
    planned as a join). Jobs whose preparation failed for good on this node are not
    this node's to run.
    """
    return list(Job.objects.raw(
        f"SELECT * FROM {_JOB} j WHERE j.state = 'active' AND j.account_id = %s AND j.pool_key = %s AND ("
        f"SELECT t.id FROM {_runnable('t')} AND t.job_id = j.id ORDER BY t.id + 0 LIMIT 1) IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {NodeTask._meta.db_table} r WHERE r.job_id = j.id"
        f" AND r.node_id = %s AND r.refuses_job)"
        f" ORDER BY j.priority DESC, j.id LIMIT 4", [node.account_id, node.pool_key, node_id]))


def _fitting(tasks: list[Task], slots: int) -> list[Task]:
    """The first tasks whose requiredSlots fit in `slots` together (a task that does not
    fit waits for room, and so do those after it: the job's order holds)."""
    fit = []
    for task in tasks:
        slots -= task.required_slots
        if slots < 0:
            break
        fit.append(task)
    return fit


def _runnable_tasks(job_pk: int, room: int, *, skip_locked: bool) -> list[Task]:
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return list(Task.objects.raw(
        f"SELECT * FROM {_runnable('t')} AND t.job_id = (SELECT %s) ORDER BY t.id + 0 LIMIT %s{lock}",
        [job_pk, room]))


class Claim(list):
    """The tasks a node claimed (a list, possibly empty), all of one job, and what the node must do
    first: `prepare` says the job's preparation task has not run (or, with waitForSuccess, not
    succeeded) on this node yet, so the node must start it (unless it runs there already)."""

    def __init__(self, tasks=(), *, job: Job | None = None, prepare: bool = False):
        super().__init__(tasks)
        self.job, self.prepare = job, prepare


def claim_tasks(*, node_id: str, limit: int, holding: node_load.Load | None = None) -> Claim:
    """Fill up to `limit` free slots of node `node_id` with runnable tasks of its pool, marked running.

    None while the node does not take tasks (not idle or running, scheduling disabled,
    its pool being deleted); its pool's nodeFillType decides how many it may take
    (`node_load.share`). Priority orders the pool's jobs.

    `holding` is what the node runs already, as its agent knows: the node's running
    counts become that and the claim, in the claim's transaction.

    Two workers never get the same task: on PostgreSQL the candidate rows are
    locked with SKIP LOCKED, so concurrent claimers take different rows; on
    SQLite the IMMEDIATE transaction serialises claimers. Either way the update
    is a compare-and-set on state=active. Tasks of a job whose preparation must
    succeed on this node first are claimed `preparing`.
    """
    if limit <= 0:
        return Claim()
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        node = node_load.claimer(node_id)
        most = node_load.share(node, limit) if node else 0  # tasks, of `limit` free slots
        if most <= 0:
            return Claim()
        for job in _jobs_with_runnable_tasks(node_id, node):
            room = most
            if job.max_parallel_tasks >= 0:
                room = min(room, job.max_parallel_tasks - counts.read(job.pk).running)
                if room <= 0:
                    continue
            # A few more than it may take: those left to the node their affinity names are passed by.
            candidates = _runnable_tasks(job.pk, room + node_load.LOOKAHEAD, skip_locked=skip_locked)
            tasks = _fitting(node_load.yield_to_affinity(candidates, node_id, timezone.now()), limit)[:room]
            if not tasks:
                # Its next tasks are another node's to claim (locked, or left to the node their
                # affinity names) or do not fit this node's free slots: no job of lower priority
                # goes before them; the node asks again in a moment.
                return Claim()
            prepare = node_tasks.preparation_due(job, node_id)
            state = TaskState.PREPARING if prepare and node_tasks.waits_for_preparation(job) else TaskState.RUNNING
            now = timezone.now()
            values = dict(start_time=now if state == TaskState.RUNNING else None, end_time=None, node_id=node_id)
            claimed = move(Task.objects.filter(pk__in=[t.pk for t in tasks]), state, from_states=(TaskState.ACTIVE,),
                           job_pk=job.pk, now=now, extra_slots=sum(t.required_slots - 1 for t in tasks),
                           attempt=F("attempt") + 1, **values)
            # The rows are this transaction's alone (row locks on PostgreSQL, the write
            # lock on SQLite), so the compare-and-set takes every one of them.
            if claimed != len(tasks):
                raise RuntimeError(f"claimed {claimed} of {len(tasks)} locked tasks")
            for task in tasks:  # what the update wrote, without reading it back
                task.previous_state, task.previous_state_transition_time = task.state, task.state_transition_time
                task.state, task.state_transition_time, task.last_modified = state, now, now
                task.attempt += 1
                task.job = job
                for name, value in values.items():
                    setattr(task, name, value)
            if holding is not None:
                slots = sum(task.required_slots for task in tasks)
                node_load.report(node_id, node_load.Load(holding.tasks + len(tasks), holding.slots + slots),
                                 started=len(tasks))
            return Claim(tasks, job=job, prepare=prepare)
    return Claim()


def start_prepared_tasks(tasks: list[Task]) -> list[Task]:
    """The job's preparation succeeded on their node: its waiting tasks move from preparing to running.

    Those ended meanwhile (terminated, requeued) are left out. Both states count
    as running, so the counts do not move. startTime is now: Batch gives it only
    from the running state on.
    """
    now = timezone.now()
    started = []
    with transaction.atomic():
        for task in tasks:
            if move(Task.objects.filter(pk=task.pk, attempt=task.attempt), TaskState.RUNNING,
                    from_states=(TaskState.PREPARING,), job_pk=task.job_id, now=now, start_time=now):
                task.previous_state_transition_time = task.state_transition_time
                task.previous_state, task.state = TaskState.PREPARING, TaskState.RUNNING
                task.state_transition_time = task.last_modified = task.start_time = now
                started.append(task)
    return started


class JobActions:
    """The job actions one transaction's run ends asked for, carried out once per job at its end.

    Then `settle_job` for each job touched (a disabling job whose last task ended
    becomes disabled; onAllTasksComplete terminatejob ends a job whose tasks are
    all completed).
    """

    def __init__(self):
        self.by_job: dict[int, str] = {}
        self.touched: dict[int, None] = {}  # in the order the jobs were first touched, as locks are taken

    def act(self, job_pk: int, action: str) -> None:
        # Ending the job outranks disabling it when several tasks ask for both.
        if self.by_job.get(job_pk) in (None, "disable"):
            self.by_job[job_pk] = action

    def apply(self) -> None:
        for job_pk, action in self.by_job.items():
            try:
                if action == "terminate":
                    terminate_job(job=Job(pk=job_pk), reason="TaskFailed")
                elif action == "jobmanager-done":  # killJobOnCompletion
                    terminate_job(job=Job(pk=job_pk), reason="JMComplete")
                elif action == "disable":  # as Disable Job with disableTasks requeue, the docs say
                    disable_job(job=Job(pk=job_pk), disable_tasks="requeue")
            except BatchError:
                pass  # the job is no longer active: nothing left to do
        for job_pk in self.touched:
            settle_job(Job(pk=job_pk))


class _Ending:
    """One transaction's run ends: their count changes, then the job actions they ask for."""

    def __init__(self):
        self.counts = counts.Pending()
        self.jobs = JobActions()

    def close(self) -> None:
        for job_pk, delta in self.counts.by_job.items():
            count(job_pk, delta)
        self.jobs.touched.update(dict.fromkeys(self.counts.by_job))
        self.jobs.apply()


@dataclass
class RunEnd:
    """How one run of a task ended, as the worker saw it."""

    task: Task
    attempt: int
    exit_code: int | None
    failure: dict | None = None  # a failure that is never retried
    usage: stats.Usage | None = None  # what the run used, as the worker measured it


def finish_tasks(ends: list[RunEnd], *, node_id: str = "", holding: node_load.Load | None = None) -> list[str | None]:
    """Record the ends of several runs in one transaction; what became of each.

    With `node_id` and `holding` (what that node still runs), the node's running
    counts become `holding` in the same transaction.

    Exit code 0 succeeds. A non-zero exit is retried while retries remain
    (maxTaskRetryCount, -1 for ever), else fails with FailureExitCode. A run with
    `failure` (the program could not start, the wall clock ran out) fails without
    retry. None for a run that was no longer current (terminated, requeued).
    A worker whose short tasks end together pays one commit and one count update
    per job, not one per task.
    """
    ending = _Ending()
    with transaction.atomic():
        for job_pk in sorted({end.task.job_id for end in ends if end.task.job.uses_task_dependencies}):
            dependencies.hold_parents(job_pk)  # before any task row, as Terminate Job locks job then tasks
        outcomes = [_finish(end, ending) for end in ends]
        ending.close()
        if node_id and holding is not None:
            node_load.report(node_id, holding, succeeded=outcomes.count("succeeded"))
    return outcomes


def finish_task(*, task: Task, attempt: int, exit_code: int | None, failure: dict | None = None) -> str | None:
    return finish_tasks([RunEnd(task, attempt, exit_code, failure)])[0]


def effective_retry_limit(task: Task) -> int:
    if task.max_task_retry_count is not None:
        return task.max_task_retry_count
    return task.job.max_task_retry_count


def _finish(end: RunEnd, ending: _Ending) -> str | None:
    task, attempt, exit_code, failure = end.task, end.attempt, end.exit_code, end.failure
    if failure is None and exit_code == 0:
        return "succeeded" if _complete(end, ending, result=TaskResult.SUCCESS, failure=None) else None
    if failure is None:
        current = (Task.objects.filter(pk=task.pk, state__in=RUNNING_STATES, attempt=attempt)
                   .select_related("job").only("retry_count", "max_task_retry_count",
                                               "job__max_task_retry_count").first())
        if current is None:
            return None
        limit = effective_retry_limit(current)
        if limit == -1 or current.retry_count < limit:
            now = timezone.now()
            task_stats, job_stats = stats.run_ended(task, end.usage, now, completed=False)
            retried = move(Task.objects.filter(pk=task.pk, attempt=attempt), TaskState.ACTIVE,
                           from_states=RUNNING_STATES, job_pk=task.job_id, now=now, pending=ending.counts,
                           extra_slots=task.required_slots - 1, stats=task_stats, exit_code=exit_code,
                           retry_count=F("retry_count") + 1,
                           last_retry_time=now, run_time=run_time_until(now))
            if retried:
                ending.counts.add(task.job_id, job_stats)
                return "retried"
            return None
        failure = FAILURE_EXIT_CODE
    return "failed" if _complete(end, ending, result=TaskResult.FAILURE, failure=failure) else None


def _complete(end: RunEnd, ending: _Ending, *, result: str, failure: dict | None) -> bool:
    """Complete a run and carry out its exit conditions: dependents, then the job action."""
    task, exit_code, now = end.task, end.exit_code, timezone.now()
    task_stats, job_stats = stats.run_ended(task, end.usage, now, completed=True)
    done = move(Task.objects.filter(pk=task.pk, attempt=end.attempt), TaskState.COMPLETED,
                from_states=RUNNING_STATES, job_pk=task.job_id, result=result, now=now, pending=ending.counts,
                extra_slots=task.required_slots - 1, stats=task_stats, end_time=now, exit_code=exit_code,
                failure_info=failure, run_time=run_time_until(now), files_expire_at=files_expire_after(now))
    if not done:
        return False
    ending.counts.add(task.job_id, job_stats)
    options = exits.options_for(task.exit_conditions, exit_code=exit_code, condition=exits.condition_of(failure))
    job = task.job
    if job.uses_task_dependencies and options.dependency_action == "satisfy":
        dependencies.satisfy(task)
    if (result == TaskResult.FAILURE and options.job_action != "none"
            and job.on_task_failure == OnTaskFailure.PERFORM_EXIT_OPTIONS_JOB_ACTION):
        ending.jobs.act(job.pk, options.job_action)
    if task.kind == TaskKind.JOB_MANAGER and (job.job_manager_task or {}).get("killJobOnCompletion", True):
        ending.jobs.act(job.pk, "jobmanager-done")  # the job ends with its manager, succeeded or failed
    return True


def requeue_tasks(*, node_id: str, attempts: dict[int, int] | None = None) -> int:
    """Put running tasks of worker `node_id` back to active (requeueCount + 1).

    With `attempts` ({task pk: attempt}), only those runs; without, every task the
    worker holds (it stopped, or died and its heartbeat expired).
    """
    ending = _Ending()
    with transaction.atomic():
        running = Task.objects.filter(node_id=node_id, state__in=RUNNING_STATES)
        rows = list(running.values_list("pk", "job_id", "attempt", "required_slots"))
        if attempts is not None:
            rows = [r for r in rows if attempts.get(r[0]) == r[2]]
        now, total = timezone.now(), 0
        for pk, job_pk, attempt, slots in rows:
            total += move(Task.objects.filter(pk=pk, attempt=attempt), TaskState.ACTIVE, from_states=RUNNING_STATES,
                          job_pk=job_pk, now=now, pending=ending.counts, extra_slots=slots - 1,
                          requeue_count=F("requeue_count") + 1, last_requeue_time=now)
        ending.close()
        return total
