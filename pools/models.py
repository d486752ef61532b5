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
    enable_auto_scale = models.BooleanField(default=False)
    auto_scale_formula = models.TextField(blank=True, default="")
    auto_scale_evaluation_interval = models.DurationField(null=True, blank=True)

    metadata = models.JSONField(default=list, blank=True)
    # The Add Pool properties that describe Azure's machines (virtualMachineConfiguration,
    # networkConfiguration, mountConfiguration, userAccounts, ...): kept as sent and
    # returned, so an Azure pool definition round-trips; no node here acts on them.
    azure_settings = models.JSONField(default=dict, blank=True)

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
