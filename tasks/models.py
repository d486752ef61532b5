"""Tasks, their per-job count rows, and the runs of a job's preparation and release tasks on nodes.

Nothing here changes state: the services (`tasks.services`) own every write,
through `jobs.transitions.move`, which keeps the count rows exact in the same
transaction as the task rows they count.
"""

from django.db import models
from django.db.models import F, Q

from batchapi.ids import batch_id_validator
from jobs.models import Job, StateTracked


class TaskState(models.TextChoices):
    ACTIVE = "active"
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETED = "completed"


# Both count as running: a preparing task holds its node while the job's preparation runs there.
RUNNING_STATES = (TaskState.PREPARING, TaskState.RUNNING)


class TaskResult(models.TextChoices):
    SUCCESS = "success"
    FAILURE = "failure"


class TaskKind(models.TextChoices):
    TASK = "task"
    JOB_MANAGER = "jobmanager"  # made by Add Job from jobManagerTask


class Task(StateTracked):
    # Indexed by task_in_job (job, id), which also keeps a job's tasks in id order.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks", db_index=False)
    kind = models.CharField(max_length=16, choices=TaskKind.choices, default=TaskKind.TASK,
                            db_default=TaskKind.TASK)
    batch_id = models.CharField("id", max_length=64, validators=[batch_id_validator])
    key = models.CharField(max_length=64, editable=False)
    display_name = models.CharField(max_length=1024, blank=True, default="")
    command_line = models.TextField()

    environment_settings = models.JSONField(default=list, blank=True)
    # constraints; null max_wall_clock_time / retention_time mean "the default".
    max_wall_clock_time = models.DurationField(null=True, blank=True)
    # null: the job's maxTaskRetryCount; -1: retry for ever.
    max_task_retry_count = models.IntegerField(null=True, blank=True)
    retention_time = models.DurationField(null=True, blank=True)

    # The rest of the Add Task body, stored as sent; later issues act on them.
    depends_on = models.JSONField(null=True, blank=True)
    exit_conditions = models.JSONField(null=True, blank=True)
    resource_files = models.JSONField(default=list, blank=True)
    output_files = models.JSONField(default=list, blank=True)
    user_identity = models.JSONField(null=True, blank=True)
    affinity_info = models.JSONField(null=True, blank=True)
    container_settings = models.JSONField(null=True, blank=True)
    multi_instance_settings = models.JSONField(null=True, blank=True)
    application_package_references = models.JSONField(default=list, blank=True)
    authentication_token_settings = models.JSONField(null=True, blank=True)
    required_slots = models.IntegerField(default=1)

    # Dependencies (tasks.dependencies): the tasks of a job with the same dependsOn
    # share a group; `waiting` is true while some parent of the group is not done.
    # A waiting task is active (Batch counts it so) but never claimed.
    dependency_group = models.ForeignKey("DependencyGroup", null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="tasks")
    waiting = models.BooleanField(default=False, db_default=False)  # db_default: bulk SQL inserts
    # The id as an integer, for the taskIdRanges that name it; null for other ids.
    int_id = models.BigIntegerField(null=True, blank=True)
    # Set while this task's completion counts as done for its dependents
    # (dependencyAction satisfy), so a reactivation or delete can take it back.
    satisfies_dependents = models.BooleanField(default=False, db_default=False)

    state = models.CharField(max_length=16, choices=TaskState.choices, default=TaskState.ACTIVE)
    previous_state = models.CharField(max_length=16, choices=TaskState.choices, blank=True, default="")

    # executionInfo
    start_time = models.DateTimeField(null=True, blank=True)
    end_time = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    result = models.CharField(max_length=8, choices=TaskResult.choices, blank=True, default="")
    failure_info = models.JSONField(null=True, blank=True)
    # end_time - start_time of the last run, stored so the dashboard's duration
    # charts bucket it with plain comparisons in the database.
    run_time = models.DurationField(null=True, blank=True)
    retry_count = models.IntegerField(default=0)
    last_retry_time = models.DateTimeField(null=True, blank=True)
    requeue_count = models.IntegerField(default=0)
    last_requeue_time = models.DateTimeField(null=True, blank=True)

    # nodeInfo: the worker running (or last to run) the task. `attempt` moves on
    # every claim, so a worker can only finish the run it claimed.
    node_id = models.CharField(max_length=128, blank=True, default="")
    attempt = models.IntegerField(default=0)

    # When the task's directory may go (its end plus retentionTime, set when it
    # completes) and when the worker housekeeping removed it.
    files_expire_at = models.DateTimeField(null=True, blank=True)
    files_removed_at = models.DateTimeField(null=True, blank=True)
    # What its runs used (tasks.stats): CPU, wall clock, I/O; None before the first ends.
    stats = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            # Also the index of the dashboard's id-prefix search (a range on `key`).
            models.UniqueConstraint(fields=["job", "key"], name="task_key_unique_in_job"),
        ]
        indexes = [
            # Claiming: the oldest runnable tasks of one job. Tasks waiting for their
            # parents are not in it, so 100,000 of them cost a claim nothing. The claim
            # orders by `id + 0`, which no other index supplies: ordered
            # by plain id, PostgreSQL could walk the primary key instead, and with
            # statistics older than the job it did, past a million rows a claim.
            models.Index(F("job"), F("id") + 0, name="task_runnable_in_job",
                         condition=Q(state="active", waiting=False)),
            # A job's tasks in creation order: unfiltered task lists (keyset pages on id),
            # the dashboard's table, and id-prefix searches whose prefix is common.
            models.Index(fields=["job", "id"], name="task_in_job"),
            # Releasing a group whose parents are all done.
            models.Index(fields=["dependency_group"], name="task_waiting_in_group", condition=Q(waiting=True)),
            # The parents of a new group that are done already, by integer id range.
            models.Index(fields=["job", "int_id"], name="task_int_id", condition=Q(int_id__isnull=False)),
            # Task lists filtered by state, result or exit code, in creation order
            # (keyset paging on id): each filter's first page is an index range.
            models.Index(fields=["job", "state", "id"], name="task_job_state"),
            models.Index(fields=["job", "result", "id"], name="task_job_result"),
            models.Index(fields=["job", "exit_code", "id"], name="task_job_exit_code"),
            # Live task rows: the rows of a page changed since the last push.
            models.Index(fields=["job", "last_modified"], name="task_job_modified"),
            # The retention sweep: directories due for removal, oldest first.
            models.Index(fields=["files_expire_at"], name="task_files_expiring",
                         condition=Q(files_expire_at__isnull=False, files_removed_at__isnull=True)),
            # The job page's node timeline: the runs of a job's last stretch of time.
            models.Index(fields=["job", "start_time"], name="task_job_started", condition=Q(start_time__isnull=False)),
            # A node's recent tasks (Get Node's recentTasks), newest first.
            models.Index(fields=["node_id", "-start_time"], name="task_recent_on_node",
                         condition=Q(start_time__isnull=False)),
            # Requeueing the running tasks of a dead worker; a worker's check of its runs.
            models.Index(
                fields=["node_id"], name="task_running_on_node",
                condition=Q(state__in=["preparing", "running"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.batch_id}"


class DependencyGroup(models.Model):
    """What a set of tasks waits for: the tasks of a job whose dependsOn is the same.

    `needed` is the number of parent ids (explicit ids and every id of each range,
    overlaps counted once); `satisfied` how many of them completed with
    dependencyAction satisfy. The group's tasks may run when the two are equal.
    Sharing one group is what keeps 100,000 tasks on one range cheap: a parent's
    completion moves one counter, not 100,000.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dependency_groups")
    signature = models.CharField(max_length=64)  # sha256 of the normalised dependsOn
    needed = models.BigIntegerField()
    satisfied = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "signature"], name="dependency_group_unique"),
        ]


class DependencyEdge(models.Model):
    """An explicit parent id of a group: found by (job, parent key) when the parent completes."""

    group = models.ForeignKey(DependencyGroup, on_delete=models.CASCADE, related_name="edges")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    parent_key = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["job", "parent_key"], name="dependency_edge_parent")]


class DependencyRange(models.Model):
    """A taskIdRanges entry of a group (inclusive), found by the parent's integer id."""

    group = models.ForeignKey(DependencyGroup, on_delete=models.CASCADE, related_name="ranges")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    start = models.BigIntegerField()
    end = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["job", "start", "end"], name="dependency_range_start")]


class TaskCountShard(models.Model):
    """One of a few rows per job whose sums are the job's task counts.

    Each transaction adds its deltas to one shard picked at random, so workers
    finishing tasks of the same job rarely wait on each other's row lock. A shard's
    own numbers may be negative; only the sums mean anything. `version` moves on
    every change, so the sum of versions tells a watcher that something changed.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="count_shards")
    shard = models.SmallIntegerField()
    active = models.BigIntegerField(default=0)
    running = models.BigIntegerField(default=0)  # preparing + running
    completed = models.BigIntegerField(default=0)
    succeeded = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    version = models.BigIntegerField(default=0)
    # Slots beyond one a task (requiredSlots - 1), by the same buckets (tasks.counts.EXTRA).
    active_extra_slots = models.BigIntegerField(default=0, db_default=0)
    running_extra_slots = models.BigIntegerField(default=0, db_default=0)
    completed_extra_slots = models.BigIntegerField(default=0, db_default=0)
    succeeded_extra_slots = models.BigIntegerField(default=0, db_default=0)
    failed_extra_slots = models.BigIntegerField(default=0, db_default=0)
    # The job's statistics (tasks.stats.JOB_FIELDS): sums over its tasks' runs.
    user_cpu = models.FloatField(default=0, db_default=0)
    kernel_cpu = models.FloatField(default=0, db_default=0)
    wall_clock = models.FloatField(default=0, db_default=0)
    wait_time = models.FloatField(default=0, db_default=0)
    read_iops = models.BigIntegerField(default=0, db_default=0)
    write_iops = models.BigIntegerField(default=0, db_default=0)
    retries = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "shard"], name="count_shard_unique"),
        ]


class CountSample(models.Model):
    """A job's counts at one second, for the dashboard's counts-over-time chart.

    Recorded by `counts.apply` at most once a second per job (unique on job and
    second; each process also remembers what it sampled). Housekeeping thins old
    samples (`level` says to which resolution), so a week-long job keeps a few
    thousand rows, not 600,000.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="count_samples")
    at = models.DateTimeField()
    active = models.BigIntegerField()
    running = models.BigIntegerField()
    completed = models.BigIntegerField()
    succeeded = models.BigIntegerField()
    failed = models.BigIntegerField()
    level = models.SmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "at"], name="count_sample_unique_second"),
        ]
        indexes = [
            # Thinning: the samples of a resolution older than its cutoff.
            models.Index(fields=["level", "at"], name="count_sample_level_at"),
        ]


class NodeTaskKind(models.TextChoices):
    PREPARATION = "preparation"
    RELEASE = "release"


class NodeTaskState(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"


class NodeTask(models.Model):
    """A job's preparation or release task as it ran on one worker (Batch's node).

    One row per (job, worker, kind): Batch runs the Job Preparation Task once on
    each node before the first task of the job there, and the Job Release Task on
    each of those nodes when the job ends. `attempt` moves on every start, so a
    late report of an earlier run changes nothing (as for tasks).
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="node_tasks", db_index=False)
    node_id = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=NodeTaskKind.choices)
    state = models.CharField(max_length=16, choices=NodeTaskState.choices)
    attempt = models.IntegerField(default=0)
    start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    result = models.CharField(max_length=8, choices=TaskResult.choices, blank=True, default="")
    failure_info = models.JSONField(null=True, blank=True)
    retry_count = models.IntegerField(default=0)
    last_retry_time = models.DateTimeField(null=True, blank=True)
    # A preparation that failed for good with waitForSuccess: the claim passes this
    # job by on this node ("the node remains ineligible to run tasks of this job").
    refuses_job = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "node_id", "kind"], name="node_task_unique"),
        ]
        indexes = [models.Index(fields=["node_id", "kind"], name="node_task_on_node")]

    def __str__(self) -> str:
        return f"{self.job_id}/{self.kind}@{self.node_id}"
