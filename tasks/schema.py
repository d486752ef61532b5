"""The task and task file operations in the OpenAPI schema: the task resource as tasks.serializers
renders it, and what each operation of tasks.api takes and answers."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from batchapi.schema import (
    BATCH_ERROR,
    CONDITIONS,
    EXPAND,
    FILE_PATH,
    FILTER,
    HEADER,
    JOB_ID,
    MAXRESULTS,
    NAME_VALUE,
    PAGE,
    QUERY,
    SELECT,
    SKIPTOKEN,
    TASK_ID,
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
    string,
)

from . import file_specs
from .models import TaskResult, TaskState
from .serializers import TaskAddSerializer, TaskUpdateSerializer

TAG, FILES_TAG = "Tasks", "Files"
ANY_OBJECT = {"type": "object", "additionalProperties": {}}

RESOURCE_FILE_PROPERTIES = {
    "httpUrl": string("An http(s) URL to download.", format="uri"),
    "storageContainerUrl": string("A container of Batchsite's storage (its name, storage://name or a URL "
                                  "whose path starts with it): all its blobs are downloaded."),
    "autoStorageContainerName": string("A container of Batchsite's storage, by name."),
    "blobPrefix": string("With a container: only the blobs whose names start with this."),
    "filePath": string("Where to put it, relative to the task's working directory (needed with httpUrl)."),
    "fileMode": string("An octal mode such as 0755.", pattern="^0?[0-7]{3}$"),
}
OUTPUT_FILE_PROPERTIES = {
    "filePattern": string("Files to upload after the task, relative to its working directory (may start with "
                          "../ for the task directory); * ** ? and [] match."),
    "destination": obj({"container": obj({
        "containerUrl": string("The container (name, storage://name or URL)."),
        "path": string("The blob, or the folder of the blobs, in the container."),
    }, required=("containerUrl",))}, required=("container",)),
    "uploadOptions": obj({"uploadCondition": enum(("tasksuccess", "taskfailure", "taskcompletion"))},
                         required=("uploadCondition",)),
}


def nonempty(schema: dict, **more) -> dict:
    return {**schema, "minLength": 1, **more}


# What Add Task accepts ...
RESOURCE_FILE = component("ResourceFile", {**obj({
    **RESOURCE_FILE_PROPERTIES,
    "httpUrl": nonempty(RESOURCE_FILE_PROPERTIES["httpUrl"]),
    "storageContainerUrl": nonempty(RESOURCE_FILE_PROPERTIES["storageContainerUrl"]),
    "autoStorageContainerName": nonempty(RESOURCE_FILE_PROPERTIES["autoStorageContainerName"],
                                         pattern=file_specs.CONTAINER_NAME.pattern),
    "filePath": nonempty(RESOURCE_FILE_PROPERTIES["filePath"]),
}, description="A file to download before the task runs: exactly one of httpUrl (with filePath), "
               "storageContainerUrl and autoStorageContainerName."),
    "oneOf": [{"required": ["httpUrl", "filePath"]}, {"required": ["storageContainerUrl"]},
              {"required": ["autoStorageContainerName"]}]})
OUTPUT_FILE = component("OutputFile", obj({
    **OUTPUT_FILE_PROPERTIES, "filePattern": nonempty(OUTPUT_FILE_PROPERTIES["filePattern"]),
}, required=("filePattern", "destination"), description="Files to upload once the task ends."))
# ... and what a task returns: the files as they were sent (an empty source left in, say).
SENT_RESOURCE_FILE = component("ResourceFileAsSent", obj(RESOURCE_FILE_PROPERTIES))
SENT_OUTPUT_FILE = component("OutputFileAsSent", obj(OUTPUT_FILE_PROPERTIES))


class ResourceFilesSchema(OpenApiSerializerFieldExtension):
    target_class = "tasks.serializers.ResourceFilesField"
    priority = 1  # before batchapi.schema's for any JSON list

    def map_serializer_field(self, auto_schema, direction):
        return array(RESOURCE_FILE)


class OutputFilesSchema(OpenApiSerializerFieldExtension):
    target_class = "tasks.serializers.OutputFilesField"
    priority = 1

    def map_serializer_field(self, auto_schema, direction):
        return array(OUTPUT_FILE)


TASK_STATISTICS = component("TaskStatistics", obj({
    "url": string(format="uri"), "startTime": moment(), "lastUpdateTime": moment(),
    "userCPUTime": duration(), "kernelCPUTime": duration(), "wallClockTime": duration(),
    "readIOps": string("int64, as a string"), "writeIOps": string("int64, as a string"),
    "readIOGiB": {"type": "number"}, "writeIOGiB": {"type": "number"}, "waitTime": duration(),
}))

TASK = component("Task", obj({
    "id": string(), "displayName": string(), "url": string(format="uri"), "eTag": string(),
    "lastModified": moment(), "creationTime": moment(),
    "state": enum(TaskState.values), "stateTransitionTime": moment(),
    "previousState": enum(TaskState.values), "previousStateTransitionTime": moment(),
    "commandLine": string(), "environmentSettings": array(NAME_VALUE),
    "constraints": obj({"maxWallClockTime": duration(), "maxTaskRetryCount": integer("-1: no limit."),
                        "retentionTime": duration("How long the task's directory is kept after it completes.")}),
    "requiredSlots": integer(minimum=1),
    "dependsOn": ANY_OBJECT, "exitConditions": ANY_OBJECT,
    "resourceFiles": array(SENT_RESOURCE_FILE), "outputFiles": array(SENT_OUTPUT_FILE),
    "userIdentity": ANY_OBJECT, "affinityInfo": ANY_OBJECT, "containerSettings": ANY_OBJECT,
    "multiInstanceSettings": ANY_OBJECT, "applicationPackageReferences": array({}),
    "authenticationTokenSettings": ANY_OBJECT,
    "executionInfo": obj({
        "startTime": moment(), "endTime": moment(), "exitCode": integer(), "result": enum(TaskResult.values),
        "failureInfo": ANY_OBJECT, "retryCount": integer(), "lastRetryTime": moment(),
        "requeueCount": integer(), "lastRequeueTime": moment(),
    }),
    "nodeInfo": obj({"nodeId": string(), "poolId": string(), "affinityId": string(),
                     "taskRootDirectory": string(), "nodeUrl": string(format="uri")}),
    "stats": TASK_STATISTICS,
}, description="A task, as Get Task and List Tasks return it ($select may leave properties out)."))

TASK_ADD_RESULT = component("TaskAddResult", obj({
    "status": enum(("success", "clienterror", "servererror"), "Spelt as the Batch SDKs compare it."),
    "taskId": string(), "eTag": string(), "lastModified": moment(), "location": string(format="uri"),
    "error": BATCH_ERROR,
}, required=("status", "taskId")))
TASK_ADD_COLLECTION_RESULT = component("TaskAddCollectionResult", obj({"value": array(TASK_ADD_RESULT)},
                                                                       required=("value",)))

NODE_FILE = component("NodeFile", obj({
    "name": string("The path relative to the task's (or the node's) directory."), "url": string(format="uri"),
    "isDirectory": boolean(),
    "properties": obj({"creationTime": moment(), "lastModified": moment(), "contentLength": integer(),
                       "contentType": string(), "fileMode": string("The mode bits in octal, e.g. 0o100644.")}),
}))

ADD_TASK_COLLECTION = inline_serializer("TaskAddCollection", fields={
    "value": serializers.ListField(child=TaskAddSerializer(), max_length=100,
                                   help_text="At most 100 tasks, at most 1 MB in all."),
})
OPEN_JOB = "JobCompleted or JobBeingDeleted: the job takes no more tasks."
NOT_MODIFIED = OpenApiResponse(description="Not modified: the task matches If-None-Match or is not newer than "
                                           "If-Modified-Since.")
FILE_HEADERS = [
    OpenApiParameter("Content-Length", int, HEADER, response=[200], description="The file's (or slice's) size."),
    OpenApiParameter("Last-Modified", str, HEADER, response=[200], description="RFC 1123."),
    OpenApiParameter("ocp-creation-time", str, HEADER, response=[200], description="RFC 1123."),
    OpenApiParameter("ocp-batch-file-isdirectory", bool, HEADER, response=[200]),
]
RANGE = OpenApiParameter("ocp-range", str, HEADER, description=(
    "A slice of the file: bytes=a-b (inclusive), bytes=a- or bytes=-n. The answer is still 200."))
RECURSIVE = OpenApiParameter("recursive", bool, QUERY, description="Also list subfolders.")
FILE_FILTER = OpenApiParameter("$filter", str, QUERY, description=(
    "startswith(name,'prefix'), the one filter of files: names that begin so (case-sensitive). Without "
    "recursive, the level the prefix is at: startswith(name,'wd/') lists what is in wd."))
CLEANED_UP = "TaskFilesCleanedup: the task's retention time has passed and its files are gone."

LIST_TASKS = operation("Task_List", "List a job's tasks", tag=TAG,
                       parameters=[JOB_ID, FILTER, SELECT, EXPAND, *PAGE], ok={200: listing("TaskList", TASK)},
                       errors=(404,))
ADD_TASK = operation("Task_Add", "Add a task to a job", tag=TAG, request=TaskAddSerializer,
                     parameters=[JOB_ID], ok={201: None}, errors=(404, 409, 413, 415),
                     conflicts=f"TaskExists (ids ignore case), {OPEN_JOB}", etag=True, location=True)
ADD_TASKS = operation(
    "Task_AddCollection", "Add up to 100 tasks to a job: each succeeds or fails on its own", tag=TAG,
    request=ADD_TASK_COLLECTION, parameters=[JOB_ID], ok={200: TASK_ADD_COLLECTION_RESULT},
    errors=(404, 409, 413, 415), conflicts=OPEN_JOB)
GET_TASK = operation("Task_Get", "Get a task", tag=TAG, parameters=[JOB_ID, TASK_ID, SELECT, EXPAND, *CONDITIONS],
                     ok={200: TASK, 304: NOT_MODIFIED}, errors=(404, 412), etag=True)
UPDATE_TASK = operation("Task_Update", "Replace a task's constraints", tag=TAG, request=TaskUpdateSerializer,
                        parameters=[JOB_ID, TASK_ID, *CONDITIONS], ok={200: None}, errors=(404, 412, 413, 415),
                        etag=True)
DELETE_TASK = operation("Task_Delete", "Delete a task (a running one is stopped)", tag=TAG,
                        parameters=[JOB_ID, TASK_ID, *CONDITIONS], ok={200: None}, errors=(404, 412))
TERMINATE_TASK = operation("Task_Terminate", "Terminate a task", tag=TAG, parameters=[JOB_ID, TASK_ID, *CONDITIONS],
                           ok={204: None}, errors=(404, 409, 412), conflicts="TaskCompleted.", etag=True)
REACTIVATE_TASK = operation("Task_Reactivate", "Reactivate a failed task: it runs again", tag=TAG,
                            parameters=[JOB_ID, TASK_ID, *CONDITIONS], ok={204: None}, errors=(404, 409, 412),
                            conflicts="TaskNotCompleted, TaskCompletedSuccessfully.", etag=True)
LIST_FILES = operation(
    "File_ListFromTask", "List the files of a task's directory", tag=FILES_TAG,
    parameters=[JOB_ID, TASK_ID, RECURSIVE, FILE_FILTER, MAXRESULTS, SKIPTOKEN],
    ok={200: listing("NodeFileList", NODE_FILE)}, errors=(404, 409), conflicts=CLEANED_UP)
GET_FILE = operation("File_GetFromTask", "Read a task's file, or a slice of it", tag=FILES_TAG,
                     parameters=[JOB_ID, TASK_ID, FILE_PATH, RANGE, *FILE_HEADERS],
                     ok={(200, "application/octet-stream"): OpenApiTypes.BINARY}, errors=(404, 409, 416),
                     conflicts=CLEANED_UP)
FILE_PROPERTIES = operation("File_GetPropertiesFromTask", "A task file's size and times, in headers",
                            tag=FILES_TAG, parameters=[JOB_ID, TASK_ID, FILE_PATH, *FILE_HEADERS], ok={200: None},
                            errors=(404, 409), conflicts=CLEANED_UP)
