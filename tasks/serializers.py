"""Tasks on the wire: the Add Task body in, the task resource out."""

from urllib.parse import quote

from rest_framework import serializers

from batchapi.fields import (
    BatchIdField,
    EnvironmentSettingSerializer,
    IntField,
    JSONListField,
    JSONObjectField,
    StrictBooleanField,
    UserIdentitySerializer,
    WireDurationField,
    validate_body,
)
from batchapi.odata import Prop
from batchapi.resources import render, selected_columns, stats_wanted, tracked_properties
from batchapi.wire import drop_none, duration, iso

from . import file_specs
from .files import node_task_dir
from .listing import FileEntry
from .models import Task, TaskKind, TaskResult, TaskState
from .stats import task_stats_wire


class ResourceFilesField(JSONListField):
    """resourceFiles, checked against Batch's path rules (tasks.file_specs)."""

    def to_internal_value(self, data):
        file_specs.validate_resource_files(super().to_internal_value(data))
        return data


class OutputFilesField(JSONListField):
    def to_internal_value(self, data):
        file_specs.validate_output_files(super().to_internal_value(data))
        return data


DEFAULT_RETENTION = "P7D"  # the Batch service keeps a task's directory 7 days by default


class TaskConstraintsSerializer(serializers.Serializer):
    maxWallClockTime = WireDurationField(required=False, allow_null=True)
    maxTaskRetryCount = IntField(required=False, min_value=-1)
    retentionTime = WireDurationField(required=False, allow_null=True)


class TaskAddSerializer(serializers.Serializer):
    id = BatchIdField()
    displayName = serializers.CharField(max_length=1024, required=False, allow_blank=True)
    commandLine = serializers.CharField(max_length=8192, trim_whitespace=False)
    environmentSettings = EnvironmentSettingSerializer(many=True, required=False)
    constraints = TaskConstraintsSerializer(required=False)
    dependsOn = JSONObjectField(required=False)
    exitConditions = JSONObjectField(required=False)
    resourceFiles = ResourceFilesField(required=False)
    outputFiles = OutputFilesField(required=False)
    userIdentity = UserIdentitySerializer(required=False)
    affinityInfo = JSONObjectField(required=False)
    containerSettings = JSONObjectField(required=False)
    multiInstanceSettings = JSONObjectField(required=False)
    applicationPackageReferences = JSONListField(required=False)
    authenticationTokenSettings = JSONObjectField(required=False)
    requiredSlots = IntField(required=False, min_value=1)


class JobManagerTaskSerializer(TaskAddSerializer):
    """jobManagerTask: a task's body without dependencies or exit conditions, and its own flags.

    Add Job checks it with this and stores it as sent; the job manager task is
    made from it (`job_manager_fields`).
    """

    dependsOn = exitConditions = affinityInfo = multiInstanceSettings = None  # not in a job manager
    killJobOnCompletion = StrictBooleanField(required=False)
    runExclusive = StrictBooleanField(required=False)
    allowLowPriorityNode = StrictBooleanField(required=False)


class NodeTaskSerializer(serializers.Serializer):
    """What a job's preparation and release task bodies share: each runs once on a worker."""

    id = BatchIdField(required=False)
    commandLine = serializers.CharField(max_length=8192, trim_whitespace=False)
    containerSettings = JSONObjectField(required=False)
    resourceFiles = ResourceFilesField(required=False)
    environmentSettings = EnvironmentSettingSerializer(many=True, required=False)
    userIdentity = UserIdentitySerializer(required=False)


class JobPreparationTaskSerializer(NodeTaskSerializer):
    """jobPreparationTask: run on each worker before the first task of the job there."""

    constraints = TaskConstraintsSerializer(required=False)
    waitForSuccess = StrictBooleanField(required=False)
    rerunOnNodeRebootAfterSuccess = StrictBooleanField(required=False)


class JobReleaseTaskSerializer(NodeTaskSerializer):
    """jobReleaseTask: run, when the job ends, on each worker that ran its preparation."""

    maxWallClockTime = WireDurationField(required=False, allow_null=True)
    retentionTime = WireDurationField(required=False, allow_null=True)


class TaskUpdateSerializer(serializers.Serializer):
    constraints = TaskConstraintsSerializer(required=False)


PLAIN = {
    "id": "batch_id",
    "displayName": "display_name",
    "commandLine": "command_line",
    "environmentSettings": "environment_settings",
    "dependsOn": "depends_on",
    "exitConditions": "exit_conditions",
    "resourceFiles": "resource_files",
    "outputFiles": "output_files",
    "userIdentity": "user_identity",
    "affinityInfo": "affinity_info",
    "containerSettings": "container_settings",
    "multiInstanceSettings": "multi_instance_settings",
    "applicationPackageReferences": "application_package_references",
    "authenticationTokenSettings": "authentication_token_settings",
    "requiredSlots": "required_slots",
}


def task_fields(data: dict) -> dict:
    """Validated wire properties to Task model fields."""
    fields = {PLAIN[k]: v for k, v in data.items() if k in PLAIN}
    if "environment_settings" in fields:
        fields["environment_settings"] = [dict(x) for x in fields["environment_settings"]]
    fields.update(constraint_fields(data.get("constraints", {})))
    return fields


def job_manager_fields(job_manager_task: dict | None) -> dict | None:
    """Task model fields for a job's jobManagerTask (None without one)."""
    if not job_manager_task:
        return None
    data = validate_body(JobManagerTaskSerializer, job_manager_task, name="jobManagerTask")
    return {**task_fields(data), "kind": TaskKind.JOB_MANAGER}


def constraint_fields(constraints: dict) -> dict:
    names = {"maxWallClockTime": "max_wall_clock_time", "maxTaskRetryCount": "max_task_retry_count",
             "retentionTime": "retention_time"}
    return {names[k]: v for k, v in constraints.items()}


def execution_info(t: Task) -> dict:
    return drop_none({
        "startTime": iso(t.start_time),
        "endTime": iso(t.end_time),
        "exitCode": t.exit_code,
        "result": t.result or None,
        "failureInfo": t.failure_info,
        "retryCount": t.retry_count,
        "lastRetryTime": iso(t.last_retry_time),
        "requeueCount": t.requeue_count,
        "lastRequeueTime": iso(t.last_requeue_time),
    })


def node_info(t: Task, ctx: dict) -> dict | None:
    """Where the task runs or last ran. Its node is in its job's pool; nodeUrl answers while the node
    is there (Get Compute Node). The task's directory is served by the task's own files API, as
    no node file API exists here, and its affinityId is the node's id, as the node gives it."""
    if not t.node_id:
        return None
    return {"nodeId": t.node_id, "poolId": ctx["pool_id"], "affinityId": t.node_id,
            "taskRootDirectory": f"workitems/{ctx['account']}/{ctx['job_id']}/{t.batch_id}",
            "taskRootDirectoryUrl": f"{ctx['base']}/jobs/{ctx['job_id']}/tasks/{t.batch_id}/files",
            "nodeUrl": f"{ctx['base']}/pools/{ctx['pool_id']}/nodes/{quote(t.node_id, safe='')}"}


def constraints(t: Task, ctx: dict) -> dict:
    retries = t.max_task_retry_count if t.max_task_retry_count is not None else ctx["job_retries"]
    return {"maxWallClockTime": duration(t.max_wall_clock_time), "maxTaskRetryCount": retries,
            "retentionTime": duration(t.retention_time, unlimited=DEFAULT_RETENTION)}


# The task resource: each wire property, the columns it reads, how it renders.
PROPERTIES = {
    **tracked_properties(url=lambda t, ctx: f"{ctx['base']}/jobs/{ctx['job_id']}/tasks/{t.batch_id}"),
    "commandLine": (("command_line",), lambda t, ctx: t.command_line),
    "environmentSettings": (("environment_settings",), lambda t, ctx: t.environment_settings or None),
    "constraints": (("max_wall_clock_time", "max_task_retry_count", "retention_time"), constraints),
    "requiredSlots": (("required_slots",), lambda t, ctx: t.required_slots),
    "dependsOn": (("depends_on",), lambda t, ctx: t.depends_on),
    "exitConditions": (("exit_conditions",), lambda t, ctx: t.exit_conditions),
    "resourceFiles": (("resource_files",), lambda t, ctx: t.resource_files or None),
    "outputFiles": (("output_files",), lambda t, ctx: t.output_files or None),
    "userIdentity": (("user_identity",), lambda t, ctx: t.user_identity),
    "affinityInfo": (("affinity_info",), lambda t, ctx: t.affinity_info),
    "containerSettings": (("container_settings",), lambda t, ctx: t.container_settings),
    "multiInstanceSettings": (("multi_instance_settings",), lambda t, ctx: t.multi_instance_settings),
    "applicationPackageReferences": (("application_package_references",),
                                     lambda t, ctx: t.application_package_references or None),
    "authenticationTokenSettings": (("authentication_token_settings",),
                                    lambda t, ctx: t.authentication_token_settings),
    "executionInfo": (("start_time", "end_time", "exit_code", "result", "failure_info", "retry_count",
                       "last_retry_time", "requeue_count", "last_requeue_time"),
                      lambda t, ctx: execution_info(t)),
    "nodeInfo": (("node_id", "batch_id"), node_info),
}

FILTERS = {
    "id": Prop("key", "string"),
    "displayName": Prop("display_name", "string"),
    "state": Prop("state", "enum", choices=tuple(TaskState.values)),
    "creationTime": Prop("creation_time", "datetime"),
    "stateTransitionTime": Prop("state_transition_time", "datetime"),
    "executionInfo/exitCode": Prop("exit_code", "int"),
    "executionInfo/result": Prop("result", "enum", choices=tuple(TaskResult.values)),
    "executionInfo/retryCount": Prop("retry_count", "int"),
    "executionInfo/requeueCount": Prop("requeue_count", "int"),
    "executionInfo/startTime": Prop("start_time", "datetime"),
    "executionInfo/endTime": Prop("end_time", "datetime"),
}


# The members of the task's structured properties, for nested $select.
NESTED = {
    "executionInfo": {"startTime", "endTime", "exitCode", "result", "failureInfo", "retryCount", "lastRetryTime",
                      "requeueCount", "lastRequeueTime", "containerInfo"},
    "constraints": {"maxWallClockTime", "maxTaskRetryCount", "retentionTime"},
    "nodeInfo": {"nodeId", "poolId", "affinityId", "taskRootDirectory", "taskRootDirectoryUrl", "nodeUrl"},
    "stats": {"url", "startTime", "lastUpdateTime", "userCPUTime", "kernelCPUTime", "wallClockTime", "readIOps",
              "writeIOps", "readIOGiB", "writeIOGiB", "waitTime"},
}
STATS_COLUMNS = ("stats", "creation_time", "batch_id")


def columns(select: list[str] | None, *, with_stats: bool = False) -> list[str]:
    """The columns a response with this $select (and $expand=stats) reads: no more."""
    wanted = {"pk", "job", *selected_columns(PROPERTIES, select)}
    if stats_wanted(select, with_stats):
        wanted.update(STATS_COLUMNS)
    return sorted(wanted)


def context(job, base: str) -> dict:
    return {"base": base, "job_id": job.batch_id, "job_retries": job.max_task_retry_count,
            "pool_id": job.pool_id, "account": job.account.name}


def task_to_wire(task: Task, *, ctx: dict, select: list[str] | None = None, with_stats: bool = False) -> dict:
    wire = render(PROPERTIES, task, ctx, select)
    if stats_wanted(select, with_stats):
        wire["stats"] = task_stats_wire(task, f"{ctx['base']}/jobs/{ctx['job_id']}/tasks/{task.batch_id}")
    return drop_none(wire)


def node_task_info(row, *, with_retries: bool) -> dict:
    """jobPreparationTaskExecutionInfo / jobReleaseTaskExecutionInfo of one node."""
    info = {
        "startTime": iso(row.start_time), "endTime": iso(row.end_time), "state": row.state,
        "taskRootDirectory": str(node_task_dir(row.job, row.node_id, row.kind)),
        "exitCode": row.exit_code, "failureInfo": row.failure_info, "result": row.result or None,
    }
    if with_retries:
        info.update(retryCount=row.retry_count, lastRetryTime=iso(row.last_retry_time))
    return drop_none(info)


# --- files (of a task, or of a node: pools.node_file_api) -----------------------------------------


def file_mode(mode: int) -> str:
    """fileMode: the file's mode bits in octal, type included (e.g. 0o100644), as Linux nodes report it."""
    return oct(mode)


def file_to_wire(entry: FileEntry, base: str) -> dict:
    """One file of a listing; `base` is the URL of the files its name is relative to."""
    return {
        "name": entry.name,
        "url": f"{base}/{quote(entry.name)}",
        "isDirectory": entry.is_directory,
        "properties": {
            "creationTime": iso(entry.created), "lastModified": iso(entry.modified),
            "contentLength": entry.size, "contentType": "application/octet-stream",
            "fileMode": file_mode(entry.mode),
        },
    }


def file_list_page(request, entries: list[FileEntry], *, page_size: int, base: str) -> dict:
    """A page of List Files: `entries` holds up to page_size + 1 (one more says that more follow),
    and the next link starts after the page's last name (tasks.listing's order)."""
    body = {"value": [file_to_wire(e, base) for e in entries[:page_size]]}
    if len(entries) > page_size:
        query = request.query_params.copy()
        query["$skiptoken"] = entries[page_size - 1].name
        body["odata.nextLink"] = request.build_absolute_uri(request.path) + "?" + query.urlencode()
    return body
