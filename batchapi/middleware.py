"""Refuse a request whose path, query, headers or form fields no database would store alike.

A NUL in a query parameter made PostgreSQL refuse the query of a streamed CSV
after its response had begun: the request hung and kept its database connection
for good. Checked here, first of all middleware, such text never reaches a
session lookup, an authentication query, a view or a template, on any route:
the API answers Batch's 400 (InvalidUri, InvalidQueryParameterValue,
InvalidHeaderValue), every other page a plain 400. Bodies of the API are JSON
and are checked by its parser (batchapi.parsers).
"""

import re
import uuid

from django.core.exceptions import SuspiciousOperation
from django.http import HttpResponse, HttpResponseBadRequest
from django.http.multipartparser import MultiPartParserError

from .errors import BatchError, invalid_header, invalid_query, invalid_uri
from .input import bad_text, shown
from .renderers import render_json
from .views import JSON_CONTENT_TYPE

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# HTTP allows no control character but tab in a header value (RFC 9110 5.5); a
# test client or a proxy could still pass one on, and an echoed header must not
# split a response.
_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def input_check_middleware(get_response):
    def middleware(request):
        try:
            error = refusal(request)
        except (SuspiciousOperation, MultiPartParserError) as exc:  # too many fields, a broken form
            error = BatchError("InvalidRequest", "The request is not well formed.", 400, {"Reason": str(exc)})
        if error is None:
            return get_response(request)
        if is_api(request):
            return batch_error_response(request, error)
        return HttpResponseBadRequest(f"Bad request: {error.values.get('Reason', error.message)}\n",
                                      content_type="text/plain; charset=utf-8")

    return middleware


def is_api(request) -> bool:
    return request.path_info == "/batch" or request.path_info.startswith("/batch/")


def refusal(request) -> BatchError | None:
    """The first thing wrong with the request's path, headers, query or form fields, or None."""
    if reason := bad_text(request.path_info):
        return invalid_uri(f"the path {reason}")
    for key, value in request.META.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if isinstance(value, str) and (reason := _header_problem(value)):
                name = key.removeprefix("HTTP_").lower().replace("_", "-")
                return invalid_header(name, shown(value), f"the value {reason}")
    if is_api(request):
        request.get_host()  # DisallowedHost here, where it can still be answered in the API's shape
    for name, value in request.COOKIES.items():  # quoted cookies may write a NUL as \000
        if reason := bad_text(name) or bad_text(value):
            return invalid_header("cookie", shown(name), f"a cookie {reason}")
    for name, values in request.GET.lists():
        for value in [name, *values]:
            if reason := bad_text(value):
                return invalid_query(shown(name), shown(values[0] if values else ""), f"the parameter {reason}")
    if not is_api(request) and request.method == "POST" and request.content_type in FORM_TYPES:
        for name, values in request.POST.lists():
            for value in [name, *values]:
                if reason := bad_text(value):
                    return BatchError("InvalidRequest", "The request is not well formed.", 400,
                                      {"Reason": f"the form field {shown(name)} {reason}"})
    return None


def _header_problem(value: str) -> str | None:
    if reason := bad_text(value):
        return reason
    if _HEADER_CONTROL.search(value):
        return "contains a control character"
    return None


def batch_error_response(request, error: BatchError) -> HttpResponse:
    """A Batch error answered before DRF (and its renderer) is reached: the same body and headers."""
    try:
        base = request.build_absolute_uri("/batch/")
    except SuspiciousOperation:  # a Host not allowed
        base = "/batch/"
    response = HttpResponse(render_json(error.body(base)), status=error.status, content_type=JSON_CONTENT_TYPE)
    response["request-id"] = str(uuid.uuid4())
    return response
