"""The pool operations in the OpenAPI schema: the pool resource as pools.serializers renders it, and
what each operation of pools.api takes and answers (batchapi.schema has the shared parts)."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse

from batchapi.schema import (
    CONDITIONS,
    FILTER,
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
    path_id,
    refuses_unknown,
    string,
)

from .models import AllocationState, NodeFillType, PoolState
from .serializers import (
    MAX_SLOTS_PER_NODE,
    PoolAddSerializer,
    PoolPatchSerializer,
    PoolUpdatePropertiesSerializer,
    StartTaskSerializer,
)

TAG = "Pools"
POOL_ID = path_id("pool_id", "pool")
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
