"""Jobs on the wire: the Add/Update Job bodies in, the job resource out."""

from django.utils import timezone
from rest_framework import serializers

from batchapi.errors import invalid_property
from batchapi.fields import (
    BatchIdField,
    EnumField,
    EnvironmentSettingSerializer,
    IntField,
    JSONObjectField,
    MetadataItemSerializer,
    StrictBooleanField,
    WireDurationField,
    validate_body,
)
from batchapi.odata import Prop
from batchapi.resources import render, selected_columns, stats_wanted, tracked_properties
from batchapi.wire import drop_none, duration, iso
from pools.serializers import AutoPoolSpecificationSerializer, plain
from tasks import node_tasks
from tasks.serializers import JobManagerTaskSerializer, JobPreparationTaskSerializer, JobReleaseTaskSerializer
from tasks.stats import job_stats_wire

from .models import Job, JobState, OnAllTasksComplete, OnTaskFailure


class JobConstraintsSerializer(serializers.Serializer):
    maxWallClockTime = WireDurationField(required=False, allow_null=True)
    maxTaskRetryCount = IntField(required=False, min_value=-1)


class PoolInfoSerializer(serializers.Serializer):
    """Where the job's tasks run: the pool `poolId` names, or one made for the job (autoPoolSpecification).
    Neither: the default pool (Batchsite's; Batch requires one of them)."""

    poolId = serializers.CharField(required=False, max_length=64)
    autoPoolSpecification = JSONObjectField(required=False)

    def validate_autoPoolSpecification(self, value):
        return plain(validate_body(AutoPoolSpecificationSerializer, value, name="autoPoolSpecification"))

    def validate(self, data):
        if "poolId" in data and "autoPoolSpecification" in data:
            raise invalid_property("poolInfo", "poolId and autoPoolSpecification are mutually exclusive")
        return data


class JobUpdateSerializer(serializers.Serializer):
    """The properties Update Job (PATCH) and Replace Job (PUT) may set."""

    priority = IntField(required=False, min_value=-1000, max_value=1000)
    maxParallelTasks = IntField(required=False, min_value=-1)
    allowTaskPreemption = StrictBooleanField(required=False)
    constraints = JobConstraintsSerializer(required=False)
    poolInfo = PoolInfoSerializer(required=False)
    onAllTasksComplete = EnumField(OnAllTasksComplete.values, required=False)
    metadata = MetadataItemSerializer(many=True, required=False)

    def validate_maxParallelTasks(self, value):
        if value == 0:
            raise serializers.ValidationError("must be -1 (no limit) or at least 1")
        return value


class JobAddSerializer(JobUpdateSerializer):
    id = BatchIdField()
    displayName = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    usesTaskDependencies = StrictBooleanField(required=False)
    onTaskFailure = EnumField(OnTaskFailure.values, required=False)
    commonEnvironmentSettings = EnvironmentSettingSerializer(many=True, required=False)
    jobManagerTask = JSONObjectField(required=False)
    jobPreparationTask = JSONObjectField(required=False)
    jobReleaseTask = JSONObjectField(required=False)
    networkConfiguration = JSONObjectField(required=False)

    def validate_jobManagerTask(self, value):
        validate_body(JobManagerTaskSerializer, value, name="jobManagerTask")
        return value

    def validate_jobPreparationTask(self, value):
        validate_body(JobPreparationTaskSerializer, value, name="jobPreparationTask")
        return value

    def validate_jobReleaseTask(self, value):
        validate_body(JobReleaseTaskSerializer, value, name="jobReleaseTask")
        return value

    def validate(self, attrs):
        release, preparation = attrs.get("jobReleaseTask"), attrs.get("jobPreparationTask")
        if release is not None and preparation is None:
            # "A Job Release Task cannot be specified without also specifying a Job
            # Preparation Task for the Job." (Batch REST docs, jobReleaseTask)
            raise invalid_property("jobReleaseTask", "a job release task needs a job preparation task")
        ids = [node_tasks.task_id(t, kind) for t, kind in ((preparation, node_tasks.PREPARATION),
                                                             (release, node_tasks.RELEASE)) if t]
        if len(ids) == 2 and ids[0].lower() == ids[1].lower():
            raise invalid_property("jobReleaseTask.id", "the job release task's id is the job preparation task's")
        return attrs


# wire name -> model field, for the properties that map one to one.
PLAIN = {
    "id": "batch_id",
    "displayName": "display_name",
    "priority": "priority",
    "maxParallelTasks": "max_parallel_tasks",
    "allowTaskPreemption": "allow_task_preemption",
    "usesTaskDependencies": "uses_task_dependencies",
    "onAllTasksComplete": "on_all_tasks_complete",
    "onTaskFailure": "on_task_failure",
    "commonEnvironmentSettings": "common_environment_settings",
    "metadata": "metadata",
    "poolInfo": "pool_info",
    "jobManagerTask": "job_manager_task",
    "jobPreparationTask": "job_preparation_task",
    "jobReleaseTask": "job_release_task",
    "networkConfiguration": "network_configuration",
}


def job_fields(data: dict) -> dict:
    """Validated wire properties to Job model fields."""
    fields = {PLAIN[k]: v for k, v in data.items() if k in PLAIN}
    for item in ("metadata", "common_environment_settings"):
        if item in fields:
            fields[item] = [dict(x) for x in fields[item]]
    if "pool_info" in fields:
        fields["pool_info"] = dict(fields["pool_info"])
    constraints = data.get("constraints", {})
    if "maxWallClockTime" in constraints:
        fields["max_wall_clock_time"] = constraints["maxWallClockTime"]
    if "maxTaskRetryCount" in constraints:
        fields["max_task_retry_count"] = constraints["maxTaskRetryCount"]
    return fields


# The job resource: each wire property, the columns it reads, how it renders.
PROPERTIES = {
    **tracked_properties(url=lambda j, ctx: f"{ctx['base']}/jobs/{j.batch_id}"),
    "priority": (("priority",), lambda j, ctx: j.priority),
    "maxParallelTasks": (("max_parallel_tasks",), lambda j, ctx: j.max_parallel_tasks),
    "allowTaskPreemption": (("allow_task_preemption",), lambda j, ctx: j.allow_task_preemption),
    "usesTaskDependencies": (("uses_task_dependencies",), lambda j, ctx: j.uses_task_dependencies),
    "constraints": (("max_wall_clock_time", "max_task_retry_count"), lambda j, ctx: {
        "maxWallClockTime": duration(j.max_wall_clock_time), "maxTaskRetryCount": j.max_task_retry_count}),
    "poolInfo": (("pool_info",), lambda j, ctx: j.pool_info),
    "onAllTasksComplete": (("on_all_tasks_complete",), lambda j, ctx: j.on_all_tasks_complete),
    "onTaskFailure": (("on_task_failure",), lambda j, ctx: j.on_task_failure),
    "commonEnvironmentSettings": (("common_environment_settings",),
                                  lambda j, ctx: j.common_environment_settings or None),
    "metadata": (("metadata",), lambda j, ctx: j.metadata or None),
    "jobManagerTask": (("job_manager_task",), lambda j, ctx: j.job_manager_task),
    "jobPreparationTask": (("job_preparation_task",), lambda j, ctx: j.job_preparation_task),
    "jobReleaseTask": (("job_release_task",), lambda j, ctx: j.job_release_task),
    "networkConfiguration": (("network_configuration",), lambda j, ctx: j.network_configuration),
    "executionInfo": (("start_time", "end_time", "terminate_reason", "pool_info", "auto_pool_id"),
                      lambda j, ctx: drop_none({
        "startTime": iso(j.start_time), "endTime": iso(j.end_time),
        "poolId": j.pool_id, "terminateReason": j.terminate_reason or None})),
}

FILTERS = {
    "id": Prop("key", "string"),
    "state": Prop("state", "enum", choices=tuple(JobState.values)),
    "priority": Prop("priority", "int"),
    "maxParallelTasks": Prop("max_parallel_tasks", "int"),
    "usesTaskDependencies": Prop("uses_task_dependencies", "bool"),
    "allowTaskPreemption": Prop("allow_task_preemption", "bool"),
    "onAllTasksComplete": Prop("on_all_tasks_complete", "enum", choices=tuple(OnAllTasksComplete.values)),
    "onTaskFailure": Prop("on_task_failure", "enum", choices=tuple(OnTaskFailure.values)),
    "creationTime": Prop("creation_time", "datetime"),
    "stateTransitionTime": Prop("state_transition_time", "datetime"),
    "executionInfo/startTime": Prop("start_time", "datetime"),
    "executionInfo/endTime": Prop("end_time", "datetime"),
}


# The members of the job's structured properties, for nested $select.
NESTED = {
    "executionInfo": {"startTime", "endTime", "poolId", "schedulingError", "terminateReason"},
    "constraints": {"maxWallClockTime", "maxTaskRetryCount"},
    "stats": {"url", "startTime", "lastUpdateTime", "userCPUTime", "kernelCPUTime", "wallClockTime", "readIOps",
              "writeIOps", "readIOGiB", "writeIOGiB", "numSucceededTasks", "numFailedTasks", "numTaskRetries",
              "waitTime"},
}


def columns(select: list[str] | None, *, with_stats: bool = False) -> list[str]:
    """The columns a response with this $select (and $expand=stats) reads: no more."""
    wanted = {"pk", *selected_columns(PROPERTIES, select)}
    if stats_wanted(select, with_stats):
        wanted.update(("batch_id", "creation_time"))
    return sorted(wanted)


def job_to_wire(job: Job, *, base: str, select: list[str] | None = None, with_stats: bool = False) -> dict:
    wire = render(PROPERTIES, job, {"base": base}, select)
    if stats_wanted(select, with_stats):
        wire["stats"] = job_stats_wire(job, f"{base}/jobs/{job.batch_id}", timezone.now())
    return drop_none(wire)
