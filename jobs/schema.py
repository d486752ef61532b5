"""The job operations in the OpenAPI schema: the job resource as jobs.serializers renders it, and
what each operation of jobs.api takes and answers (batchapi.schema has the shared parts)."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from batchapi.schema import (
    CONDITIONS,
    EXPAND,
    FILTER,
    JOB_ID,
    NAME_VALUE,
    PAGE,
    SELECT,
    array,
    boolean,
    component,
    duration,
    enum,
    integer,
    listing,
    moment,
    obj,
    operation,
    refuses_unknown,
    string,
)
from tasks.serializers import JobManagerTaskSerializer, JobPreparationTaskSerializer, JobReleaseTaskSerializer

from .models import JobState, OnAllTasksComplete, OnTaskFailure
from .serializers import JobAddSerializer, JobUpdateSerializer

TAG = "Jobs"


class JobAddSchema(OpenApiSerializerExtension):
    """Add Job's task bodies are JSON objects to the serializer, each checked by its own serializer
    (validate_jobManagerTask ...): the schema names those."""

    target_class = "jobs.serializers.JobAddSerializer"
    TASKS = {"jobManagerTask": JobManagerTaskSerializer, "jobPreparationTask": JobPreparationTaskSerializer,
             "jobReleaseTask": JobReleaseTaskSerializer}

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        for name, serializer in self.TASKS.items():
            schema["properties"][name] = auto_schema.resolve_serializer(refuses_unknown(serializer), direction).ref
        return schema

ANY_OBJECT = {"type": "object", "additionalProperties": {}}

JOB_STATISTICS = component("JobStatistics", obj({
    "url": string(format="uri"), "startTime": moment(), "lastUpdateTime": moment(),
    "userCPUTime": duration(), "kernelCPUTime": duration(), "wallClockTime": duration(),
    "readIOps": string("int64, as a string"), "writeIOps": string("int64, as a string"),
    "readIOGiB": {"type": "number"}, "writeIOGiB": {"type": "number"},
    "numSucceededTasks": string("int64, as a string"), "numFailedTasks": string("int64, as a string"),
    "numTaskRetries": string("int64, as a string"), "waitTime": duration(),
}))

JOB = component("Job", obj({
    "id": string(), "displayName": string(), "url": string(format="uri"), "eTag": string(),
    "lastModified": moment(), "creationTime": moment(),
    "state": enum(JobState.values), "stateTransitionTime": moment(),
    "previousState": enum(JobState.values), "previousStateTransitionTime": moment(),
    "priority": integer(minimum=-1000, maximum=1000),
    "maxParallelTasks": integer("-1: no limit."),
    "allowTaskPreemption": boolean(), "usesTaskDependencies": boolean(),
    "constraints": obj({"maxWallClockTime": duration(), "maxTaskRetryCount": integer("-1: no limit.")}),
    "poolInfo": ANY_OBJECT,
    "onAllTasksComplete": enum(OnAllTasksComplete.values), "onTaskFailure": enum(OnTaskFailure.values),
    "commonEnvironmentSettings": array(NAME_VALUE), "metadata": array(NAME_VALUE),
    "jobManagerTask": ANY_OBJECT, "jobPreparationTask": ANY_OBJECT, "jobReleaseTask": ANY_OBJECT,
    "networkConfiguration": ANY_OBJECT,
    "executionInfo": obj({"startTime": moment(), "endTime": moment(), "poolId": string(),
                          "terminateReason": string()}),
    "stats": JOB_STATISTICS,
}, description="A job, as Get Job and List Jobs return it ($select may leave properties out)."))

TASK_COUNTS = component("TaskCounts", obj({
    name: integer() for name in ("active", "running", "completed", "succeeded", "failed")
}, required=("active", "running", "completed", "succeeded", "failed")))
TASK_COUNTS_RESULT = component("TaskCountsResult", obj(
    {"taskCounts": TASK_COUNTS, "taskSlotCounts": TASK_COUNTS}, required=("taskCounts", "taskSlotCounts")))

NODE_TASK_INFO = {
    "startTime": moment(), "endTime": moment(), "state": enum(("running", "completed")),
    "taskRootDirectory": string(), "exitCode": integer(), "failureInfo": ANY_OBJECT,
    "result": enum(("success", "failure")),
}
PREPARATION_AND_RELEASE = component("JobPreparationAndReleaseTaskExecutionInformation", obj({
    "poolId": string(), "nodeId": string(),
    "jobPreparationTaskExecutionInfo": obj({**NODE_TASK_INFO, "retryCount": integer(),
                                            "lastRetryTime": moment()}),
    "jobReleaseTaskExecutionInfo": obj(NODE_TASK_INFO),
}))

DISABLE = inline_serializer("JobDisable", fields={
    "disableTasks": serializers.ChoiceField(["requeue", "terminate", "wait"], help_text=(
        "What becomes of the job's running tasks: requeue (stopped and run again later), terminate "
        "(stopped, failed), wait (they finish)."))})
TERMINATE = inline_serializer("JobTerminate", fields={
    "terminateReason": serializers.CharField(required=False, allow_blank=True, help_text=(
        "Why the job ends (executionInfo.terminateReason; its first 256 characters are kept)."))})
NOT_MODIFIED = OpenApiResponse(description="Not modified: the job matches If-None-Match or is not newer than "
                                           "If-Modified-Since.")

LIST_JOBS = operation("Job_List", "List the account's jobs", tag=TAG, parameters=[FILTER, SELECT, EXPAND, *PAGE],
                      ok={200: listing("JobList", JOB)})
ADD_JOB = operation("Job_Add", "Add a job", tag=TAG, request=JobAddSerializer, ok={201: None},
                    errors=(409, 413, 415), conflicts="JobExists: a job of that id exists (ids ignore case).",
                    etag=True, location=True)
GET_JOB = operation("Job_Get", "Get a job", tag=TAG, parameters=[JOB_ID, SELECT, EXPAND, *CONDITIONS],
                    ok={200: JOB, 304: NOT_MODIFIED}, errors=(404, 412), etag=True)
ENDING = "JobCompleted or JobBeingDeleted: the job takes no more changes."
PATCH_JOB = operation("Job_Patch", "Update a job's properties: those given change", tag=TAG,
                      request=JobUpdateSerializer, parameters=[JOB_ID, *CONDITIONS], ok={200: None},
                      errors=(404, 409, 412, 413, 415), conflicts=ENDING, etag=True)
REPLACE_JOB = operation("Job_Update", "Replace a job's properties: those left out return to their defaults",
                        tag=TAG, request=JobUpdateSerializer, parameters=[JOB_ID, *CONDITIONS], ok={200: None},
                        errors=(404, 409, 412, 413, 415), conflicts=ENDING, etag=True)
DELETE_JOB = operation("Job_Delete", "Delete a job and its tasks", tag=TAG, parameters=[JOB_ID, *CONDITIONS],
                       ok={202: None}, errors=(404, 409, 412), conflicts="JobBeingDeleted.")
TERMINATE_JOB = operation("Job_Terminate", "Terminate a job: its running tasks are stopped", tag=TAG,
                          request=TERMINATE, parameters=[JOB_ID, *CONDITIONS], ok={202: None},
                          errors=(404, 409, 412, 413, 415), conflicts=ENDING, etag=True)
DISABLE_JOB = operation("Job_Disable", "Disable a job: no new task starts", tag=TAG, request=DISABLE,
                        parameters=[JOB_ID, *CONDITIONS], ok={202: None}, errors=(404, 409, 412, 413, 415),
                        conflicts="JobNotActive, JobCompleted or JobBeingDeleted.", etag=True)
ENABLE_JOB = operation("Job_Enable", "Enable a disabled job", tag=TAG, parameters=[JOB_ID, *CONDITIONS],
                       ok={202: None}, errors=(404, 409, 412),
                       conflicts="JobNotDisabled, JobCompleted or JobBeingDeleted.", etag=True)
TASK_COUNTS_OF_JOB = operation("Job_GetTaskCounts", "Count a job's tasks by state", tag=TAG,
                               parameters=[JOB_ID], ok={200: TASK_COUNTS_RESULT}, errors=(404,))
PREPARATION_AND_RELEASE_STATUS = operation(
    "Job_ListPreparationAndReleaseTaskStatus", "List the job's preparation and release runs, one per worker",
    tag=TAG, parameters=[JOB_ID, FILTER, *PAGE], ok={200: listing("JobPreparationAndReleaseTaskList",
                                                                         PREPARATION_AND_RELEASE)},
    errors=(404, 409), conflicts="JobPreparationTaskNotSpecified: the job has no preparation task.")
