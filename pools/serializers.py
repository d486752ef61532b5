"""Pools on the wire: the Add Pool, Patch Pool and Update Properties bodies in, the pool resource out."""

from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from rest_framework import serializers

from batchapi.errors import invalid_property
from batchapi.fields import (
    BatchIdField,
    EnumField,
    IntField,
    JSONListField,
    JSONObjectField,
    MetadataItemSerializer,
    StrictBooleanField,
    WireDurationField,
    validate_body,
)
from batchapi.odata import Prop
from batchapi.resources import render, selected_columns, tracked_properties
from batchapi.wire import drop_none, duration, iso
from tasks.serializers import NodeTaskSerializer, execution_info

from . import node_counts
from .models import AllocationState, ComputeNode, NodeFillType, NodeState, Pool, PoolState

MAX_SLOTS_PER_NODE = 256  # Batch's: min(4 x the node's cores, 256)
MAX_NODES = settings.BATCHSITE_MAX_NODES_PER_POOL  # each target, as an account's quota bounds it on Batch
MIN_RESIZE_TIMEOUT = timedelta(minutes=5)  # "less than 5 minutes ... returns an error" (Batch REST docs)
# autoScaleEvaluationInterval: 5 minutes to 168 hours, 15 minutes when not given (Batch REST docs).
AUTOSCALE_INTERVAL = (timedelta(minutes=5), timedelta(hours=168))
DEFAULT_AUTOSCALE_INTERVAL = timedelta(minutes=15)


def plain(value):
    """Validated data as JSON stores it: plain dicts and lists all the way down."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class StartTaskSerializer(NodeTaskSerializer):
    """A pool's startTask: what every node runs when it joins the pool (no id: it is the node's)."""

    id = None
    maxTaskRetryCount = IntField(required=False, min_value=-1)
    waitForSuccess = StrictBooleanField(required=False)


class TaskSchedulingPolicySerializer(serializers.Serializer):
    nodeFillType = EnumField(NodeFillType.values)
    jobDefaultOrder = EnumField(["none", "creationtime"], required=False)


class PoolPatchSerializer(serializers.Serializer):
    """Patch Pool: the properties given change. Besides the start task and metadata, API versions
    from 2025-06-01 patch what Add Pool set, while the pool has no node (every pool, so far)."""

    startTask = JSONObjectField(required=False)
    metadata = MetadataItemSerializer(many=True, required=False)
    certificateReferences = JSONListField(required=False)
    applicationPackageReferences = JSONListField(required=False)
    targetNodeCommunicationMode = serializers.CharField(required=False, max_length=32)
    displayName = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    vmSize = serializers.CharField(max_length=64, required=False)
    taskSlotsPerNode = IntField(required=False, min_value=1, max_value=MAX_SLOTS_PER_NODE)
    taskSchedulingPolicy = TaskSchedulingPolicySerializer(required=False)
    # Azure's description of its machines: stored as sent (Pool.azure_settings).
    virtualMachineConfiguration = JSONObjectField(required=False)
    networkConfiguration = JSONObjectField(required=False)
    mountConfiguration = JSONListField(required=False)
    userAccounts = JSONListField(required=False)
    enableInterNodeCommunication = StrictBooleanField(required=False)
    upgradePolicy = JSONObjectField(required=False)
    resourceTags = JSONObjectField(required=False)

    def validate_startTask(self, value):
        # Stored as validated (booleans and numbers as such, enums lower-cased), not as sent.
        return plain(validate_body(StartTaskSerializer, value, name="startTask"))

    def validate_vmSize(self, value):
        return value.lower()  # Batch answers vmSize lower-cased; $filter compares it so


class PoolUpdatePropertiesSerializer(PoolPatchSerializer):
    """Update Properties: the start task and metadata are replaced (one left out is removed).
    Batch requires metadata and applicationPackageReferences; certificateReferences, which
    API versions before 2024-07-01 also required, may come or not."""

    metadata = MetadataItemSerializer(many=True)
    applicationPackageReferences = JSONListField()


class PoolAddSerializer(PoolPatchSerializer):
    id = BatchIdField()
    vmSize = serializers.CharField(max_length=64)
    targetDedicatedNodes = IntField(required=False, min_value=0, max_value=MAX_NODES)
    targetLowPriorityNodes = IntField(required=False, min_value=0, max_value=MAX_NODES)
    resizeTimeout = WireDurationField(required=False)
    enableAutoScale = StrictBooleanField(required=False)
    autoScaleFormula = serializers.CharField(required=False, max_length=8192, trim_whitespace=False)
    autoScaleEvaluationInterval = WireDurationField(required=False)
    cloudServiceConfiguration = JSONObjectField(required=False)
    applicationLicenses = JSONListField(required=False)

    def validate_resizeTimeout(self, value):
        if value is None or value < MIN_RESIZE_TIMEOUT:  # None: Batch's "no limit", which a resize has not
            raise serializers.ValidationError("must be at least 5 minutes (PT5M) and have a limit")
        return value

    def validate_autoScaleEvaluationInterval(self, value):
        low, high = AUTOSCALE_INTERVAL
        if value is None or not low <= value <= high:
            raise serializers.ValidationError("must be between 5 minutes (PT5M) and 168 hours (PT168H)")
        return value

    def validate(self, attrs):
        if attrs.get("enableAutoScale"):
            if not attrs.get("autoScaleFormula"):
                raise invalid_property("autoScaleFormula", "an autoscaled pool needs its formula")
            for target in ("targetDedicatedNodes", "targetLowPriorityNodes"):
                if target in attrs:
                    raise invalid_property(target, "an autoscaled pool takes no target: its formula sets it")
            attrs.setdefault("autoScaleEvaluationInterval", DEFAULT_AUTOSCALE_INTERVAL)
        elif "autoScaleFormula" in attrs or "autoScaleEvaluationInterval" in attrs:
            raise invalid_property("enableAutoScale", "autoScaleFormula and autoScaleEvaluationInterval need "
                                                      "enableAutoScale true")
        return attrs


# wire name -> model field, for the properties that map one to one.
PLAIN = {
    "id": "batch_id", "displayName": "display_name", "vmSize": "vm_size",
    "targetDedicatedNodes": "target_dedicated_nodes", "targetLowPriorityNodes": "target_low_priority_nodes",
    "resizeTimeout": "resize_timeout", "enableAutoScale": "enable_auto_scale",
    "autoScaleFormula": "auto_scale_formula", "autoScaleEvaluationInterval": "auto_scale_evaluation_interval",
    "taskSlotsPerNode": "task_slots_per_node", "startTask": "start_task", "metadata": "metadata",
}
AZURE_SETTINGS = ("virtualMachineConfiguration", "cloudServiceConfiguration", "networkConfiguration",
                  "mountConfiguration", "userAccounts", "enableInterNodeCommunication", "applicationLicenses",
                  "upgradePolicy", "resourceTags", "certificateReferences", "applicationPackageReferences",
                  "targetNodeCommunicationMode")


class AutoPoolSerializer(PoolAddSerializer):
    """The pool of a job's poolInfo.autoPoolSpecification: Add Pool's body without its id."""

    id = None


class AutoPoolSpecificationSerializer(serializers.Serializer):
    autoPoolIdPrefix = serializers.RegexField(r"^[A-Za-z0-9_-]{1,20}$", required=False)
    poolLifetimeOption = EnumField(["job", "jobschedule"])
    keepAlive = StrictBooleanField(required=False)
    pool = JSONObjectField()

    def validate_pool(self, value):
        validate_body(AutoPoolSerializer, value, name="autoPoolSpecification.pool")
        return value


def auto_pool_fields(pool_info: dict | None) -> dict | None:
    """The Pool field values of a job's autoPoolSpecification (stored as validated), or None."""
    spec = (pool_info or {}).get("autoPoolSpecification")
    if not spec:
        return None
    return pool_fields(validate_body(AutoPoolSerializer, spec["pool"], name="autoPoolSpecification.pool"))


def pool_fields(data: dict) -> dict:
    """Validated wire properties to Pool model fields. `azure_settings` holds only the Azure
    settings this body gives: a change merges them into those stored (pools.services)."""
    fields = {PLAIN[k]: v for k, v in data.items() if k in PLAIN}
    if "metadata" in fields:
        fields["metadata"] = [dict(x) for x in fields["metadata"]]
    azure = {k: plain(data[k]) for k in AZURE_SETTINGS if k in data}
    if "taskSchedulingPolicy" in data:
        policy = data["taskSchedulingPolicy"]
        fields["node_fill_type"] = policy["nodeFillType"]
        if "jobDefaultOrder" in policy:
            azure["jobDefaultOrder"] = policy["jobDefaultOrder"]
    if azure:
        fields["azure_settings"] = azure
    return fields


# The pool resource: each wire property, the columns it reads, how it renders.
_TRACKED = tracked_properties(url=lambda p, ctx: f"{ctx['base']}/pools/{p.batch_id}")
PROPERTIES = {
    **{k: v for k, v in _TRACKED.items() if not k.startswith("previousState")},  # Batch gives pools none
    "allocationState": (("allocation_state",), lambda p, ctx: p.allocation_state),
    "allocationStateTransitionTime": (("allocation_state_transition_time",),
                                      lambda p, ctx: iso(p.allocation_state_transition_time)),
    "vmSize": (("vm_size",), lambda p, ctx: p.vm_size),
    "resizeTimeout": (("resize_timeout",), lambda p, ctx: duration(p.resize_timeout)),
    "resizeErrors": (("resize_errors",), lambda p, ctx: p.resize_errors or None),
    # From the count rows (`current_nodes` reads them for a page of pools at once), never the node rows.
    "currentDedicatedNodes": ((), lambda p, ctx: ctx["node_counts"][p.pk][0].total),
    "currentLowPriorityNodes": ((), lambda p, ctx: ctx["node_counts"][p.pk][1].total),
    "targetDedicatedNodes": (("target_dedicated_nodes",), lambda p, ctx: p.target_dedicated_nodes),
    "targetLowPriorityNodes": (("target_low_priority_nodes",), lambda p, ctx: p.target_low_priority_nodes),
    "enableAutoScale": (("enable_auto_scale",), lambda p, ctx: p.enable_auto_scale),
    "autoScaleFormula": (("auto_scale_formula",), lambda p, ctx: p.auto_scale_formula or None),
    "autoScaleEvaluationInterval": (("auto_scale_evaluation_interval",),
                                    lambda p, ctx: duration(p.auto_scale_evaluation_interval, unlimited=None)),
    "startTask": (("start_task",), lambda p, ctx: p.start_task),
    "taskSlotsPerNode": (("task_slots_per_node",), lambda p, ctx: p.task_slots_per_node),
    "taskSchedulingPolicy": (("node_fill_type", "azure_settings"), lambda p, ctx: drop_none({
        "nodeFillType": p.node_fill_type, "jobDefaultOrder": (p.azure_settings or {}).get("jobDefaultOrder")})),
    "metadata": (("metadata",), lambda p, ctx: p.metadata or None),
    **{name: (("azure_settings",), lambda p, ctx, name=name: (p.azure_settings or {}).get(name))
       for name in AZURE_SETTINGS},
}

FILTERS = {
    "id": Prop("key", "string"),
    "state": Prop("state", "enum", choices=tuple(PoolState.values)),
    "allocationState": Prop("allocation_state", "enum", choices=tuple(AllocationState.values)),
    "vmSize": Prop("vm_size", "string"),
    "targetDedicatedNodes": Prop("target_dedicated_nodes", "int"),
    "targetLowPriorityNodes": Prop("target_low_priority_nodes", "int"),
    "taskSlotsPerNode": Prop("task_slots_per_node", "int"),
    "enableAutoScale": Prop("enable_auto_scale", "bool"),
    "creationTime": Prop("creation_time", "datetime"),
    "stateTransitionTime": Prop("state_transition_time", "datetime"),
}

NESTED = {"taskSchedulingPolicy": {"nodeFillType", "jobDefaultOrder"}}


def columns(select: list[str] | None) -> list[str]:
    """The columns a response with this $select reads: no more."""
    return sorted({"pk", *selected_columns(PROPERTIES, select)})


def current_nodes(pools: list[Pool], select: list[str] | None) -> dict:
    """The node counts `pool_to_wire` needs for these pools: one query, none when $select leaves them out."""
    if select is not None and not {"currentDedicatedNodes", "currentLowPriorityNodes"} & set(select):
        return {}
    return node_counts.read_many([p.pk for p in pools])


def pool_to_wire(pool: Pool, *, base: str, counts: dict, select: list[str] | None = None) -> dict:
    """`counts`: the node counts as `current_nodes` read them."""
    return drop_none(render(PROPERTIES, pool, {"base": base, "node_counts": counts}, select))


# A compute node on the wire (List / Get Compute Node). Its affinityId is its id: Batch's is an
# opaque string a task's affinityInfo names, and a task's nodeInfo gives the same (tasks.serializers).
NODE_PROPERTIES = {
    "id": (("name",), lambda n, ctx: n.name),
    "url": (("name",), lambda n, ctx: f"{ctx['base']}/pools/{ctx['pool_id']}/nodes/{quote(n.name, safe='')}"),
    "state": (("state",), lambda n, ctx: n.state),
    "schedulingState": (("scheduling_state",), lambda n, ctx: n.scheduling_state),
    "stateTransitionTime": (("state_transition_time",), lambda n, ctx: iso(n.state_transition_time)),
    "lastBootTime": (("last_boot_time",), lambda n, ctx: iso(n.last_boot_time)),
    "allocationTime": (("allocation_time",), lambda n, ctx: iso(n.allocation_time)),
    "ipAddress": (("ip_address",), lambda n, ctx: n.ip_address or None),
    "affinityId": (("name",), lambda n, ctx: n.name),
    "vmSize": (("vm_size",), lambda n, ctx: n.vm_size),
    "totalTasksRun": (("total_tasks_run",), lambda n, ctx: n.total_tasks_run),
    "totalTasksSucceeded": (("total_tasks_succeeded",), lambda n, ctx: n.total_tasks_succeeded),
    "runningTasksCount": (("running_tasks_count",), lambda n, ctx: n.running_tasks_count),
    "runningTaskSlotsCount": (("running_task_slots_count",), lambda n, ctx: n.running_task_slots_count),
    # Read apart, in one query (`recent_tasks` in ctx): absent where they were not read.
    "recentTasks": ((), lambda n, ctx: [recent_task(t, ctx) for t in ctx["recent_tasks"].get(n.name, ())] or None),
    "startTask": ((), lambda n, ctx: ctx["start_task"]),  # the pool's: every node of it runs the same
    "startTaskInfo": (("start_task_info",), lambda n, ctx: n.start_task_info),
    "errors": (("errors",), lambda n, ctx: n.errors or None),
    "isDedicated": (("is_dedicated",), lambda n, ctx: n.is_dedicated),
    "nodeAgentInfo": (("agent_version", "heartbeat_at"), lambda n, ctx: drop_none({
        "version": n.agent_version or None, "lastUpdateTime": iso(n.heartbeat_at)}) or None),
}
NODE_NESTED = {
    "nodeAgentInfo": {"version", "lastUpdateTime"},
    "startTaskInfo": {"state", "startTime", "endTime", "exitCode", "containerInfo", "failureInfo", "retryCount",
                      "lastRetryTime", "result"},
}
NODE_FILTERS = {"state": Prop("state", "enum", choices=tuple(NodeState.values))}
# The columns of its pool that rendering a node reads.
NODE_POOL_COLUMNS = ("pk", "batch_id", "key", "start_task")


def node_columns(select: list[str] | None) -> list[str]:
    """The node columns a response with this $select reads (and last_modified, for its ETag)."""
    return sorted({"pk", "last_modified", *selected_columns(NODE_PROPERTIES, select)})


def node_context(pool: Pool, *, base: str, recent_tasks: dict | None = None) -> dict:
    """What rendering a node of `pool` needs; `recent_tasks` ({node id: tasks, newest first}) when read."""
    return {"base": base, "pool_id": pool.batch_id, "start_task": pool.start_task, "recent_tasks": recent_tasks or {}}


def recent_task(task, ctx: dict) -> dict:
    job_id = task.job.batch_id
    return {"taskUrl": f"{ctx['base']}/jobs/{job_id}/tasks/{task.batch_id}", "jobId": job_id,
            "taskId": task.batch_id, "taskState": task.state, "executionInfo": execution_info(task)}


def node_to_wire(node: ComputeNode, *, ctx: dict, select: list[str] | None = None) -> dict:
    return drop_none(render(NODE_PROPERTIES, node, ctx, select))


# List Pool Node Counts: Batch's camelCase name of each count, and the state it counts
# (states no node here is ever in count 0).
COUNT_NAMES = {
    "creating": "creating", "idle": "idle", "offline": "offline", "preempted": "preempted",
    "rebooting": "rebooting", "reimaging": "reimaging", "running": "running", "starting": "starting",
    "startTaskFailed": "starttaskfailed", "leavingPool": "leavingpool", "unknown": "unknown",
    "unusable": "unusable", "waitingForStartTask": "waitingforstarttask", "upgradingOS": "upgradingos",
    "deallocated": "deallocated", "deallocating": "deallocating",
}
NODE_COUNTS_FILTERS = {"poolId": Prop("key", "string")}


def counts_to_wire(counts: node_counts.NodeCounts) -> dict:
    return {**{name: counts.of(state) for name, state in COUNT_NAMES.items()}, "total": counts.total}


def pool_node_counts_to_wire(pool: Pool, counts: tuple[node_counts.NodeCounts, node_counts.NodeCounts]) -> dict:
    dedicated, low_priority = counts
    return {"poolId": pool.batch_id, "dedicated": counts_to_wire(dedicated),
            "lowPriority": counts_to_wire(low_priority)}
