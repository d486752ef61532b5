"""Pools: Azure Batch's pools of compute nodes, the resource a job names in poolInfo.

Nothing here changes state: `jobs.transitions.move` makes every state change,
called by the services (`pools.services`).
"""

from datetime import timedelta

from django.db import models
from django.db.models import Q

from batchapi.ids import batch_id_validator
from jobs.models import StateTracked


class PoolState(models.TextChoices):
    ACTIVE = "active"
    DELETING = "deleting"


class AllocationState(models.TextChoices):
    STEADY = "steady"  # the pool has its target nodes, or is not trying to
    RESIZING = "resizing"  # nodes are being added or removed
    STOPPING = "stopping"  # Stop Resize: the resize is being stopped


class NodeFillType(models.TextChoices):
    SPREAD = "spread"  # tasks spread evenly across the pool's nodes
    PACK = "pack"  # a node takes as many tasks as its slots before the next gets any


DEFAULT_RESIZE_TIMEOUT = timedelta(minutes=15)  # Batch's default; its minimum is 5 minutes


class Pool(StateTracked):
    account = models.ForeignKey("accounts.BatchAccount", on_delete=models.PROTECT, related_name="pools")
    # The Batch id keeps its case; `key` (lower-cased) makes it unique in its account.
    batch_id = models.CharField("id", max_length=64, validators=[batch_id_validator])
    key = models.CharField(max_length=64, editable=False)
    display_name = models.CharField(max_length=1024, blank=True, default="")
    state = models.CharField(max_length=16, choices=PoolState.choices, default=PoolState.ACTIVE)
    previous_state = models.CharField(max_length=16, choices=PoolState.choices, blank=True, default="")

    # What a node of the pool is: `vm_size` names it (Batch requires it); the
    # provider that makes nodes maps it to resources.
    vm_size = models.CharField(max_length=64)
    task_slots_per_node = models.IntegerField(default=1)
    node_fill_type = models.CharField(max_length=8, choices=NodeFillType.choices, default=NodeFillType.SPREAD)
    start_task = models.JSONField(null=True, blank=True)

    # How many nodes it should have, and how that is going.
    target_dedicated_nodes = models.IntegerField(default=0)
    target_low_priority_nodes = models.IntegerField(default=0)
    resize_timeout = models.DurationField(default=DEFAULT_RESIZE_TIMEOUT)
    allocation_state = models.CharField(max_length=16, choices=AllocationState.choices,
                                        default=AllocationState.STEADY)
    allocation_state_transition_time = models.DateTimeField()
    resize_errors = models.JSONField(default=list, blank=True)
    # What the nodes a resize lets go do with their running tasks (nodeDeallocationOption).
    resize_deallocation = models.CharField(max_length=16, blank=True, default="requeue")
    # The last resize was stopped (Stop Resize) or ran out of time: the pool keeps the nodes it
    # has, short of its targets, until the next resize; it is not refilled when a node goes.
    resize_stopped = models.BooleanField(default=False)
    enable_auto_scale = models.BooleanField(default=False)
    auto_scale_formula = models.TextField(blank=True, default="")
    auto_scale_evaluation_interval = models.DurationField(null=True, blank=True)

    metadata = models.JSONField(default=list, blank=True)
    # The Add Pool properties that describe Azure's machines (virtualMachineConfiguration,
    # networkConfiguration, mountConfiguration, userAccounts, ...): kept as sent and
    # returned, so an Azure pool definition round-trips; no node here acts on them.
    azure_settings = models.JSONField(default=dict, blank=True)

    # Which provider makes its nodes (the allocator's `pools.providers`): "local" starts
    # worker processes on this machine.
    provider = models.CharField(max_length=16, default="local")
    # A pool Batchsite made itself because a job named it (BATCHSITE_AUTO_POOLS): for which job.
    made_for_job = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="pool_key_unique_in_account"),
            models.CheckConstraint(condition=Q(task_slots_per_node__gte=1, task_slots_per_node__lte=256),
                                   name="pool_task_slots_range"),
            models.CheckConstraint(condition=Q(target_dedicated_nodes__gte=0, target_low_priority_nodes__gte=0),
                                   name="pool_targets_not_negative"),
        ]

    def __str__(self) -> str:
        return self.batch_id


# A node's id names its directories on the host: letters, digits, '_', '-' and '.', never
# starting with a dot (so never '.' or '..'); a host name (with its domain) is one.
NODE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"


class NodeState(models.TextChoices):
    """Batch's compute node states; the ones a node here can be in."""

    CREATING = "creating"  # the provider is making it (a process starting, a pilot job queued)
    STARTING = "starting"  # made, its agent not yet reporting
    WAITING_FOR_START_TASK = "waitingforstarttask"  # its start task runs, and must succeed first
    START_TASK_FAILED = "starttaskfailed"  # that start task failed: no task is scheduled here
    IDLE = "idle"
    RUNNING = "running"  # runs at least one task
    OFFLINE = "offline"  # scheduling disabled, and nothing left running
    UNUSABLE = "unusable"
    UNKNOWN = "unknown"  # its heartbeat stopped: lost, its tasks requeued
    LEAVING_POOL = "leavingpool"  # removed or stopping: it takes no task and goes once empty
    REBOOTING = "rebooting"
    PREEMPTED = "preempted"


# The states in which a node's agent is alive and beats its heartbeat.
AGENT_STATES = (NodeState.WAITING_FOR_START_TASK, NodeState.START_TASK_FAILED, NodeState.IDLE, NodeState.RUNNING,
                NodeState.OFFLINE, NodeState.LEAVING_POOL, NodeState.REBOOTING)
# The states in which a node takes tasks (its scheduling state must also be enabled).
SCHEDULABLE_STATES = (NodeState.IDLE, NodeState.RUNNING)


class SchedulingState(models.TextChoices):
    ENABLED = "enabled"
    DISABLED = "disabled"


class ComputeNode(StateTracked):
    """A compute node of a pool: one `manage.py worker` process, the node agent.

    Its id (`name`) is unique across pools, as the task rows and the job's
    preparation and release rows name the node they ran on. The row lives while the
    node is in its pool: a node that leaves is deleted, as Batch forgets it; one whose
    heartbeat stopped stays, `unknown`, until it is removed or comes back.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField("id", max_length=128, unique=True)
    state = models.CharField(max_length=24, choices=NodeState.choices, default=NodeState.CREATING)
    previous_state = models.CharField(max_length=24, choices=NodeState.choices, blank=True, default="")
    scheduling_state = models.CharField(max_length=16, choices=SchedulingState.choices,
                                        default=SchedulingState.ENABLED)
    is_dedicated = models.BooleanField(default=True)
    vm_size = models.CharField(max_length=64)
    slots = models.IntegerField()
    # Who made it: the allocator's provider (which then owns its end), or a person who
    # started `manage.py worker --pool` by hand ("", never stopped by the allocator).
    provider = models.CharField(max_length=16, blank=True, default="")
    provider_handle = models.CharField(max_length=128, blank=True, default="")  # a pid, a Slurm job id

    allocation_time = models.DateTimeField()
    last_boot_time = models.DateTimeField(null=True, blank=True)
    ip_address = models.CharField(max_length=64, blank=True, default="")
    total_tasks_run = models.BigIntegerField(default=0)
    total_tasks_succeeded = models.BigIntegerField(default=0)
    # What the node runs now, as its agent reports it with each claim, run end and heartbeat.
    running_tasks_count = models.IntegerField(default=0)
    running_task_slots_count = models.IntegerField(default=0)
    start_task_info = models.JSONField(null=True, blank=True)
    errors = models.JSONField(default=list, blank=True)
    # What a leaving node does with its running tasks (nodeDeallocationOption), once asked to leave.
    deallocation = models.CharField(max_length=16, blank=True, default="")

    # The agent process: which one it is, whether it lives, how it confines tasks.
    hostname = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    process_key = models.CharField(max_length=120, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    confined = models.BooleanField(default=True)
    containment = models.CharField(max_length=200, blank=True, default="")
    agent_version = models.CharField(max_length=32, blank=True, default="")
    # What the heartbeat last said of the host (cpu %, memory %, load): the node page's chart.
    usage = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["pool", "name"], name="node_in_pool"),
            # The claim's look at the pool's other nodes (nodeFillType): least and most busy first.
            models.Index(fields=["pool", "running_tasks_count"], name="node_tasks_in_pool",
                         condition=Q(state__in=["idle", "running"], scheduling_state="enabled")),
            models.Index(fields=["pool", "-running_task_slots_count"], name="node_slots_in_pool",
                         condition=Q(state__in=["idle", "running"], scheduling_state="enabled")),
            # Finding lost nodes: agents whose heartbeat is old.
            models.Index(fields=["heartbeat_at"], name="node_agent_heartbeat",
                         condition=Q(state__in=[s.value for s in AGENT_STATES])),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def takes_tasks(self) -> bool:
        return self.state in SCHEDULABLE_STATES and self.scheduling_state == SchedulingState.ENABLED


class NodeStateColumns(models.Model):
    """A number of nodes for each node state (`node_counts.STATES`): a column each."""

    creating = models.IntegerField(default=0)
    starting = models.IntegerField(default=0)
    waitingforstarttask = models.IntegerField(default=0)
    starttaskfailed = models.IntegerField(default=0)
    idle = models.IntegerField(default=0)
    running = models.IntegerField(default=0)
    offline = models.IntegerField(default=0)
    unusable = models.IntegerField(default=0)
    unknown = models.IntegerField(default=0)
    leavingpool = models.IntegerField(default=0)
    rebooting = models.IntegerField(default=0)
    preempted = models.IntegerField(default=0)

    class Meta:
        abstract = True


class NodeCountShard(NodeStateColumns):
    """One of a few rows per (pool, dedicated or not) whose sums are the pool's nodes by state.

    As the task counts (`tasks.models.TaskCountShard`): changed only by
    `jobs.transitions`, in the transaction that changes the node rows, on a shard
    picked at random; only the sums mean anything.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="node_count_shards")
    is_dedicated = models.BooleanField()
    shard = models.SmallIntegerField()
    version = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pool", "is_dedicated", "shard"], name="node_count_shard_unique"),
        ]


class NodeCountSample(NodeStateColumns):
    """A pool's nodes by state (dedicated and low-priority together) at the end of one second,
    for the pool page's nodes-over-time chart.

    Written by `node_counts.apply` in the transaction that changes the counts: one row per
    pool and second (unique), which later changes of that second amend. Housekeeping thins
    old samples (`level` says to which resolution), as it does the task counts' samples.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="count_samples")
    at = models.DateTimeField()
    level = models.SmallIntegerField(default=0)

    class Meta:
        constraints = [
            # One row a second: the amendments of that second find it by this index.
            models.UniqueConstraint(fields=["pool", "at"], name="node_count_sample_unique_second"),
        ]
        indexes = [
            # Thinning: the samples of a resolution older than its cutoff.
            models.Index(fields=["level", "at"], name="node_count_sample_level_at"),
        ]
