"""Every change of a task's state, each in one transaction with its count rows.

The API, the admin, the pages and the worker all call these functions; nothing
else writes `Task.state` or a count. Each change is a compare-and-set
(`filter(pk=…, state=OLD).update(…)`) whose row count says whether it happened,
which is correct on SQLite and PostgreSQL alike.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from batchapi.errors import BatchError
from batchapi.ids import id_key
from jobs.models import Job, JobState, OnTaskFailure
from jobs.services import lock_open_job, settle_job

from . import counts, dependencies, exits, node_tasks, stats
from .files import task_dir
from .models import NodeTask, Task, TaskKind, TaskResult, TaskState
from .rundirs import remove_tree

RUNNING_STATES = (TaskState.PREPARING, TaskState.RUNNING)

# failureInfo bodies, as the Batch service words them.
FAILURE_EXIT_CODE = {
    "category": "usererror",
    "code": "FailureExitCode",
    "message": "The task exited with an exit code representing a failure",
}
TASK_ENDED = {
    "category": "usererror",
    "code": "TaskEnded",
    "message": "Task Was Ended by User Request",
}


def wall_clock_expired(limit: timedelta) -> dict:
    return {
        "category": "usererror",
        "code": "MaxWallClockTimeExpiry",
        "message": "The task exceeded the max wall clock time",
        "details": [{"name": "MaxWallClockTime", "value": str(limit)}],
    }


def program_not_found(program: str, reason: str) -> dict:
    return {
        "category": "usererror",
        "code": "CommandProgramNotFound",
        "message": "The specified command program is not found",
        "details": [{"name": "Program", "value": program}, {"name": "Message", "value": reason}],
    }


def files_expire_after(moment):
    """When a task's directory may go: `moment` (a time, or an expression such as
    F("end_time")) plus its retentionTime, or the settings' default without one."""
    from django.conf import settings

    if not hasattr(moment, "resolve_expression"):
        moment = Value(moment, output_field=DateTimeField())
    return ExpressionWrapper(
        moment + Coalesce(F("retention_time"), Value(settings.BATCHSITE_DEFAULT_RETENTION,
                                                     output_field=DurationField())),
        output_field=DateTimeField())


def run_time_until(now):
    """The run's length as the update computes it, from the row's own start_time."""
    return ExpressionWrapper(Value(now, output_field=DateTimeField()) - F("start_time"),
                             output_field=DurationField())


# --- adding ------------------------------------------------------------------------


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
        counts.apply(job.pk, {"active": len(new)})
    return results


def add_task(*, job: Job, spec: dict) -> Task:
    (result,) = add_tasks(job=job, specs=[spec])
    if result.error:
        raise result.error
    return result.task


# --- claiming and running ------------------------------------------------------------


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


def _jobs_with_runnable_tasks(node_id: str) -> list[Job]:
    """Up to 4 active jobs that have a runnable task, highest priority first, then oldest.

    One index probe per active job: a scalar subquery with LIMIT is run as such
    (an EXISTS would be planned as a join). Jobs whose preparation failed for good
    on this node are not this node's to run.
    """
    return list(Job.objects.raw(
        f"SELECT * FROM {_JOB} j WHERE j.state = 'active' AND ("
        f"SELECT t.id FROM {_runnable('t')} AND t.job_id = j.id ORDER BY t.id + 0 LIMIT 1) IS NOT NULL"
        f" AND NOT EXISTS (SELECT 1 FROM {NodeTask._meta.db_table} n WHERE n.job_id = j.id"
        f" AND n.node_id = %s AND n.refuses_job)"
        f" ORDER BY j.priority DESC, j.id LIMIT 4", [node_id]))


def _runnable_tasks(job_pk: int, room: int, *, skip_locked: bool) -> list[Task]:
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return list(Task.objects.raw(
        f"SELECT * FROM {_runnable('t')} AND t.job_id = (SELECT %s) ORDER BY t.id + 0 LIMIT %s{lock}",
        [job_pk, room]))


def claim_tasks(*, node_id: str, limit: int) -> list[Task]:
    """Give up to `limit` runnable tasks to worker `node_id`, marked running.

    Two workers never get the same task: on PostgreSQL the candidate rows are
    locked with SKIP LOCKED, so concurrent claimers take different rows; on
    SQLite the IMMEDIATE transaction serialises claimers. Either way the update
    is a compare-and-set on state=active.
    """
    if limit <= 0:
        return []
    skip_locked = connection.features.has_select_for_update_skip_locked
    with transaction.atomic():
        for job in _jobs_with_runnable_tasks(node_id):
            room = limit
            if job.max_parallel_tasks >= 0:
                room = min(room, job.max_parallel_tasks - counts.read(job.pk).running)
                if room <= 0:
                    continue
            tasks = _runnable_tasks(job.pk, room, skip_locked=skip_locked)
            if not tasks:
                continue  # every candidate is being claimed by someone else
            now = timezone.now()
            # Tasks wait in `preparing` while the job's preparation runs on this node first.
            waits = node_tasks.waits_for_preparation(job) and not node_tasks.prepared_on(job, node_id)
            values = dict(state=TaskState.PREPARING if waits else TaskState.RUNNING,
                          previous_state=TaskState.ACTIVE, state_transition_time=now,
                          start_time=None if waits else now, end_time=None, node_id=node_id, last_modified=now)
            claimed = Task.objects.filter(pk__in=[t.pk for t in tasks], state=TaskState.ACTIVE).update(
                previous_state_transition_time=F("state_transition_time"), attempt=F("attempt") + 1, **values)
            # The rows are this transaction's alone (row locks on PostgreSQL, the write
            # lock on SQLite), so the compare-and-set takes every one of them.
            if claimed != len(tasks):
                raise RuntimeError(f"claimed {claimed} of {len(tasks)} locked tasks")
            counts.apply(job.pk, counts.transition((TaskState.ACTIVE, None), (values["state"], None), claimed))
            for task in tasks:  # what the update wrote, without reading it back
                task.previous_state_transition_time = task.state_transition_time
                task.attempt += 1
                task.job = job
                for name, value in values.items():
                    setattr(task, name, value)
            return tasks
    return []


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
            if Task.objects.filter(pk=task.pk, state=TaskState.PREPARING, attempt=task.attempt).update(
                    state=TaskState.RUNNING, previous_state=TaskState.PREPARING,
                    previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
                    start_time=now, last_modified=now):
                task.previous_state_transition_time = task.state_transition_time
                task.previous_state, task.state = TaskState.PREPARING, TaskState.RUNNING
                task.state_transition_time = task.last_modified = task.start_time = now
                started.append(task)
    return started


class Deltas:
    """What one transaction did to its jobs, applied once per job at its end.

    The count changes, then the job actions the tasks' exit conditions asked for,
    then `settle_job` for each job touched (a disabling job whose last task ended
    becomes disabled; onAllTasksComplete terminatejob ends a job whose tasks are
    all completed).
    """

    def __init__(self):
        self.by_job: dict[int, dict[str, float]] = {}
        self.job_actions: dict[int, str] = {}

    def add(self, job_pk: int, delta: dict[str, float]) -> None:
        """Count changes, and the job's statistics (stats.JOB_FIELDS): added to the same shard row."""
        total = self.by_job.setdefault(job_pk, dict.fromkeys(counts.FIELDS, 0))
        for k, v in delta.items():
            total[k] = total.get(k, 0) + v

    def act(self, job_pk: int, action: str) -> None:
        # Ending the job outranks disabling it when several tasks ask for both.
        if self.job_actions.get(job_pk) in (None, "disable"):
            self.job_actions[job_pk] = action

    def apply(self) -> None:
        from jobs.services import disable_job, settle_job, terminate_job

        for job_pk, delta in self.by_job.items():
            counts.apply(job_pk, delta)
        for job_pk, action in self.job_actions.items():
            try:
                if action == "terminate":
                    terminate_job(job=Job(pk=job_pk), reason="TaskFailed")
                elif action == "jobmanager-done":  # killJobOnCompletion
                    terminate_job(job=Job(pk=job_pk), reason="JMComplete")
                elif action == "disable":  # as Disable Job with disableTasks requeue, the docs say
                    disable_job(job=Job(pk=job_pk), disable_tasks="requeue")
            except BatchError:
                pass  # the job is no longer active: nothing left to do
        for job_pk in self.by_job:
            settle_job(Job(pk=job_pk))


def _complete(task: Task, attempt: int, deltas: Deltas, *, result: str, exit_code: int | None,
              failure: dict | None, usage: stats.Usage | None = None) -> bool:
    """Complete a run and carry out its exit conditions: dependents, then the job action."""
    now = timezone.now()
    task_stats, job_stats = stats.run_ended(task, usage, now, completed=True)
    done = Task.objects.filter(pk=task.pk, state__in=RUNNING_STATES, attempt=attempt).update(
        stats=task_stats,
        state=TaskState.COMPLETED, previous_state=F("state"),
        previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
        end_time=now, exit_code=exit_code, result=result, failure_info=failure, last_modified=now,
        run_time=run_time_until(now), files_expire_at=files_expire_after(now),
    )
    if not done:
        return False
    deltas.add(task.job_id, counts.transition((TaskState.RUNNING, None), (TaskState.COMPLETED, result)))
    deltas.add(task.job_id, job_stats)
    options = exits.options_for(task.exit_conditions, exit_code=exit_code, condition=exits.condition_of(failure))
    job = task.job
    if job.uses_task_dependencies and options.dependency_action == "satisfy":
        dependencies.satisfy(task)
    if (result == TaskResult.FAILURE and options.job_action != "none"
            and job.on_task_failure == OnTaskFailure.PERFORM_EXIT_OPTIONS_JOB_ACTION):
        deltas.act(job.pk, options.job_action)
    if task.kind == TaskKind.JOB_MANAGER and (job.job_manager_task or {}).get("killJobOnCompletion", True):
        deltas.act(job.pk, "jobmanager-done")  # the job ends with its manager, succeeded or failed
    return True


def effective_retry_limit(task: Task) -> int:
    if task.max_task_retry_count is not None:
        return task.max_task_retry_count
    return task.job.max_task_retry_count


@dataclass
class RunEnd:
    """How one run of a task ended, as the worker saw it."""

    task: Task
    attempt: int
    exit_code: int | None
    failure: dict | None = None  # a failure that is never retried
    usage: stats.Usage | None = None  # what the run used, as the worker measured it


def finish_tasks(ends: list[RunEnd]) -> list[str | None]:
    """Record the ends of several runs in one transaction; what became of each.

    Exit code 0 succeeds. A non-zero exit is retried while retries remain
    (maxTaskRetryCount, -1 for ever), else fails with FailureExitCode. A run with
    `failure` (the program could not start, the wall clock ran out) fails without
    retry. None for a run that was no longer current (terminated, requeued).
    A worker whose short tasks end together pays one commit and one count update
    per job, not one per task.
    """
    deltas = Deltas()
    with transaction.atomic():
        for job_pk in sorted({end.task.job_id for end in ends if end.task.job.uses_task_dependencies}):
            dependencies.hold_parents(job_pk)  # before any task row, as Terminate Job locks job then tasks
        outcomes = [_finish(end, deltas) for end in ends]
        deltas.apply()
    return outcomes


def finish_task(*, task: Task, attempt: int, exit_code: int | None, failure: dict | None = None) -> str | None:
    return finish_tasks([RunEnd(task, attempt, exit_code, failure)])[0]


def _finish(end: RunEnd, deltas: Deltas) -> str | None:
    task, attempt, exit_code, failure = end.task, end.attempt, end.exit_code, end.failure
    if failure is None and exit_code == 0:
        done = _complete(task, attempt, deltas, result=TaskResult.SUCCESS, exit_code=0, failure=None,
                         usage=end.usage)
        return "succeeded" if done else None
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
            retried = Task.objects.filter(pk=task.pk, state__in=RUNNING_STATES, attempt=attempt).update(
                stats=task_stats,
                state=TaskState.ACTIVE, previous_state=F("state"),
                previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
                exit_code=exit_code, retry_count=F("retry_count") + 1, last_retry_time=now,
                last_modified=now, run_time=run_time_until(now),
            )
            if retried:
                deltas.add(task.job_id, counts.transition((TaskState.RUNNING, None), (TaskState.ACTIVE, None)))
                deltas.add(task.job_id, job_stats)
                return "retried"
            return None
        failure = FAILURE_EXIT_CODE
    done = _complete(task, attempt, deltas, result=TaskResult.FAILURE, exit_code=exit_code, failure=failure,
                     usage=end.usage)
    return "failed" if done else None


def requeue_tasks(*, node_id: str, attempts: dict[int, int] | None = None) -> int:
    """Put running tasks of worker `node_id` back to active (requeueCount + 1).

    With `attempts` ({task pk: attempt}), only those runs; without, every task the
    worker holds (it stopped, or died and its heartbeat expired).
    """
    with transaction.atomic():
        running = Task.objects.filter(node_id=node_id, state__in=RUNNING_STATES)
        rows = list(running.values_list("pk", "job_id", "attempt"))
        if attempts is not None:
            rows = [r for r in rows if attempts.get(r[0]) == r[2]]
        now, total, deltas = timezone.now(), 0, Deltas()
        for pk, job_pk, attempt in rows:
            n = Task.objects.filter(pk=pk, state__in=RUNNING_STATES, attempt=attempt).update(
                state=TaskState.ACTIVE, previous_state=F("state"),
                previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
                requeue_count=F("requeue_count") + 1, last_requeue_time=now, last_modified=now,
            )
            if n:
                deltas.add(job_pk, counts.transition((TaskState.RUNNING, None), (TaskState.ACTIVE, None)))
                total += 1
        deltas.apply()
        return total


# --- operator actions -------------------------------------------------------------------


def terminate_task(*, task: Task) -> None:
    """Terminate Task: an active or running task completes as failed (TaskEnded).

    A running task's worker sees that its run is no longer current and kills it.
    """
    with transaction.atomic():
        now = timezone.now()
        for state in (TaskState.ACTIVE, *RUNNING_STATES):
            # A running task's run ends now; an active one keeps its last run's length.
            ran = {"run_time": run_time_until(now)} if state in RUNNING_STATES else {}
            done = Task.objects.filter(pk=task.pk, state=state).update(
                state=TaskState.COMPLETED, previous_state=state,
                previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
                end_time=now, result=TaskResult.FAILURE, failure_info=TASK_ENDED, last_modified=now,
                files_expire_at=files_expire_after(now), **ran,
            )
            if done:
                counts.apply(task.job_id, counts.transition((state, None), (TaskState.COMPLETED, TaskResult.FAILURE)))
                settle_job(Job(pk=task.job_id))
                return
        raise BatchError("TaskCompleted", "The specified task is already completed.", 409,
                         {"TaskId": task.batch_id})


def _move_running_tasks_of_job(job: Job, new: tuple[str, str | None], now, **values) -> int:
    """Move every running (or preparing) task of a job to `new` (state, result), with its counts."""
    total = 0
    for state in RUNNING_STATES:
        n = Task.objects.filter(job=job, state=state).update(
            state=new[0], previous_state=state, previous_state_transition_time=F("state_transition_time"),
            state_transition_time=now, last_modified=now, **values)
        if n:
            counts.apply(job.pk, counts.transition((state, None), new, n))
        total += n
    return total


def terminate_running_tasks_of_job(*, job: Job) -> int:
    """Complete every running task of a job as ended (Terminate Job, Disable Job with terminate)."""
    now = timezone.now()
    return _move_running_tasks_of_job(job, (TaskState.COMPLETED, TaskResult.FAILURE), now, end_time=now,
                                      result=TaskResult.FAILURE, failure_info=TASK_ENDED,
                                      run_time=run_time_until(now),
                                      files_expire_at=files_expire_after(now))


def requeue_running_tasks_of_job(*, job: Job) -> int:
    """Put every running task of a job back to active (Disable Job with requeue)."""
    now = timezone.now()
    return _move_running_tasks_of_job(job, (TaskState.ACTIVE, None), now, requeue_count=F("requeue_count") + 1,
                                      last_requeue_time=now)


def end_runs_of_ended_jobs() -> int:
    """End tasks still running in a job that has completed.

    On PostgreSQL a claim that commits just after Terminate Job ended the job's
    running tasks can leave a run behind; workers sweep for such strays in their
    housekeeping, and the worker running one then sees it ended and kills it.
    """
    ended = Job.objects.filter(state__in=[JobState.COMPLETED, JobState.TERMINATING],
                               tasks__state__in=RUNNING_STATES).distinct()
    total = 0
    for job in ended:
        with transaction.atomic():
            total += terminate_running_tasks_of_job(job=job)
    return total


def reactivated(now) -> dict:
    """What reactivation writes: active again, the last run's outcome cleared, retryCount 0."""
    return dict(
        state=TaskState.ACTIVE, previous_state=TaskState.COMPLETED,
        previous_state_transition_time=F("state_transition_time"), state_transition_time=now,
        start_time=None, end_time=None, run_time=None, exit_code=None, result="", failure_info=None,
        retry_count=0, last_retry_time=None, last_modified=now, files_expire_at=None, files_removed_at=None,
    )


def reactivate_task(*, task: Task) -> None:
    """Reactivate Task: a failed task of a live job goes back to active, retryCount 0.

    Per Batch: fails for tasks not completed or completed successfully, and for
    jobs completed, terminating or deleting. Exit code and failure info are cleared.
    """
    with transaction.atomic():
        lock_open_job(task.job)
        now = timezone.now()
        failed = Task.objects.filter(pk=task.pk, state=TaskState.COMPLETED, result=TaskResult.FAILURE)
        for parent in failed.filter(satisfies_dependents=True).only("pk", "job_id", "key", "int_id"):
            dependencies.unsatisfy(parent)  # it failed with satisfy; running again, it counts no more
        done = failed.update(**reactivated(now))
        if not done:
            current = Task.objects.filter(pk=task.pk).values_list("state", flat=True).first()
            if current != TaskState.COMPLETED:
                raise BatchError("TaskNotCompleted", "Only a completed task can be reactivated.", 409,
                                 {"TaskId": task.batch_id})
            raise BatchError("TaskCompletedSuccessfully",
                             "A task that completed successfully cannot be reactivated.", 409,
                             {"TaskId": task.batch_id})
        counts.apply(task.job_id,
                     counts.transition((TaskState.COMPLETED, TaskResult.FAILURE), (TaskState.ACTIVE, None)))


def reactivate_failed_tasks(*, job: Job, pks: list[int] | None = None) -> int:
    """Reactivate every failed task of a job (or those of `pks`) in one transaction.

    The dashboard's "rerun failed": one update and one count change however
    many tasks failed. Tasks that are not failed are left as they are.
    """
    with transaction.atomic():
        lock_open_job(job)
        now = timezone.now()
        failed = Task.objects.filter(job_id=job.pk, state=TaskState.COMPLETED, result=TaskResult.FAILURE)
        if pks is not None:
            failed = failed.filter(pk__in=pks)
        for parent in failed.filter(satisfies_dependents=True).only("pk", "job_id", "key", "int_id"):
            dependencies.unsatisfy(parent)
        n = failed.update(**reactivated(now))
        if n:
            counts.apply(job.pk, counts.transition((TaskState.COMPLETED, TaskResult.FAILURE),
                                                   (TaskState.ACTIVE, None), n))
        return n


def delete_task(*, task: Task) -> None:
    """Delete Task: the row, its share of the counts, and (after commit) its files.

    A running task's worker finds its run gone and kills it.
    """
    with transaction.atomic():
        dependencies.hold_parents(task.job_id)
        row = Task.objects.select_for_update().filter(pk=task.pk).values("state", "result").first()
        if row is None:
            raise BatchError("TaskNotFound", "The specified task does not exist.", 404, {"TaskId": task.batch_id})
        parent = Task.objects.filter(pk=task.pk).only("pk", "job_id", "key", "int_id").get()
        dependencies.unsatisfy(parent)  # a parent that is gone no longer counts
        Task.objects.filter(pk=task.pk).delete()
        counts.apply(task.job_id, counts.scaled(counts.bucket(row["state"], row["result"]), -1))
        settle_job(Job(pk=task.job_id))
        directory = task_dir(task)
        transaction.on_commit(lambda: remove_tree(directory))


def update_task_constraints(*, task: Task, max_wall_clock_time: timedelta | None,
                            max_task_retry_count: int | None, retention_time: timedelta | None) -> None:
    """Update Task: Batch lets only the constraints change."""
    with transaction.atomic():
        n = Task.objects.filter(pk=task.pk).update(
            max_wall_clock_time=max_wall_clock_time, max_task_retry_count=max_task_retry_count,
            retention_time=retention_time, last_modified=timezone.now(),
        )
        if not n:
            raise BatchError("TaskNotFound", "The specified task does not exist.", 404, {"TaskId": task.batch_id})
        # A completed task's directory now lives as long as its new retentionTime says.
        Task.objects.filter(pk=task.pk, state=TaskState.COMPLETED, files_removed_at=None).update(
            files_expire_at=files_expire_after(F("end_time")))


def remove_expired_task_files(*, limit: int = 200) -> int:
    """Delete the directories of completed tasks whose retentionTime has passed (worker housekeeping).

    The rows stay; their files API then answers TaskFilesCleanedup. A task
    reactivated meanwhile is left alone (its expiry was cleared).
    """
    now = timezone.now()
    due = list(Task.objects.filter(files_expire_at__lte=now, files_removed_at=None)
               .select_related("job__account").only("pk", "batch_id", "job__batch_id", "job__account__name")
               .order_by("files_expire_at")[:limit])
    removed = 0
    for task in due:
        if Task.objects.filter(pk=task.pk, files_expire_at__lte=now, files_removed_at=None).update(
                files_removed_at=now):
            remove_tree(task_dir(task))
            removed += 1
    return removed


def current_runs(*, node_id: str, attempts: dict[int, int]) -> set[int]:
    """Of the runs a worker holds ({pk: attempt}), those still its to finish."""
    rows = Task.objects.filter(pk__in=list(attempts), node_id=node_id, state__in=RUNNING_STATES)
    return {pk for pk, attempt in rows.values_list("pk", "attempt") if attempts[pk] == attempt}
