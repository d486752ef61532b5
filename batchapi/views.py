"""The base of every Batch API view: headers, paging, and the parts every list shares."""

import uuid
from urllib.parse import urlencode

from django.conf import settings
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.shared_key import AccountScope

from . import conditional, versions
from .access import TaskScope, no_access, resolve
from .errors import BatchError, invalid_query
from .ids import id_key
from .input import INT64_MAX
from .parsers import BatchJSONParser
from .wire import rfc1123

JSON_CONTENT_TYPE = "application/json; odata=minimalmetadata"


class BatchView(APIView):
    """An Azure Batch REST operation."""

    parser_classes = [BatchJSONParser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        versions.check(request.query_params.get("api-version"), required=isinstance(request.auth, AccountScope))
        # Every request acts within one account; a viewer only reads there.
        request.batch_account, may_change = resolve(request)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not may_change:
            raise no_access()
        scope = request.auth
        if isinstance(scope, TaskScope):
            # A task's token reaches its own job and nothing else.
            job_id = kwargs.get("job_id")
            if job_id is None or id_key(job_id) != scope.job_key:
                raise BatchError("AuthorizationFailure", "This request is not authorized to perform this operation.",
                                 403)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        renderer = getattr(request, "accepted_renderer", None)
        if isinstance(response, Response) and renderer is not None and renderer.format == "json":
            response.content_type = JSON_CONTENT_TYPE
        response["request-id"] = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id")
        if client_request_id and request.headers.get("return-client-request-id", "").lower() == "true":
            response["client-request-id"] = client_request_id
        return response

    def base_url(self) -> str:
        """The account endpoint as the client called it, e.g. http://127.0.0.1:8000/batch."""
        return self.request.build_absolute_uri("/batch").rstrip("/")

    def unchanged(self, obj, *, read: bool = True) -> bool:
        """Check the request's conditional headers against `obj` (a job or task).

        True when a read should answer 304; a failed condition raises 412.
        Writes call this before changing anything.
        """
        return conditional.evaluate(self.request.headers, etag=obj.etag, last_modified=obj.last_modified, read=read)

    @staticmethod
    def not_modified(obj) -> Response:
        return BatchView.entity_headers(Response(status=304), obj)

    @staticmethod
    def entity_headers(response: Response, obj, *, location: str | None = None) -> Response:
        response["ETag"] = obj.etag
        response["Last-Modified"] = rfc1123(obj.last_modified)
        if location:
            response["Location"] = location
            response["DataServiceId"] = location
        return response


def int_param(params, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid_query(name, raw, "must be an integer") from None
    if not low <= value <= high:
        raise invalid_query(name, raw, f"must be between {low} and {high}")
    return value


def max_results(params) -> int:
    """maxresults: at most 1000 items a page, as the Batch service allows."""
    limit = settings.BATCHSITE_MAX_RESULTS
    return int_param(params, "maxresults", limit, 1, limit)


class Page:
    """One page of a keyset-paged list, and the odata.nextLink that carries everything.

    The client sends back only the link (plus its api-version), so the link holds
    the filter, select, page size and position itself. Position is the last
    primary key seen: each page is an index range scan, however deep.
    """

    def __init__(self, request, *, path: str):
        params = request.query_params
        self.request, self.path = request, path
        self.filter = params.get("$filter")
        self.select = params.get("$select")
        self.expand = params.get("$expand")
        self.api_version = params.get("api-version")
        self.size = max_results(params)
        self.after = int_param(params, "$skiptoken", 0, 0, INT64_MAX)  # a primary key

    def slice(self, queryset) -> tuple[list, bool]:
        """The rows of this page, and whether more follow (one extra row read, no COUNT)."""
        rows = list(queryset.filter(pk__gt=self.after).order_by("pk")[: self.size + 1])
        return rows[: self.size], len(rows) > self.size

    def body(self, items: list, rows: list, more: bool) -> dict:
        body = {"value": items}
        if more:
            query = {k: v for k, v in (("api-version", self.api_version), ("$filter", self.filter),
                                       ("$select", self.select), ("$expand", self.expand)) if v}
            query.update({"maxresults": self.size, "$skiptoken": rows[-1].pk})
            body["odata.nextLink"] = self.request.build_absolute_uri(self.path) + "?" + urlencode(query)
        return body


class UnknownResourceView(BatchView):
    """Any path below the endpoint that is no Batch operation: ResourceNotFound."""

    def dispatch_unknown(self, request, *args, **kwargs):
        raise BatchError("ResourceNotFound", f"The specified resource does not exist: {request.path}.", 404)

    get = post = put = patch = delete = head = dispatch_unknown
