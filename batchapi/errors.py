"""Batch errors: one exception type for services and views, one JSON shape on the wire.

The Batch error codes are the domain's vocabulary, so services raise `BatchError`
directly; the API turns it into Batch's error body, the admin and pages into a
message.
"""


import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

log = logging.getLogger("django.request")

ODATA_ERROR_METADATA = "{base}$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"


class BatchError(Exception):
    """An error the Batch service would return: a code, a status, a message, details."""

    def __init__(self, code: str, message: str, status: int = 400, values: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.values = values or {}

    def body(self, base_url: str = "") -> dict:
        body = {
            "odata.metadata": ODATA_ERROR_METADATA.format(base=base_url),
            "code": self.code,
            "message": {"lang": "en-US", "value": self.message},
        }
        if self.values:
            body["values"] = [{"key": k, "value": str(v)} for k, v in self.values.items()]
        return body


# Constructors for the errors raised in more than one place.

def job_not_found(job_id: str) -> BatchError:
    return BatchError("JobNotFound", "The specified job does not exist.", 404, {"JobId": job_id})


def task_not_found(task_id: str) -> BatchError:
    return BatchError("TaskNotFound", "The specified task does not exist.", 404, {"TaskId": task_id})


def pool_not_found(pool_id: str) -> BatchError:
    return BatchError("PoolNotFound", "The specified pool does not exist.", 404, {"PoolId": pool_id})


def node_not_found(node_id: str) -> BatchError:
    return BatchError("NodeNotFound", "The specified node does not exist.", 404, {"NodeId": node_id})


def pool_being_deleted(pool_id: str) -> BatchError:
    return BatchError("PoolBeingDeleted", "The specified pool has been marked for deletion and is being deleted.",
                      409, {"PoolId": pool_id})


def invalid_property(name: str, reason: str, value=None) -> BatchError:
    values = {"PropertyName": name}
    if value is not None:
        values["PropertyValue"] = value
    values["Reason"] = reason
    return BatchError(
        "InvalidPropertyValue", "The value provided for one of the properties in the request body is invalid.",
        400, values,
    )


def missing_property(name: str) -> BatchError:
    return BatchError(
        "MissingRequiredProperty", "A required property was not specified in the request body.",
        400, {"PropertyName": name},
    )


def invalid_query(name: str, value: str, reason: str) -> BatchError:
    return BatchError(
        "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.",
        400, {"QueryParameterName": name, "QueryParameterValue": value, "Reason": reason},
    )


def invalid_uri(reason: str) -> BatchError:
    return BatchError("InvalidUri", "The requested URI does not represent any resource on the server.", 400,
                      {"Reason": reason})


def invalid_header(name: str, value: str, reason: str) -> BatchError:
    return BatchError("InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.",
                      400, {"HeaderName": name, "HeaderValue": value, "Reason": reason})


def body_too_large(reason: str) -> BatchError:
    return BatchError(
        "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.",
        413, {"Reason": reason},
    )


def _base_url(request) -> str:
    return request.build_absolute_uri("/batch/") if request is not None else ""


def batch_exception_handler(exc, context):
    """DRF's exception handler, answering in Batch's error shape."""
    request = context.get("request")
    if isinstance(exc, BatchError):
        error = exc
    elif isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        error = BatchError(
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is "
            "formed correctly including the signature.",
            401, {"AuthenticationErrorDetail": str(exc.detail)},
        )
    elif isinstance(exc, exceptions.PermissionDenied | PermissionDenied):
        error = BatchError("InsufficientAccountPermissions", "This request is not authorized.", 403)
    elif isinstance(exc, exceptions.NotFound | Http404):
        error = BatchError("ResourceNotFound", "The specified resource does not exist.", 404)
    elif isinstance(exc, exceptions.MethodNotAllowed):
        error = BatchError("UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.", 405)
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        error = BatchError("UnsupportedMediaType", str(exc.detail), 415)
    elif isinstance(exc, exceptions.ParseError):
        error = BatchError("InvalidRequestBody", "The specified Request Body is not syntactically valid.", 400,
                           {"Reason": str(exc.detail)})
    elif isinstance(exc, RequestDataTooBig):
        error = body_too_large(str(exc))
    elif isinstance(exc, exceptions.Throttled):
        error = BatchError("ServerBusy", "The server is busy.", 503)
    elif isinstance(exc, exceptions.APIException):
        error = BatchError("InvalidRequest", str(exc.detail), exc.status_code)
    else:
        # A real bug. Logged as Django would, and answered as Batch answers its own
        # failures (clients retry a 500 InternalError; an HTML page they cannot read).
        log.error("Internal Server Error: %s", getattr(request, "path", "?"), exc_info=exc)
        error = BatchError("InternalError", "The server encountered an internal error. Please retry the request.",
                           500)
    response = Response(error.body(_base_url(request)), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = 'Token realm="batch"'
    return response
