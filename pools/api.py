"""Azure Batch pool operations: /pools, /pools/{poolId}, updateproperties."""

from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.fields import validate_body
from batchapi.odata import parse_filter, project, selection
from batchapi.views import BatchView, Page

from . import schema
from .models import Pool
from .selectors import get_pool
from .serializers import (
    FILTERS,
    NESTED,
    PROPERTIES,
    PoolAddSerializer,
    PoolPatchSerializer,
    PoolUpdatePropertiesSerializer,
    columns,
    pool_fields,
    pool_to_wire,
)
from .services import lifecycle


class PoolView(BatchView):
    """An operation on one pool of the request's account."""

    def pool(self, pool_id: str, *, only=None) -> Pool:
        """The request's account's pool `pool_id`, or 404 PoolNotFound (also when another account has one)."""
        return get_pool(self.request.batch_account, pool_id, only=only)


@extend_schema_view(get=schema.LIST_POOLS, post=schema.ADD_POOL)
class PoolListView(BatchView):
    def get(self, request):
        page = Page(request, path=request.path)
        select, _ = selection(page.select, page.expand, PROPERTIES, NESTED)
        pools = Pool.objects.filter(account=request.batch_account).only(*columns(select))
        if page.filter:
            pools = pools.filter(parse_filter(page.filter, FILTERS))
        rows, more = page.slice(pools)
        base = self.base_url()
        return Response(page.body([project(pool_to_wire(p, base=base, select=select), page.select) for p in rows],
                                  rows, more))

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
        wire = pool_to_wire(pool, base=self.base_url(), select=select)
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


@extend_schema_view(post=schema.UPDATE_POOL_PROPERTIES)
class PoolUpdatePropertiesView(PoolView):
    def post(self, request, pool_id):
        data = validate_body(PoolUpdatePropertiesSerializer, request.data)
        pool = self.pool(pool_id)
        self.unchanged(pool, read=False)
        pool = lifecycle.update_pool_properties(pool=pool, changes=pool_fields(data))
        return self.entity_headers(Response(status=status.HTTP_204_NO_CONTENT), pool)
