"""The pool operations in the OpenAPI schema: the pool resource as pools.serializers renders it, and
what each operation of pools.api takes and answers (batchapi.schema has the shared parts)."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from batchapi.schema import (
    CONDITIONS,
    FILTER,
    HEADER,
    NAME_VALUE,
    PAGE,
    PATH,
    QUERY,
    SELECT,
    SKIPTOKEN,
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
    path_id,
    refuses_unknown,
    string,
)
from tasks.schema import FILE_FILTER, FILE_HEADERS, FILES_TAG, NODE_FILE, RANGE, RECURSIVE

from .bodies import NodeDisableSchedulingSerializer, NodeRebootSerializer, NodeRemoveSerializer, PoolResizeSerializer
from .models import AllocationState, NodeFillType, NodeState, PoolState, SchedulingState
from .serializers import (
    COUNT_NAMES,
    MAX_SLOTS_PER_NODE,
    PoolAddSerializer,
    PoolPatchSerializer,
    PoolUpdatePropertiesSerializer,
    StartTaskSerializer,
)

TAG = "Pools"
POOL_ID = path_id("pool_id", "pool")
# A node's id is its worker's --name (by default host name and pid): dots may be in it, so no Batch id pattern.
NODE_ID = OpenApiParameter("node_id", str, PATH, required=True, description="The compute node's id.")
ANY_OBJECT = {"type": "object", "additionalProperties": {}}
ANY_LIST = {"type": "array", "items": {}}


class PoolBodySchema(OpenApiSerializerExtension):
    """The start task is a JSON object to the serializers, checked by its own serializer
    (validate_startTask): the schema names it."""

    target_class = "pools.serializers.PoolPatchSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["properties"]["startTask"] = auto_schema.resolve_serializer(
            refuses_unknown(StartTaskSerializer), direction).ref
        return schema


POOL = component("Pool", obj({
    "id": string(), "displayName": string(), "url": string(format="uri"), "eTag": string(),
    "lastModified": moment(), "creationTime": moment(),
    "state": enum(PoolState.values), "stateTransitionTime": moment(),
    "allocationState": enum(AllocationState.values), "allocationStateTransitionTime": moment(),
    "vmSize": string(), "resizeTimeout": duration(),
    "resizeErrors": array(obj({"code": string(), "message": string(), "values": array(NAME_VALUE)})),
    "currentDedicatedNodes": integer(), "currentLowPriorityNodes": integer(),
    "targetDedicatedNodes": integer(minimum=0), "targetLowPriorityNodes": integer(minimum=0),
    "enableAutoScale": boolean(), "autoScaleFormula": string(), "autoScaleEvaluationInterval": duration(),
    "startTask": ANY_OBJECT, "taskSlotsPerNode": integer(minimum=1, maximum=MAX_SLOTS_PER_NODE),
    "taskSchedulingPolicy": obj({"nodeFillType": enum(NodeFillType.values)}),
    "metadata": array(NAME_VALUE),
    "virtualMachineConfiguration": ANY_OBJECT, "cloudServiceConfiguration": ANY_OBJECT,
    "networkConfiguration": ANY_OBJECT, "mountConfiguration": ANY_LIST, "userAccounts": ANY_LIST,
    "enableInterNodeCommunication": boolean(), "applicationLicenses": ANY_LIST, "upgradePolicy": ANY_OBJECT,
    "resourceTags": ANY_OBJECT, "certificateReferences": ANY_LIST, "applicationPackageReferences": ANY_LIST,
    "targetNodeCommunicationMode": string(),
}, description="A pool, as Get Pool and List Pools return it ($select may leave properties out)."))

NOT_MODIFIED = OpenApiResponse(description="Not modified: the pool matches If-None-Match or is not newer than "
                                           "If-Modified-Since.")
DELETING = "PoolBeingDeleted: the pool takes no more changes."

LIST_POOLS = operation("Pool_List", "List the account's pools", tag=TAG, parameters=[FILTER, SELECT, *PAGE],
                       ok={200: listing("PoolList", POOL)})
ADD_POOL = operation("Pool_Add", "Add a pool", tag=TAG, request=PoolAddSerializer, ok={201: None},
                     errors=(409, 413, 415), conflicts="PoolExists: a pool of that id exists (ids ignore case).",
                     etag=True, location=True)
GET_POOL = operation("Pool_Get", "Get a pool", tag=TAG, parameters=[POOL_ID, SELECT, *CONDITIONS],
                     ok={200: POOL, 304: NOT_MODIFIED}, errors=(404, 412), etag=True)
POOL_EXISTS = operation("Pool_Exists", "Whether a pool exists", tag=TAG, parameters=[POOL_ID, *CONDITIONS],
                        ok={200: None, 304: NOT_MODIFIED}, errors=(404, 412), etag=True)
PATCH_POOL = operation("Pool_Patch", "Update a pool's properties: those given change", tag=TAG,
                       request=PoolPatchSerializer, parameters=[POOL_ID, *CONDITIONS], ok={200: None},
                       errors=(404, 409, 412, 413, 415), conflicts=DELETING, etag=True)
UPDATE_POOL_PROPERTIES = operation(
    "Pool_UpdateProperties", "Replace a pool's start task and metadata: one left out is removed", tag=TAG,
    request=PoolUpdatePropertiesSerializer, parameters=[POOL_ID, *CONDITIONS], ok={204: None},
    errors=(404, 409, 412, 413, 415), conflicts=DELETING, etag=True)
DELETE_POOL = operation("Pool_Delete", "Delete a pool: its nodes leave, then it is gone", tag=TAG,
                        parameters=[POOL_ID, *CONDITIONS], ok={202: None}, errors=(404, 409, 412),
                        conflicts=DELETING)


TASK_EXECUTION = obj({
    "startTime": moment(), "endTime": moment(), "exitCode": integer(), "result": enum(["success", "failure"]),
    "failureInfo": ANY_OBJECT, "retryCount": integer(), "lastRetryTime": moment(), "requeueCount": integer(),
    "lastRequeueTime": moment()})
NODE = component("ComputeNode", obj({
    "id": string(), "url": string(format="uri"), "state": enum(NodeState.values),
    "schedulingState": enum(SchedulingState.values), "stateTransitionTime": moment(), "lastBootTime": moment(),
    "allocationTime": moment(), "ipAddress": string(), "affinityId": string(), "vmSize": string(),
    "totalTasksRun": integer(), "totalTasksSucceeded": integer(), "runningTasksCount": integer(),
    "runningTaskSlotsCount": integer(),
    "recentTasks": array(obj({"taskUrl": string(format="uri"), "jobId": string(), "taskId": string(),
                              "taskState": string(), "executionInfo": TASK_EXECUTION}),
                         "Its newest task runs (at most 5): on Get Node, and on List when $select names them."),
    "startTask": ANY_OBJECT, "startTaskInfo": ANY_OBJECT, "errors": ANY_LIST, "isDedicated": boolean(),
    "nodeAgentInfo": obj({"version": string(), "lastUpdateTime": moment()}),
}, description="A compute node of a pool, as Get and List Compute Nodes return it ($select may leave properties "
               "out)."))
COUNTS = component("NodeCounts", obj({name: integer(minimum=0) for name in [*COUNT_NAMES, "total"]},
                                     required=(*COUNT_NAMES, "total")))
POOL_NODE_COUNTS = component("PoolNodeCounts", obj({"poolId": string(), "dedicated": COUNTS, "lowPriority": COUNTS},
                                                   required=("poolId", "dedicated", "lowPriority")))
NODE_COUNTS_PAGE = OpenApiParameter("maxresults", int, QUERY,
                                    description="At most this many pools a page (1-1000; 10).")

LIST_NODES = operation("ComputeNode_List", "List a pool's compute nodes", tag=TAG,
                       parameters=[POOL_ID, FILTER, SELECT, *PAGE], ok={200: listing("ComputeNodeList", NODE)},
                       errors=(404,))
GET_NODE = operation("ComputeNode_Get", "Get a compute node", tag=TAG, parameters=[POOL_ID, NODE_ID, SELECT],
                     ok={200: NODE}, errors=(404,), etag=True)
LIST_POOL_NODE_COUNTS = operation(
    "Account_ListPoolNodeCounts", "Count each pool's compute nodes by state", tag=TAG,
    parameters=[FILTER, NODE_COUNTS_PAGE, SKIPTOKEN], ok={200: listing("PoolNodeCountsList", POOL_NODE_COUNTS)})

RESIZING = "PoolBeingResized: the pool is resizing (wait until it is steady, or stop the resize); " + DELETING
RESIZE_POOL = operation("Pool_Resize", "Change a pool's target nodes; the allocator makes it so", tag=TAG,
                        request=PoolResizeSerializer, parameters=[POOL_ID, *CONDITIONS], ok={202: None},
                        errors=(404, 409, 412, 413, 415), conflicts=RESIZING, etag=True)
STOP_RESIZE = operation("Pool_StopResize", "Stop a pool's resize where it is", tag=TAG,
                        parameters=[POOL_ID, *CONDITIONS], ok={202: None}, errors=(404, 409, 412), conflicts=DELETING,
                        etag=True)
REMOVE_NODES = operation("Pool_RemoveNodes", "Remove nodes from a pool (its target shrinks by as many)", tag=TAG,
                         request=NodeRemoveSerializer, parameters=[POOL_ID, *CONDITIONS], ok={202: None},
                         errors=(404, 409, 412, 413, 415), conflicts=RESIZING, etag=True)
NODE_BUSY = "OperationInvalidForCurrentState: the node cannot do that in its state."
DISABLE_SCHEDULING = operation(
    "ComputeNode_DisableScheduling", "Schedule no more tasks on a node; it is offline once empty", tag=TAG,
    request=NodeDisableSchedulingSerializer, parameters=[POOL_ID, NODE_ID], ok={200: None}, errors=(404, 413, 415))
ENABLE_SCHEDULING = operation("ComputeNode_EnableScheduling", "Schedule tasks on a node again", tag=TAG,
                              parameters=[POOL_ID, NODE_ID], ok={200: None}, errors=(404,))
REBOOT_NODE = operation("ComputeNode_Reboot", "Restart a node's agent; its start task runs again", tag=TAG,
                        request=NodeRebootSerializer, parameters=[POOL_ID, NODE_ID], ok={202: None},
                        errors=(404, 409, 413, 415), conflicts=NODE_BUSY)


# --- a node's files (pools.node_file_api; what the paths name: pools.node_files) -----------------

NODE_FILE_PATH = OpenApiParameter("file_path", str, PATH, required=True, description=(
    "The path relative to the node's directory: startup/... (the start task's directory: stdout.txt, "
    "stderr.txt, wd/) or shared/... (the node's shared directory). '/' may stand as %2F."))
NODE_FILE_HEADERS = [
    *FILE_HEADERS,
    OpenApiParameter("ocp-batch-file-url", str, HEADER, response=[200], description="The file's URL."),
    OpenApiParameter("ocp-batch-file-mode", str, HEADER, response=[200],
                     description="The mode bits in octal, e.g. 0o100644."),
]
NODE_FILES_ERRORS = (404,)  # PoolNotFound, NodeNotFound, FileNotFound

LIST_NODE_FILES = operation(
    "File_ListFromComputeNode", "List a node's files: its startup and shared directories", tag=FILES_TAG,
    parameters=[POOL_ID, NODE_ID, RECURSIVE, FILE_FILTER, *PAGE],
    ok={200: listing("NodeFileList", NODE_FILE)}, errors=NODE_FILES_ERRORS)
GET_NODE_FILE = operation("File_GetFromComputeNode", "Read a node's file, or a slice of it", tag=FILES_TAG,
                          parameters=[POOL_ID, NODE_ID, NODE_FILE_PATH, RANGE, *NODE_FILE_HEADERS],
                          ok={(200, "application/octet-stream"): OpenApiTypes.BINARY}, errors=(404, 416))
NODE_FILE_PROPERTIES = operation(
    "File_GetPropertiesFromComputeNode", "A node file's (or directory's) size and times, in headers",
    tag=FILES_TAG, parameters=[POOL_ID, NODE_ID, NODE_FILE_PATH, *NODE_FILE_HEADERS], ok={200: None},
    errors=NODE_FILES_ERRORS)
DELETE_NODE_FILE = operation(
    "File_DeleteFromComputeNode", "Delete a node's file, or a directory (with recursive, whatever is in it)",
    tag=FILES_TAG, parameters=[POOL_ID, NODE_ID, NODE_FILE_PATH, OpenApiParameter(
        "recursive", bool, OpenApiParameter.QUERY, description="Delete a directory with everything in it.")],
    ok={200: None}, errors=(404, 409),
    conflicts="DirectoryNotEmpty (a directory, without recursive), FileDeleteFailed.")
