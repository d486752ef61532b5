"""Jobs: Azure Batch's job resource, and the state bookkeeping jobs and tasks share.

Nothing here changes state: `jobs.transitions.move` makes every state change,
called by the services (`jobs.services`, `tasks.services`).
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from batchapi.ids import batch_id_validator


class JobState(models.TextChoices):
    ACTIVE = "active"
    DISABLING = "disabling"
    DISABLED = "disabled"
    ENABLING = "enabling"
    TERMINATING = "terminating"
    COMPLETED = "completed"
    DELETING = "deleting"


# States in which a job takes new tasks and changes.
OPEN_STATES = (JobState.ACTIVE, JobState.DISABLING, JobState.DISABLED, JobState.ENABLING)


class StateTracked(models.Model):
    """The state bookkeeping of a Batch resource: its state, the one before, when each began.

    Subclasses narrow `state` and `previous_state` to their own choices; only
    `jobs.transitions.move` writes these fields after creation.
    """

    state = models.CharField(max_length=16)
    state_transition_time = models.DateTimeField()
    previous_state = models.CharField(max_length=16, blank=True, default="")
    previous_state_transition_time = models.DateTimeField(null=True, blank=True)
    creation_time = models.DateTimeField()
    last_modified = models.DateTimeField()

    class Meta:
        abstract = True

    @property
    def etag(self) -> str:
        return etag_for(self.last_modified)


def pool_id_of(pool_info: dict | None) -> str:
    """The pool a job's tasks run in: the one its poolInfo names, or the default pool."""
    return (pool_info or {}).get("poolId") or settings.BATCHSITE_DEFAULT_POOL


def etag_for(moment) -> str:
    """Batch-style ETag ("0x8D...") from the last-modified time, to the microsecond."""
    return f"0x{int(moment.timestamp() * 1_000_000):X}"


class OnAllTasksComplete(models.TextChoices):
    NO_ACTION = "noaction"
    TERMINATE_JOB = "terminatejob"


class OnTaskFailure(models.TextChoices):
    NO_ACTION = "noaction"
    PERFORM_EXIT_OPTIONS_JOB_ACTION = "performexitoptionsjobaction"


class Job(StateTracked):
    account = models.ForeignKey("accounts.BatchAccount", on_delete=models.PROTECT, related_name="jobs")
    # The Batch id keeps its case; `key` (lower-cased) makes it unique in its account
    # without regard to case.
    batch_id = models.CharField("id", max_length=64, validators=[batch_id_validator])
    key = models.CharField(max_length=64, editable=False)
    display_name = models.CharField(max_length=1024, blank=True, default="")
    priority = models.IntegerField(
        default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)]
    )
    max_parallel_tasks = models.IntegerField(default=-1)
    allow_task_preemption = models.BooleanField(default=False)

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.ACTIVE)
    previous_state = models.CharField(max_length=16, choices=JobState.choices, blank=True, default="")

    # constraints; null max_wall_clock_time means unlimited.
    max_wall_clock_time = models.DurationField(null=True, blank=True)
    max_task_retry_count = models.IntegerField(default=0)

    on_all_tasks_complete = models.CharField(
        max_length=16, choices=OnAllTasksComplete.choices, default=OnAllTasksComplete.NO_ACTION
    )
    on_task_failure = models.CharField(
        max_length=32, choices=OnTaskFailure.choices, default=OnTaskFailure.NO_ACTION
    )
    uses_task_dependencies = models.BooleanField(default=False)

    # Stored as the wire sends them: [{"name", "value"}], and the Batch sub-objects
    # that later issues act on (pool, manager/preparation/release tasks, ...).
    common_environment_settings = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=list, blank=True)
    pool_info = models.JSONField(default=dict, blank=True)
    # The pool its tasks run in: poolInfo.poolId lower-cased (pool ids ignore case), or
    # the default pool's. A key, not a link: a job may name a pool made after it, and
    # outlives a pool deleted under it (its tasks then wait).
    pool_key = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The pool made for this job from poolInfo.autoPoolSpecification ("" when it names one).
    auto_pool_id = models.CharField(max_length=64, blank=True, default="", editable=False)
    job_manager_task = models.JSONField(null=True, blank=True)
    job_preparation_task = models.JSONField(null=True, blank=True)
    job_release_task = models.JSONField(null=True, blank=True)
    network_configuration = models.JSONField(null=True, blank=True)

    # executionInfo
    start_time = models.DateTimeField()
    end_time = models.DateTimeField(null=True, blank=True)
    terminate_reason = models.CharField(max_length=256, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="job_key_unique_in_account"),
            models.CheckConstraint(
                condition=Q(priority__gte=-1000, priority__lte=1000), name="job_priority_range"
            ),
        ]
        indexes = [
            # The node's first question: which active job of its pool, by priority, has work?
            models.Index(
                fields=["account", "pool_key", "-priority", "id"], name="job_active_in_pool",
                condition=Q(state="active"),
            ),
            # Job lists filtered by state.
            models.Index(fields=["state", "id"], name="job_state"),
        ]

    def __str__(self) -> str:
        return self.batch_id

    @property
    def pool_id(self) -> str:
        """The pool its tasks run in: its auto pool, the one its poolInfo names, or the default pool."""
        return self.auto_pool_id or pool_id_of(self.pool_info)

    @property
    def is_open(self) -> bool:
        """Whether the job still takes new tasks and changes (not terminating, completed or deleting)."""
        return self.state in OPEN_STATES
