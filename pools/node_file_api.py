"""Azure Batch compute node file operations: /pools/{poolId}/nodes/{nodeId}/files and
…/files/{filePath} (list, get, get properties, delete). What the paths name: `pools.node_files`."""

from urllib.parse import quote

from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.errors import BatchError
from batchapi.odata import parse_name_prefix
from batchapi.views import max_results
from batchapi.wire import rfc1123
from tasks import downloads, files
from tasks.serializers import file_list_page, file_mode

from . import node_files, schema
from .api import PoolView
from .models import ComputeNode, Pool
from .selectors import get_node

POOL_COLUMNS = ("pk", "batch_id", "account")


def recursive(request) -> bool:
    return request.query_params.get("recursive", "false").lower() == "true"


class NodeFilesView(PoolView):
    """An operation on the files of one node of one of the request's account's pools."""

    def node(self, pool_id: str, node_id: str) -> tuple[Pool, ComputeNode]:
        """404 PoolNotFound (also for another account's pool), or NodeNotFound for a node not in it."""
        pool = self.pool(pool_id, only=POOL_COLUMNS)
        return pool, get_node(pool, node_id, only=("pk", "name", "pool"))

    def files_url(self, pool: Pool, node: ComputeNode) -> str:
        return f"{self.base_url()}/pools/{pool.batch_id}/nodes/{quote(node.name, safe='')}/files"


@extend_schema_view(get=schema.LIST_NODE_FILES)
class NodeFileListView(NodeFilesView):
    def get(self, request, pool_id, node_id):
        pool, node = self.node(pool_id, node_id)
        page_size = max_results(request.query_params)
        prefix = parse_name_prefix(request.query_params.get("$filter"))
        entries = node_files.list_node_files(pool.account.name, node.name, recursive=recursive(request),
                                             limit=page_size + 1, after=request.query_params.get("$skiptoken", ""),
                                             startswith=prefix)
        return Response(file_list_page(request, entries, page_size=page_size, base=self.files_url(pool, node)))


@extend_schema_view(get=schema.GET_NODE_FILE, head=schema.NODE_FILE_PROPERTIES, delete=schema.DELETE_NODE_FILE)
class NodeFileView(NodeFilesView):
    """Get / Get Properties / Delete of a node's file. As for task files, a ranged read
    (ocp-range) is answered 200 with the slice, and what is said of the file (length,
    range, times) is the fstat of the descriptor that is read, opened without following
    symlinks. Get Properties describes a directory too (ocp-batch-file-isdirectory)."""

    def perform_content_negotiation(self, request, force=False):
        # The SDK asks for application/octet-stream: the file is that, whatever our
        # JSON renderers offer (they render only this view's errors).
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, pool_id, node_id, file_path):
        file, url = self._open(pool_id, node_id, file_path)
        try:
            files.regular(file, file_path)
            span = files.parse_range(request.headers.get("ocp-range"), file.size)
        except files.Unreadable as unreadable:
            raise unreadable.batch_error() from None
        except BatchError:
            file.close()
            raise
        start, end = span or (0, file.size)
        response = downloads.file_response(request, file, start, end)
        if span:
            response["Content-Range"] = f"bytes {start}-{max(end - 1, start)}/{file.size}"
        return self._headers(response, file, url)

    def head(self, request, pool_id, node_id, file_path):
        file, url = self._open(pool_id, node_id, file_path)
        with file:
            response = Response(status=status.HTTP_200_OK)
            response["Content-Length"] = str(file.size)
            response["Content-Type"] = "application/octet-stream"
            return self._headers(response, file, url)

    def delete(self, request, pool_id, node_id, file_path):
        pool, node = self.node(pool_id, node_id)
        node_files.delete_node_file(pool.account.name, node.name, file_path, recursive=recursive(request))
        return Response(status=status.HTTP_200_OK)

    def _open(self, pool_id, node_id, file_path) -> tuple[files.TaskFile, str]:
        pool, node = self.node(pool_id, node_id)
        try:
            file = node_files.open_node_entry(pool.account.name, node.name, file_path)
        except files.Unreadable as unreadable:
            raise unreadable.batch_error() from None
        return file, f"{self.files_url(pool, node)}/{quote(file_path.strip('/'))}"

    @staticmethod
    def _headers(response, file: files.TaskFile, url: str):
        response["Last-Modified"] = rfc1123(file.modified)
        response["ocp-creation-time"] = rfc1123(file.created)
        response["ocp-batch-file-isdirectory"] = "true" if file.is_directory else "false"
        response["ocp-batch-file-url"] = url
        response["ocp-batch-file-mode"] = file_mode(file.stat.st_mode)
        return response
