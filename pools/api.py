"""Azure Batch pool operations: /pools, /pools/{poolId}, updateproperties, resize, stopresize,
removenodes; and the counts of the pools' nodes (/nodecounts). The nodes themselves: `pools.node_api`."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.fields import validate_body
from batchapi.odata import parse_filter, project, selection
from batchapi.views import BatchView, Page, int_param

from . import node_counts, schema
from .bodies import NodeRemoveSerializer, PoolResizeSerializer
from .models import Pool
from .selectors import get_pool
from .serializers import (
    FILTERS,
    NESTED,
    NODE_COUNTS_FILTERS,
    PROPERTIES,
    PoolAddSerializer,
    PoolPatchSerializer,
    PoolUpdatePropertiesSerializer,
    columns,
    current_nodes,
    pool_fields,
    pool_node_counts_to_wire,
    pool_to_wire,
)
from .services import lifecycle, sizing

NODE_COUNTS_PAGE = 10  # List Pool Node Counts' page when maxresults is not given (Batch's default)


class PoolView(BatchView):
    """An operation on one pool of the request's account."""

    def pool(self, pool_id: str, *, only=None) -> Pool:
        """The request's account's pool `pool_id`, or 404 PoolNotFound (also when another account has one)."""
        return get_pool(self.request.batch_account, pool_id, only=only)

    def accepted(self, pool: Pool) -> Response:
        """202, with the pool's ETag as it is now."""
        pool.refresh_from_db(fields=["last_modified"])
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), pool)


@extend_schema_view(get=schema.LIST_POOLS, post=schema.ADD_POOL)
class PoolListView(BatchView):
    def get(self, request):
        page = Page(request, path=request.path)
        select, _ = selection(page.select, page.expand, PROPERTIES, NESTED)
        pools = Pool.objects.filter(account=request.batch_account).only(*columns(select))
        if page.filter:
            pools = pools.filter(parse_filter(page.filter, FILTERS))
        rows, more = page.slice(pools)
        base, counts = self.base_url(), current_nodes(rows, select)
        items = [project(pool_to_wire(p, base=base, counts=counts, select=select), page.select) for p in rows]
        return Response(page.body(items, rows, more))

    def post(self, request):
        data = validate_body(PoolAddSerializer, request.data)
        pool = lifecycle.create_pool(spec={**pool_fields(data), "account": request.batch_account})
        response = Response(status=status.HTTP_201_CREATED)
        return self.entity_headers(response, pool, location=f"{self.base_url()}/pools/{pool.batch_id}")


@extend_schema_view(get=schema.GET_POOL, head=schema.POOL_EXISTS, patch=schema.PATCH_POOL,
                    delete=schema.DELETE_POOL)
class PoolDetailView(PoolView):
    def get(self, request, pool_id):
        select_text = request.query_params.get("$select")
        select, _ = selection(select_text, request.query_params.get("$expand"), PROPERTIES, NESTED)
        pool = self.pool(pool_id, only=columns(select))
        if self.unchanged(pool):
            return self.not_modified(pool)
        wire = pool_to_wire(pool, base=self.base_url(), counts=current_nodes([pool], select), select=select)
        return self.entity_headers(Response(project(wire, select_text)), pool)

    def head(self, request, pool_id):
        """Exists: 200 with the pool's ETag, or 404."""
        pool = self.pool(pool_id, only=("pk", "last_modified"))
        if self.unchanged(pool):
            return self.not_modified(pool)
        return self.entity_headers(Response(status=status.HTTP_200_OK), pool)

    def patch(self, request, pool_id):
        data = validate_body(PoolPatchSerializer, request.data)
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        pool = lifecycle.patch_pool(pool=pool, changes=pool_fields(data))
        return self.entity_headers(Response(status=status.HTTP_200_OK), pool)

    def delete(self, request, pool_id):
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        lifecycle.delete_pool(pool=pool)
        return Response(status=status.HTTP_202_ACCEPTED)


@extend_schema_view(post=schema.RESIZE_POOL)
class PoolResizeView(PoolView):
    def post(self, request, pool_id):
        data = validate_body(PoolResizeSerializer, request.data)
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        sizing.resize_pool(pool=pool, target_dedicated=data.get("targetDedicatedNodes"),
                           target_low_priority=data.get("targetLowPriorityNodes"),
                           resize_timeout=data.get("resizeTimeout"),
                           deallocation=data.get("nodeDeallocationOption", "requeue"))
        return self.accepted(pool)


@extend_schema_view(post=schema.STOP_RESIZE)
class PoolStopResizeView(PoolView):
    def post(self, request, pool_id):
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        sizing.stop_resize(pool=pool)
        return self.accepted(pool)


@extend_schema_view(post=schema.REMOVE_NODES)
class PoolRemoveNodesView(PoolView):
    def post(self, request, pool_id):
        data = validate_body(NodeRemoveSerializer, request.data)
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        sizing.remove_nodes(pool=pool, node_ids=data["nodeList"], resize_timeout=data.get("resizeTimeout"),
                            deallocation=data.get("nodeDeallocationOption", "requeue"))
        return self.accepted(pool)


@extend_schema_view(post=schema.UPDATE_POOL_PROPERTIES)
class PoolUpdatePropertiesView(PoolView):
    def post(self, request, pool_id):
        data = validate_body(PoolUpdatePropertiesSerializer, request.data)
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        pool = lifecycle.update_pool_properties(pool=pool, changes=pool_fields(data))
        return self.entity_headers(Response(status=status.HTTP_204_NO_CONTENT), pool)


class NodeCountsPage(Page):
    """Batch answers List Pool Node Counts 10 pools a page unless maxresults asks for more."""

    def __init__(self, request, *, path: str):
        super().__init__(request, path=path)
        self.size = int_param(request.query_params, "maxresults", NODE_COUNTS_PAGE, 1, settings.BATCHSITE_MAX_RESULTS)


@extend_schema_view(get=schema.LIST_POOL_NODE_COUNTS)
class NodeCountsView(BatchView):
    """List Pool Node Counts: the count rows of a page of the account's pools; no node row is read."""

    def get(self, request):
        page = NodeCountsPage(request, path=request.path)
        pools = Pool.objects.filter(account=request.batch_account).only("pk", "batch_id")
        if page.filter:
            pools = pools.filter(parse_filter(page.filter, NODE_COUNTS_FILTERS))
        rows, more = page.slice(pools)
        counts = node_counts.read_many([p.pk for p in rows])
        body = page.body([pool_node_counts_to_wire(p, counts[p.pk]) for p in rows], rows, more)
        return Response({"odata.metadata": f"{self.base_url()}/$metadata#poolnodecounts", **body})
