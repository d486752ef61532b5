"""Azure Batch compute node operations: /pools/{poolId}/nodes, /pools/{poolId}/nodes/{nodeId}, and
what users ask of a node (disablescheduling, enablescheduling, reboot)."""

from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.fields import validate_body
from batchapi.odata import parse_filter, parse_select, project
from batchapi.views import Page

from . import schema
from .api import PoolView
from .bodies import NodeDisableSchedulingSerializer, NodeRebootSerializer
from .models import ComputeNode
from .selectors import get_node, recent_tasks
from .serializers import (
    NODE_FILTERS,
    NODE_NESTED,
    NODE_POOL_COLUMNS,
    NODE_PROPERTIES,
    node_columns,
    node_context,
    node_to_wire,
)
from .services import node_actions


@extend_schema_view(get=schema.LIST_NODES)
class NodeListView(PoolView):
    def get(self, request, pool_id):
        pool = self.pool(pool_id, only=NODE_POOL_COLUMNS)
        page = Page(request, path=request.path)
        select = parse_select(page.select, set(NODE_PROPERTIES), NODE_NESTED)
        nodes = ComputeNode.objects.filter(pool=pool).only(*node_columns(select))
        if page.filter:
            nodes = nodes.filter(parse_filter(page.filter, NODE_FILTERS))
        rows, more = page.slice(nodes)
        # As Batch's list, recentTasks only when $select asks for them (one query for the page).
        wanted = select is not None and "recentTasks" in select
        recent = recent_tasks(request.batch_account, pool, [n.name for n in rows]) if wanted else None
        ctx = node_context(pool, base=self.base_url(), recent_tasks=recent)
        return Response(page.body([project(node_to_wire(n, ctx=ctx, select=select), page.select) for n in rows],
                                  rows, more))


@extend_schema_view(get=schema.GET_NODE)
class NodeDetailView(PoolView):
    def get(self, request, pool_id, node_id):
        pool = self.pool(pool_id, only=NODE_POOL_COLUMNS)
        select_text = request.query_params.get("$select")
        select = parse_select(select_text, set(NODE_PROPERTIES), NODE_NESTED)
        node = get_node(pool, node_id, only=node_columns(select))
        wanted = select is None or "recentTasks" in select
        recent = recent_tasks(request.batch_account, pool, [node.name]) if wanted else None
        wire = node_to_wire(node, ctx=node_context(pool, base=self.base_url(), recent_tasks=recent), select=select)
        return self.entity_headers(Response(project(wire, select_text)), node)


@extend_schema_view(post=schema.DISABLE_SCHEDULING)
class NodeDisableSchedulingView(PoolView):
    def post(self, request, pool_id, node_id):
        data = validate_body(NodeDisableSchedulingSerializer, request.data or {})
        node = get_node(self.pool(pool_id), node_id)
        node_actions.disable_scheduling(node=node, option=data.get("nodeDisableSchedulingOption", "requeue"))
        return Response(status=status.HTTP_200_OK)


@extend_schema_view(post=schema.ENABLE_SCHEDULING)
class NodeEnableSchedulingView(PoolView):
    def post(self, request, pool_id, node_id):
        node_actions.enable_scheduling(node=get_node(self.pool(pool_id), node_id))
        return Response(status=status.HTTP_200_OK)


@extend_schema_view(post=schema.REBOOT_NODE)
class NodeRebootView(PoolView):
    def post(self, request, pool_id, node_id):
        data = validate_body(NodeRebootSerializer, request.data or {})
        node = get_node(self.pool(pool_id), node_id)
        node_actions.reboot_node(node=node, option=data.get("nodeRebootOption", "requeue"))
        return Response(status=status.HTTP_202_ACCEPTED)
