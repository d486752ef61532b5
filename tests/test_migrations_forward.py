"""A database made by the previous release migrates forward with its jobs, tasks and counts intact.

The test database is taken back to the migrations of the previous release (commit
3cae19e), filled through that release's own models (the historical models of its
migration state), and migrated forward to the current migrations. Every row must
still be there, with its id and its values, read through the current models; and
the stored task counts must still equal the task table. Models are found by their
table, not by their app: a table keeps its name when its model moves to another app.

Workers' rows are the exception: a worker became a compute node of a pool, and
every worker restarts across an upgrade (the old code cannot run on the new
schema), so their rows go, and the tasks they held are requeued by the first sweep.
"""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from jobs.models import Job
from tasks import counts
from tasks.models import Task, TaskCountShard
from tasks.services.sweeps import requeue_dead_workers

# The migrations of the previous release (`git ls-tree -r 3cae19e --name-only | grep migrations/`).
PREVIOUS_MIGRATIONS = {
    ("accounts", "0001_accounts"),
    ("jobs", "0001_initial"), ("jobs", "0002_account"),
    *(("tasks", name) for name in (
        "0001_initial", "0002_dashboard", "0003_dependencies", "0004_job_manager", "0005_list_filter_indexes",
        "0006_key_prefix_indexes", "0007_claim_order_only_in_runnable_index", "0008_node_tasks",
        "0009_task_file_retention", "0010_run_statistics", "0011_task_in_job_index", "0012_worker_containment",
        "0013_blobs_per_account")),
}
PREVIOUS_LEAVES = [("accounts", "0001_accounts"), ("jobs", "0002_account"), ("tasks", "0013_blobs_per_account")]
# The apps with migrations in the previous release; an app added since is taken back to none.
PREVIOUS_APPS = {"admin", "auth", "authtoken", "axes", "contenttypes", "sessions", "accounts", "jobs", "tasks"}

# What is compared before and after, per table: the columns the previous release had.
COLUMNS = {
    "jobs_job": ["id", "account_id", "batch_id", "key", "display_name", "priority", "state", "previous_state",
                 "state_transition_time", "previous_state_transition_time", "start_time", "end_time",
                 "creation_time", "last_modified", "on_all_tasks_complete", "pool_info"],
    "tasks_task": ["id", "job_id", "batch_id", "key", "command_line", "state", "previous_state",
                   "state_transition_time", "result", "exit_code", "failure_info", "node_id", "attempt",
                   "retry_count", "start_time", "end_time", "creation_time", "last_modified", "stats"],
    "tasks_taskcountshard": ["id", "job_id", "shard", "active", "running", "completed", "succeeded", "failed",
                             "version", "wall_clock", "retries"],
    "tasks_nodetask": ["id", "job_id", "node_id", "kind", "state", "attempt", "start_time", "end_time",
                       "exit_code", "result"],
}
COUNT_FIELDS = ("active", "running", "completed", "succeeded", "failed")


def model_for_table(table: str):
    """The current model of a table, in whichever app it lives now."""
    [found] = [m for m in apps.get_models() if m._meta.db_table == table and not m._meta.proxy]
    return apps.get_model(found._meta.app_label, found._meta.object_name)


def migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


def back_to_the_previous_release():
    """Migrate back to the previous release's migrations; its models, as its migrations left them."""
    executor = MigrationExecutor(connection)
    added_apps = sorted(executor.loader.migrated_apps - PREVIOUS_APPS)
    executor.migrate(PREVIOUS_LEAVES + [(app, None) for app in added_apps])
    applied = set(MigrationRecorder(connection).applied_migrations())
    ours = {m for m in applied if m[0] in {"accounts", "jobs", "tasks"} or m[0] not in PREVIOUS_APPS}
    assert ours == PREVIOUS_MIGRATIONS
    return MigrationExecutor(connection).loader.project_state(PREVIOUS_LEAVES, at_end=True).apps


def fill(old) -> dict[int, dict[str, int]]:
    """An account, two jobs, their tasks in every state with their count shards, a worker and
    a job preparation on it, as the previous release wrote them. Returns the counts of each job."""
    now = timezone.now().replace(microsecond=123456)
    BatchAccount = old.get_model("accounts", "BatchAccount")
    OldJob, OldTask = old.get_model("jobs", "Job"), old.get_model("tasks", "Task")
    Shard, Worker, NodeTask = (old.get_model("tasks", name) for name in ("TaskCountShard", "Worker", "NodeTask"))

    account = BatchAccount.objects.create(name="upgraded", primary_key="key-1", secondary_key="key-2")
    times = {"state_transition_time": now, "start_time": now, "creation_time": now, "last_modified": now}
    running_job = OldJob.objects.create(account=account, batch_id="Nightly-Render", key="nightly-render",
                                        display_name="nightly", priority=7, pool_info={"poolId": "local"}, **times)
    done_job = OldJob.objects.create(account=account, batch_id="done", key="done", state="completed",
                                     previous_state="terminating", previous_state_transition_time=now,
                                     on_all_tasks_complete="terminatejob",
                                     end_time=now + timedelta(minutes=5), **times)

    def task(job, batch_id, state, **fields):
        return OldTask.objects.create(job=job, batch_id=batch_id, key=batch_id.lower(), command_line=f"echo {batch_id}",
                                      state=state, state_transition_time=now, creation_time=now, last_modified=now,
                                      **fields)

    ran = {"start_time": now - timedelta(minutes=2), "end_time": now - timedelta(minutes=1), "attempt": 1,
           "node_id": "node-1"}
    task(running_job, "Waiting", "active")
    task(running_job, "Retried", "active", retry_count=2, previous_state="running", attempt=2, node_id="node-1")
    task(running_job, "Preparing", "preparing", previous_state="active", node_id="node-1", attempt=1)
    task(running_job, "Running", "running", previous_state="active", node_id="node-1", attempt=1,
         start_time=now - timedelta(seconds=30))
    task(running_job, "Succeeded", "completed", result="success", exit_code=0,
         stats={"wallClockTime": 60.0, "userCPUTime": 1.5}, **ran)
    task(running_job, "Failed", "completed", result="failure", exit_code=3,
         failure_info={"category": "usererror", "code": "FailureExitCode", "message": "exit code 3"}, **ran)
    task(done_job, "a", "completed", result="success", exit_code=0, **ran)
    task(done_job, "b", "completed", result="success", exit_code=0, **ran)
    task(done_job, "c", "completed", result="failure", exit_code=1, **ran)

    # Sharded as workers leave them: one shard's numbers may be negative, only the sums count.
    expected = {running_job.pk: {"active": 2, "running": 2, "completed": 2, "succeeded": 1, "failed": 1},
                done_job.pk: {"active": 0, "running": 0, "completed": 3, "succeeded": 2, "failed": 1}}
    shards = {
        running_job.pk: {0: {"active": 6, "version": 6}, 2: {"active": -4, "running": 3, "version": 9},
                         5: {"running": -1, "completed": 2, "succeeded": 1, "failed": 1, "version": 4,
                             "wall_clock": 120.0, "retries": 2}},
        done_job.pk: {1: {"active": 3, "version": 3},
                      7: {"active": -3, "completed": 3, "succeeded": 2, "failed": 1, "version": 5}},
    }
    for job_pk, by_shard in shards.items():
        for i in range(8):
            Shard.objects.create(job_id=job_pk, shard=i, **by_shard.get(i, {}))
        sums = {f: sum(s.get(f, 0) for s in by_shard.values()) for f in COUNT_FIELDS}
        assert sums == expected[job_pk]  # the test's own arithmetic

    Worker.objects.create(name="node-1", hostname="render-host", pid=4242, slots=2, state="running",
                          started_at=now - timedelta(hours=1), heartbeat_at=now, confined=True,
                          containment="bubblewrap, as batchsite-task", process_key="boot-1/ns-1/4242/99")
    NodeTask.objects.create(job=running_job, node_id="node-1", kind="preparation", state="completed", attempt=1,
                            start_time=now - timedelta(minutes=3), end_time=now - timedelta(minutes=2), exit_code=0,
                            result="success")
    return expected


def rows(model, table: str) -> list[dict]:
    return list(model.objects.order_by("id").values(*COLUMNS[table]))


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_previous_release_migrates_forward_with_its_jobs_tasks_and_counts():
    try:
        old = back_to_the_previous_release()
        expected = fill(old)
        old_models = {"jobs_job": old.get_model("jobs", "Job"), "tasks_task": old.get_model("tasks", "Task"),
                      "tasks_taskcountshard": old.get_model("tasks", "TaskCountShard"),
                      "tasks_nodetask": old.get_model("tasks", "NodeTask")}
        before = {table: rows(model, table) for table, model in old_models.items()}

        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

        current = {"jobs_job": Job, "tasks_task": Task, "tasks_taskcountshard": TaskCountShard,
                   "tasks_nodetask": model_for_table("tasks_nodetask")}
        assert {table: model._meta.db_table for table, model in current.items()} == {t: t for t in current}
        after = {table: rows(model, table) for table, model in current.items()}
        assert [len(before[t]) for t in COLUMNS] == [2, 9, 16, 1]
        assert "tasks_worker" not in connection.introspection.table_names()
        # Each job runs in the pool its poolInfo named, or the default pool.
        assert dict(Job.objects.values_list("batch_id", "pool_key")) == {"Nightly-Render": "local", "done": "local"}
        for table in COLUMNS:
            assert after[table] == before[table], table

        versions = {job_pk: sum(r["version"] for r in before["tasks_taskcountshard"] if r["job_id"] == job_pk)
                    for job_pk in expected}
        for job_pk, stored in expected.items():
            read, actual = counts.read(job_pk), counts.actual(job_pk)
            assert {f: getattr(read, f) for f in COUNT_FIELDS} == stored
            assert {f: getattr(actual, f) for f in COUNT_FIELDS} == stored
            assert read.version == versions[job_pk]

        # The tasks left running on the old worker "node-1", in no pool now, go back to the queue.
        assert requeue_dead_workers() == 2
        assert set(Task.objects.filter(node_id="node-1", state__in=["preparing", "running"])) == set()
        for job_pk in expected:
            assert counts.read(job_pk).as_dict() == counts.actual(job_pk).as_dict()
    finally:
        # Whatever happened, the next test finds the database as the suite made it.
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
