"""Azure Batch task operations: add, addtaskcollection, list, get, update, delete,
terminate, reactivate, and the task's files."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.errors import BatchError, body_too_large
from batchapi.fields import validate_body
from batchapi.odata import parse_filter, parse_name_prefix, project, selection
from batchapi.views import Page, max_results
from batchapi.wire import iso, rfc1123
from jobs.api import JobView
from jobs.selectors import check_job_open

from . import downloads, files, schema
from .models import Task
from .selectors import get_task
from .serializers import (
    FILTERS,
    NESTED,
    PROPERTIES,
    TaskAddSerializer,
    TaskUpdateSerializer,
    columns,
    constraint_fields,
    context,
    file_list_page,
    task_fields,
    task_to_wire,
)
from .services import actions, adding

# The columns of the job that rendering tasks needs.
JOB_COLUMNS = ("pk", "batch_id", "state", "max_task_retry_count", "pool_info", "auto_pool_id")


@extend_schema_view(get=schema.LIST_TASKS, post=schema.ADD_TASK)
class TaskListView(JobView):
    def get(self, request, job_id):
        job = self.job(job_id, only=JOB_COLUMNS)
        page = Page(request, path=request.path)
        select, with_stats = selection(page.select, page.expand, PROPERTIES, NESTED)
        tasks = Task.objects.filter(job=job).only(*columns(select, with_stats=with_stats))
        if page.filter:
            tasks = tasks.filter(parse_filter(page.filter, FILTERS))
        rows, more = page.slice(tasks)
        ctx = context(job, self.base_url())
        items = [project(task_to_wire(t, ctx=ctx, select=select, with_stats=with_stats), page.select) for t in rows]
        return Response(page.body(items, rows, more))

    def post(self, request, job_id):
        data = validate_body(TaskAddSerializer, request.data)
        job = self.job(job_id)
        task = adding.add_task(job=job, spec=task_fields(data))
        location = f"{self.base_url()}/jobs/{job.batch_id}/tasks/{task.batch_id}"
        return self.entity_headers(Response(status=status.HTTP_201_CREATED), task, location=location)


@extend_schema_view(post=schema.ADD_TASKS)
class AddTaskCollectionView(JobView):
    """Add Task Collection: ≤ 100 tasks and ≤ 1 MB, each task succeeding or failing on its own."""

    def post(self, request, job_id):
        if len(request.body) > settings.BATCHSITE_MAX_COLLECTION_BYTES:
            raise body_too_large(f"the body is over {settings.BATCHSITE_MAX_COLLECTION_BYTES} bytes")
        body = request.data
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise BatchError("InvalidRequestBody", "The specified Request Body is not syntactically valid.", 400,
                             {"Reason": 'expected {"value": [tasks]}'})
        items = body["value"]
        if len(items) > settings.BATCHSITE_MAX_TASKS_PER_COLLECTION:
            raise body_too_large(f"a collection holds at most {settings.BATCHSITE_MAX_TASKS_PER_COLLECTION} tasks, "
                                 f"not {len(items)}")
        job = self.job(job_id)
        check_job_open(job.state)
        base = self.base_url()
        outcomes: list[dict | None] = []
        valid: list[tuple[int, dict]] = []
        for index, item in enumerate(items):
            try:
                valid.append((index, task_fields(validate_body(TaskAddSerializer, item))))
                outcomes.append(None)
            except BatchError as error:
                outcomes.append(self._error(item.get("id") if isinstance(item, dict) else None, error, base))
        results = adding.add_tasks(job=job, specs=[spec for _, spec in valid]) if valid else []
        for (index, _), result in zip(valid, results):
            if result.error:
                outcomes[index] = self._error(result.batch_id, result.error, base)
            else:
                task = result.task
                outcomes[index] = {
                    "status": "success", "taskId": task.batch_id, "eTag": task.etag,
                    "lastModified": iso(task.last_modified),
                    "location": f"{base}/jobs/{job.batch_id}/tasks/{task.batch_id}",
                }
        return Response({"value": outcomes})

    @staticmethod
    def _error(task_id, error: BatchError, base: str) -> dict:
        body = error.body(base + "/")
        del body["odata.metadata"]
        # The REST docs write clientError / serverError, but the clients compare with their
        # enum's values, "clienterror" / "servererror" (azure-batch 15 and the CLI's SDK
        # exactly; msrest-era SDKs without case): spelt so, the SDK's create_tasks retries
        # server errors and reports client errors, as it does against Azure.
        # An id that is not a string is reported as none: taskId is a string on the wire.
        return {"status": "clienterror" if error.status < 500 else "servererror",
                "taskId": task_id if isinstance(task_id, str) else "", "error": body}


@extend_schema_view(get=schema.GET_TASK, put=schema.UPDATE_TASK, delete=schema.DELETE_TASK)
class TaskDetailView(JobView):
    def get(self, request, job_id, task_id):
        job = self.job(job_id, only=JOB_COLUMNS)
        select_text = request.query_params.get("$select")
        select, with_stats = selection(select_text, request.query_params.get("$expand"), PROPERTIES, NESTED)
        task = get_task(job, task_id, only=columns(select, with_stats=with_stats))
        if self.unchanged(task):
            return self.not_modified(task)
        wire = task_to_wire(task, ctx=context(job, self.base_url()), select=select, with_stats=with_stats)
        return self.entity_headers(Response(project(wire, select_text)), task)

    def put(self, request, job_id, task_id):
        data = validate_body(TaskUpdateSerializer, request.data)
        task = get_task(self.job(job_id), task_id)
        self.unchanged(task, read=False)
        limits = {"max_wall_clock_time": None, "max_task_retry_count": None, "retention_time": None,
                  **constraint_fields(data.get("constraints", {}))}
        actions.update_task_constraints(task=task, **limits)
        task.refresh_from_db(fields=["last_modified"])
        return self.entity_headers(Response(status=status.HTTP_200_OK), task)

    def delete(self, request, job_id, task_id):
        task = get_task(self.job(job_id), task_id)
        self.unchanged(task, read=False)
        actions.delete_task(task=task)
        return Response(status=status.HTTP_200_OK)


class TaskActionView(JobView):
    """POST …/terminate and …/reactivate: a service call, then 204 with the new ETag."""

    service = None  # not `action`: DRF and drf-spectacular read that as a ViewSet action's name

    def post(self, request, job_id, task_id):
        task = get_task(self.job(job_id), task_id)
        self.unchanged(task, read=False)
        type(self).service(task=task)
        task.refresh_from_db(fields=["last_modified"])
        return self.entity_headers(Response(status=status.HTTP_204_NO_CONTENT), task)


@extend_schema_view(post=schema.TERMINATE_TASK)
class TaskTerminateView(TaskActionView):
    service = actions.terminate_task


@extend_schema_view(post=schema.REACTIVATE_TASK)
class TaskReactivateView(TaskActionView):
    service = actions.reactivate_task


@extend_schema_view(get=schema.LIST_FILES)
class TaskFileListView(JobView):
    def get(self, request, job_id, task_id):
        job = self.job(job_id, only=JOB_COLUMNS)
        task = get_task(job, task_id, only=("pk", "batch_id", "job", "files_removed_at"))
        files.refuse_cleaned_up(task)
        page_size = max_results(request.query_params)
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        entries = files.list_files(task, recursive=recursive, limit=page_size + 1,
                                   after=request.query_params.get("$skiptoken", ""),
                                   startswith=parse_name_prefix(request.query_params.get("$filter")))
        base = f"{self.base_url()}/jobs/{job.batch_id}/tasks/{task.batch_id}/files"
        return Response(file_list_page(request, entries, page_size=page_size, base=base))


@extend_schema_view(get=schema.GET_FILE, head=schema.FILE_PROPERTIES)
class TaskFileView(JobView):
    """Get / Get Properties of a task file. Ranged reads (ocp-range) are answered 200 with
    the slice: that is what the Batch clients expect, not 206.

    Everything said about the file (length, range, times) is the fstat of the
    descriptor that is read, opened without following symlinks (files.open_file).
    """

    def perform_content_negotiation(self, request, force=False):
        # The SDK asks for application/octet-stream: the file is that, whatever our
        # JSON renderers offer (they render only this view's errors).
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, job_id, task_id, file_path):
        file = self._open(job_id, task_id, file_path)
        try:
            span = files.parse_range(request.headers.get("ocp-range"), file.size)
        except BatchError:
            file.close()
            raise
        start, end = span or (0, file.size)
        return self._headers(downloads.file_response(request, file, start, end), file, span)

    def head(self, request, job_id, task_id, file_path):
        with self._open(job_id, task_id, file_path) as file:
            response = Response(status=status.HTTP_200_OK)
            response["Content-Length"] = str(file.size)
            response["Content-Type"] = "application/octet-stream"
            return self._headers(response, file, None)

    def _open(self, job_id, task_id, file_path) -> files.TaskFile:
        task = get_task(self.job(job_id, only=JOB_COLUMNS), task_id,
                        only=("pk", "batch_id", "job", "files_removed_at"))
        files.refuse_cleaned_up(task)
        try:
            return files.open_file(task, file_path)
        except files.Unreadable as unreadable:
            raise unreadable.batch_error() from None

    @staticmethod
    def _headers(response, file: files.TaskFile, span):
        response["Last-Modified"] = rfc1123(file.modified)
        response["ocp-creation-time"] = rfc1123(file.created)
        response["ocp-batch-file-isdirectory"] = "false"
        if span:
            response["Content-Range"] = f"bytes {span[0]}-{max(span[1] - 1, span[0])}/{file.size}"
        return response
