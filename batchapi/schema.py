"""The OpenAPI 3 description of the Batch API (drf-spectacular), and the views that serve it.

The request bodies are described by the serializers that validate them (the job
and task API modules pass them in), so the schema changes when they do. What no
serializer produces - the resources as rendered, lists, the error body - is
written here and in jobs/schema.py and tasks/schema.py as OpenAPI components,
and tests pin them to the code that renders them.

Importing this module registers the schema extensions for Batchsite's own
authentication classes and serializer fields; the API modules import it.
"""

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.exceptions import NotAuthenticated

from .ids import ID_PATTERN
from .renderers import BatchJSONRenderer
from .versions import API_VERSIONS
from .views import UnknownResourceView

QUERY, HEADER, PATH = OpenApiParameter.QUERY, OpenApiParameter.HEADER, OpenApiParameter.PATH

# --- components: written once, referenced by name ---------------------------------------

COMPONENTS: dict[str, dict] = {}


def component(name: str, schema: dict) -> dict:
    """Register a named schema; returns the reference to use in operations."""
    COMPONENTS[name] = schema
    return ref(name)


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def string(description: str = "", **more) -> dict:
    return {"type": "string", **({"description": description} if description else {}), **more}


def moment(description: str = "") -> dict:
    return string(description, format="date-time")


# ISO 8601 durations as batchapi.wire reads them: days and time, no sign. (Not format "duration":
# validators of that refuse .NET's 7-digit fractions, as in Batch's "no limit".)
_NUMBER = "[0-9]+([.,][0-9]+)?"
DURATION_PATTERN = f"^[Pp]({_NUMBER}[Dd])?([Tt]({_NUMBER}[Hh])?({_NUMBER}[Mm])?({_NUMBER}[Ss])?)?$"


def duration(description: str = "") -> dict:
    return string(description or "An ISO 8601 duration such as PT1H30M; P10675199DT2H48M5.4775807S means no limit.",
                  pattern=DURATION_PATTERN)


def integer(description: str = "", **more) -> dict:
    return {"type": "integer", **({"description": description} if description else {}), **more}


def boolean(description: str = "") -> dict:
    return {"type": "boolean", **({"description": description} if description else {})}


def obj(properties: dict, *, required: tuple = (), description: str = "") -> dict:
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def enum(values, description: str = "") -> dict:
    return string(description, enum=list(values))


def array(items: dict, description: str = "") -> dict:
    return {"type": "array", "items": items, **({"description": description} if description else {})}


def listing(name: str, item: dict) -> dict:
    """A Batch list page: `value`, and `odata.nextLink` while more follow."""
    return component(name, obj({
        "value": array(item),
        "odata.nextLink": string("The next page: send it back as it is (it carries the filter, selection, "
                                 "page size and position).", format="uri"),
    }, required=("value",)))


BATCH_ERROR_MESSAGE = component("BatchErrorMessage", obj(
    {"lang": string(example="en-US"), "value": string()}, required=("lang", "value")))
BATCH_ERROR_DETAIL = component("BatchErrorDetail", obj({"key": string(), "value": string()}))
BATCH_ERROR = component("BatchError", obj({
    "odata.metadata": string(),
    "code": string("Batch's error code, e.g. JobNotFound, InvalidPropertyValue, AuthenticationFailed."),
    "message": BATCH_ERROR_MESSAGE,
    "values": array(BATCH_ERROR_DETAIL, "Details: the property, parameter or id concerned, and why."),
}, required=("code", "message"), description="Every error of the Batch API comes in this shape."))
NAME_VALUE = component("NameValuePair", obj({"name": string(), "value": string()}, required=("name",)))

# --- parameters -------------------------------------------------------------------------

ID_DESCRIPTION = "A Batch id: 1-64 letters, digits, hyphens and underscores; compared without regard to case."


def path_id(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, str, PATH, required=True, pattern=ID_PATTERN,
                            description=f"The {what}'s id. {ID_DESCRIPTION}")


JOB_ID = path_id("job_id", "job")
TASK_ID = path_id("task_id", "task")
FILE_PATH = OpenApiParameter("file_path", str, PATH, required=True, description=(
    "The file's path relative to the task's directory, e.g. stdout.txt or wd/out/result.csv ('/' may "
    "stand as %2F)."))

COMMON = [
    OpenApiParameter("api-version", str, QUERY, enum=list(API_VERSIONS), description=(
        "The Batch REST API version the client speaks. Required with Shared Key; token users may leave it "
        "out. Any other value is a 400 InvalidQueryParameterValue.")),
    OpenApiParameter("client-request-id", OpenApiTypes.UUID, HEADER,
                     description="The caller's id for the request, echoed when return-client-request-id is true."),
    OpenApiParameter("return-client-request-id", bool, HEADER,
                     description="Whether the response should carry client-request-id."),
    OpenApiParameter("batchsite-account", str, HEADER, description=(
        "The Batch account to act in, for a user who is a member of several (token and session users). "
        "A user of one account may leave it out.")),
    OpenApiParameter("request-id", str, HEADER, response=True,
                     description="The server's id for the request."),
    OpenApiParameter("client-request-id", OpenApiTypes.UUID, HEADER, response=True,
                     description="The caller's client-request-id, when return-client-request-id was true."),
]

FILTER = OpenApiParameter("$filter", str, QUERY, description=(
    "An OData filter, e.g. state eq 'active', startswith(id,'frame'), executionInfo/exitCode ne 0, "
    "creationTime gt DateTime'2026-01-01T00:00:00Z', joined with and / or / not and parentheses."))
SELECT = OpenApiParameter("$select", str, QUERY,
                          description="The properties to return, comma-separated; nested with /, e.g. id,state.")
EXPAND = OpenApiParameter("$expand", str, QUERY, enum=["stats"],
                          description="stats: add the resource's statistics (CPU, wall clock, I/O, wait time).")
MAXRESULTS = OpenApiParameter("maxresults", int, QUERY, description="At most this many items a page (1-1000; 1000).")
# maxresults' bounds, written on the parameter's schema by describe_batch (OpenApiParameter has none).
MAX_RESULTS = {"minimum": 1, "maximum": 1000}
SKIPTOKEN = OpenApiParameter("$skiptoken", str, QUERY,
                             description="Where the page starts: set by odata.nextLink, not by hand.")
PAGE = [MAXRESULTS, SKIPTOKEN]

_ETAG_AND_DATE = [
    OpenApiParameter("ETag", str, HEADER, response=[200, 201, 202, 204, 304], description="The entity tag."),
    OpenApiParameter("Last-Modified", str, HEADER, response=[200, 201, 202, 204, 304],
                     description="When the resource last changed (RFC 1123)."),
]
_LOCATION = [
    OpenApiParameter("Location", str, HEADER, response=[201], description="The new resource's URL."),
    OpenApiParameter("DataServiceId", str, HEADER, response=[201], description="The new resource's URL."),
]
CONDITIONS = [
    OpenApiParameter("If-Match", str, HEADER,
                     description="Act only if the resource's ETag is one of these (quoted or not; * for any)."),
    OpenApiParameter("If-None-Match", str, HEADER,
                     description="Act only if the ETag is none of these (a read answers 304 otherwise)."),
    OpenApiParameter("If-Modified-Since", str, HEADER,
                     description="Act only if changed since then (RFC 1123; a read answers 304 otherwise)."),
    OpenApiParameter("If-Unmodified-Since", str, HEADER, description="Act only if not changed since then."),
]

# --- responses ----------------------------------------------------------------------------

ERRORS = {
    400: "The request is not valid: InvalidQueryParameterValue, MissingRequiredQueryParameter, "
         "InvalidRequestBody, MissingRequiredProperty, InvalidPropertyValue, MissingRequiredHeader, ...",
    401: "AuthenticationFailed: no credentials, or credentials that are not valid.",
    403: "InsufficientAccountPermissions (a viewer changing something, or not a member of the account), "
         "AuthorizationFailure (a task's token used on another job).",
    404: "JobNotFound, TaskNotFound or FileNotFound.",
    409: "The resource's state forbids the operation, or it exists already.",
    412: "ConditionNotMet: a conditional header's condition is not met; nothing changed.",
    413: "RequestBodyTooLarge.",
    415: "UnsupportedMediaType: the body is not JSON.",
    416: "InvalidRange: ocp-range does not fit the file.",
}


def error(status: int, description: str = "") -> OpenApiResponse:
    return OpenApiResponse(BATCH_ERROR, description=description or ERRORS[status])


# The request body components (COMPONENT_SPLIT_REQUEST names) checked whole by validate_body.
_WHOLE_BODIES: set[str] = set()


def refuses_unknown(serializer_class):
    """Say that `serializer_class` is checked by validate_body, which refuses unknown properties."""
    name = serializer_class.__name__.removesuffix("Serializer")
    _WHOLE_BODIES.update({f"{name}Request", f"Patched{name}Request"})
    return serializer_class


def operation(operation_id: str, summary: str, *, tag: str, ok: dict, errors=(), conflicts: str = "",
              request=None, parameters=(), etag: bool = False, location: bool = False) -> dict:
    """extend_schema for one Batch operation: its parameters, success answers and every error it gives.

    Every operation may answer 400, 401 and 403; `errors` adds the others it may give,
    `conflicts` says which 409s.
    """
    responses = dict(ok)
    for status in (400, 401, 403, *errors):
        responses[status] = error(status, conflicts if status == 409 and conflicts else "")
    headers = [*(_ETAG_AND_DATE if etag else ()), *(_LOCATION if location else ())]
    if isinstance(request, type):  # the serializer of the whole body, given to validate_body
        refuses_unknown(request)
    return extend_schema(operation_id=operation_id, summary=summary, tags=[tag], request=request,
                         responses=responses, parameters=[*COMMON, *parameters, *headers])


# --- Batchsite's own authentication classes and fields -----------------------------------


class SharedKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.shared_key.SharedKeyAuthentication"
    name = "sharedKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": (
            "Azure Batch's Shared Key, as the azure-batch SDK and az CLI sign: "
            "'SharedKey <account>:<base64 HMAC-SHA256 of the request>', with ocp-date (or Date) within "
            "15 minutes of the server's clock. The api-version query parameter is then required.")}


class TaskTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tasks.tokens.TaskTokenAuthentication"
    name = "taskToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": (
            "A running task's AZ_BATCH_AUTHENTICATION_TOKEN: good for its own job only, while it runs.")}


class WireDurationSchema(OpenApiSerializerFieldExtension):
    target_class = "batchapi.fields.WireDurationField"

    def map_serializer_field(self, auto_schema, direction):
        return duration()


class JSONObjectSchema(OpenApiSerializerFieldExtension):
    target_class = "batchapi.fields.JSONObjectField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "object", "additionalProperties": {}}


class JSONListSchema(OpenApiSerializerFieldExtension):
    target_class = "batchapi.fields.JSONListField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "array", "items": {}}


# --- hooks (SPECTACULAR_SETTINGS) ---------------------------------------------------------


def batch_operations_only(endpoints):
    """Only the Batch operations below /batch: not the catch-all, the admin or the schema itself.

    HEAD is described where a view answers it itself (Get Task File Properties);
    elsewhere it is GET without a body.
    """
    kept = []
    for path, regex, method, view in endpoints:
        if not path.startswith("/batch/") or view.cls is UnknownResourceView or method == "HEAD":
            continue
        kept.append((path, regex, method, view))
        if method == "GET" and any("head" in vars(cls) for cls in view.cls.__mro__):
            kept.append((path, regex, "HEAD", view))
    return kept


def describe_batch(result, generator, request, public):
    """What drf-spectacular cannot say by itself: the version, the components written here, Batch's
    names of the path parameters, and that a request body refuses properties it does not know."""
    result["info"]["version"] = API_VERSIONS[-1]
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name in _WHOLE_BODIES & schemas.keys():
        schemas[name]["additionalProperties"] = False
    schemas.update(COMPONENTS)
    paths = {}
    for path, operations in result["paths"].items():
        for op in operations.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path":
                    parameter["name"] = PATH_NAMES.get(parameter["name"], parameter["name"])
                if parameter["name"] == "maxresults":
                    parameter["schema"].update(MAX_RESULTS)
        for django_name, batch_name in PATH_NAMES.items():
            path = path.replace(f"{{{django_name}}}", f"{{{batch_name}}}")
        paths[path] = operations
    result["paths"] = paths
    return result


# The URL patterns' names of path parameters, and Batch's.
PATH_NAMES = {"pool_id": "poolId", "node_id": "nodeId", "job_id": "jobId", "task_id": "taskId", "file_path": "filePath"}


# --- where it is served -------------------------------------------------------------------


class LoginFirst:
    """Anonymous browsers go to the login page; anonymous API calls get Batch's 401."""

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated) and self.wants_page(self.request):
            return redirect_to_login(self.request.get_full_path())
        # Errors in Batch's JSON, whatever the schema's format was to be.
        self.request.accepted_renderer, self.request.accepted_media_type = BatchJSONRenderer(), "application/json"
        return super().handle_exception(exc)

    @staticmethod
    def wants_page(request) -> bool:
        return "text/html" in request.headers.get("Accept", "")


class SchemaView(LoginFirst, SpectacularAPIView):
    """GET /api/schema/: the OpenAPI 3 schema, YAML (JSON with ?format=json)."""


class DocsView(LoginFirst, SpectacularSwaggerSplitView):
    """GET /api/docs/: Swagger UI; its init script (?script) and page style are files of their own, so a
    Content-Security-Policy of script-src 'self' and style-src 'self' holds."""

    template_name = "batchapi/swagger_ui.html"

    @staticmethod
    def wants_page(request) -> bool:
        return True
