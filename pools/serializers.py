"""Pools on the wire: the Add Pool, Patch Pool and Update Properties bodies in, the pool resource out."""

from datetime import timedelta

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
from tasks.serializers import NodeTaskSerializer

from .models import AllocationState, NodeFillType, Pool, PoolState

MAX_SLOTS_PER_NODE = 256  # Batch's: min(4 x the node's cores, 256)
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
    targetDedicatedNodes = IntField(required=False, min_value=0)
    targetLowPriorityNodes = IntField(required=False, min_value=0)
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
    # No node joins a pool yet: the current counts are what exists, none.
    "currentDedicatedNodes": ((), lambda p, ctx: 0),
    "currentLowPriorityNodes": ((), lambda p, ctx: 0),
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


def pool_to_wire(pool: Pool, *, base: str, select: list[str] | None = None) -> dict:
    return drop_none(render(PROPERTIES, pool, {"base": base}, select))
