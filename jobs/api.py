"""Azure Batch job operations: /jobs, /jobs/{jobId}, terminate, disable, enable, taskcounts."""

from django.db.models.functions import Lower
from drf_spectacular.utils import extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from batchapi.errors import BatchError, invalid_property, missing_property
from batchapi.fields import validate_body
from batchapi.odata import Prop, parse_filter, project, selection
from batchapi.views import BatchView, Page
from batchapi.wire import drop_none
from pools.serializers import auto_pool_fields
from tasks import counts
from tasks.models import NodeTask, NodeTaskKind
from tasks.serializers import job_manager_fields, node_task_info

from . import schema
from .models import Job
from .selectors import get_job
from .serializers import (
    FILTERS,
    NESTED,
    PROPERTIES,
    JobAddSerializer,
    JobUpdateSerializer,
    columns,
    job_fields,
    job_to_wire,
)
from .services import lifecycle


class JobView(BatchView):
    """An operation on one job of the request's account (and on what is in it)."""

    def job(self, job_id: str, *, only=None) -> Job:
        """The request's account's job `job_id`, or 404 JobNotFound (also when another account has one)."""
        return get_job(self.request.batch_account, job_id, only=only)


@extend_schema_view(get=schema.LIST_JOBS, post=schema.ADD_JOB)
class JobListView(BatchView):
    def get(self, request):
        page = Page(request, path=request.path)
        select, with_stats = selection(page.select, page.expand, PROPERTIES, NESTED)
        jobs = Job.objects.filter(account=request.batch_account).only(*columns(select, with_stats=with_stats))
        if page.filter:
            jobs = jobs.filter(parse_filter(page.filter, FILTERS))
        rows, more = page.slice(jobs)
        base = self.base_url()
        items = [project(job_to_wire(j, base=base, select=select, with_stats=with_stats), page.select)
                 for j in rows]
        return Response(page.body(items, rows, more))

    def post(self, request):
        data = validate_body(JobAddSerializer, request.data)
        spec = {**job_fields(data), "account": request.batch_account}
        job = lifecycle.create_job(spec=spec, job_manager=job_manager_fields(spec.get("job_manager_task")),
                                   auto_pool=auto_pool_fields(spec.get("pool_info")))
        response = Response(status=status.HTTP_201_CREATED)
        return self.entity_headers(response, job, location=f"{self.base_url()}/jobs/{job.batch_id}")


@extend_schema_view(get=schema.GET_JOB, patch=schema.PATCH_JOB, put=schema.REPLACE_JOB, delete=schema.DELETE_JOB)
class JobDetailView(JobView):
    def get(self, request, job_id):
        select_text = request.query_params.get("$select")
        select, with_stats = selection(select_text, request.query_params.get("$expand"), PROPERTIES, NESTED)
        job = self.job(job_id, only=columns(select, with_stats=with_stats))
        if self.unchanged(job):
            return self.not_modified(job)
        wire = job_to_wire(job, base=self.base_url(), select=select, with_stats=with_stats)
        return self.entity_headers(Response(project(wire, select_text)), job)

    def patch(self, request, job_id):
        return self._update(request, job_id, replace=False)

    def put(self, request, job_id):
        return self._update(request, job_id, replace=True)

    def _update(self, request, job_id, *, replace):
        data = validate_body(JobUpdateSerializer, request.data)
        job = self.job(job_id)
        self.unchanged(job, read=False)
        job = lifecycle.update_job(job=job, changes=job_fields(data), replace=replace)
        return self.entity_headers(Response(status=status.HTTP_200_OK), job)

    def delete(self, request, job_id):
        job = self.job(job_id)
        self.unchanged(job, read=False)
        lifecycle.delete_job(job=job)
        return Response(status=status.HTTP_202_ACCEPTED)


@extend_schema_view(post=schema.TERMINATE_JOB)
class JobTerminateView(JobView):
    def post(self, request, job_id):
        body = request.data if isinstance(request.data, dict) else {}
        reason = str(body.get("terminateReason") or "")[:256]
        job = self.job(job_id)
        self.unchanged(job, read=False)
        lifecycle.terminate_job(job=job, reason=reason)
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


@extend_schema_view(post=schema.DISABLE_JOB)
class JobDisableView(JobView):
    def post(self, request, job_id):
        body = request.data if isinstance(request.data, dict) else {}
        disable_tasks = body.get("disableTasks")
        if disable_tasks is None:
            raise missing_property("disableTasks")
        if str(disable_tasks).lower() not in ("requeue", "terminate", "wait"):
            raise invalid_property("disableTasks", "one of requeue, terminate, wait", disable_tasks)
        job = self.job(job_id)
        self.unchanged(job, read=False)
        lifecycle.disable_job(job=job, disable_tasks=str(disable_tasks).lower())
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


@extend_schema_view(post=schema.ENABLE_JOB)
class JobEnableView(JobView):
    def post(self, request, job_id):
        job = self.job(job_id)
        self.unchanged(job, read=False)
        lifecycle.enable_job(job=job)
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


@extend_schema_view(get=schema.PREPARATION_AND_RELEASE_STATUS)
class JobPreparationAndReleaseStatusView(JobView):
    """List Preparation and Release Task Status: per worker that ran the job's preparation."""

    def get(self, request, job_id):
        job = self.job(job_id)
        if not job.job_preparation_task:
            raise BatchError("JobPreparationTaskNotSpecified",
                             "The specified job does not have a job preparation task.", 409, {"JobId": job.batch_id})
        page = Page(request, path=request.path)
        prepared = NodeTask.objects.filter(job=job, kind=NodeTaskKind.PREPARATION)
        if page.filter:  # values compare without case, as everywhere in $filter
            prepared = prepared.annotate(node_key=Lower("node_id")).filter(
                parse_filter(page.filter, NODE_TASK_FILTERS))
        rows, more = page.slice(prepared)
        released = {r.node_id: r for r in NodeTask.objects.filter(
            job=job, kind=NodeTaskKind.RELEASE, node_id__in=[r.node_id for r in rows])}
        pool_id = job.pool_id
        items = []
        for prep in rows:
            prep.job = job
            item = {"poolId": pool_id, "nodeId": prep.node_id,
                    "jobPreparationTaskExecutionInfo": node_task_info(prep, with_retries=True)}
            if release := released.get(prep.node_id):
                release.job = job
                item["jobReleaseTaskExecutionInfo"] = node_task_info(release, with_retries=False)
            items.append(drop_none(item))
        return Response(page.body(items, rows, more))


# $filter on the preparation and release status list: by worker.
NODE_TASK_FILTERS = {"nodeId": Prop("node_key", "string")}


@extend_schema_view(get=schema.TASK_COUNTS_OF_JOB)
class JobTaskCountsView(JobView):
    def get(self, request, job_id):
        job = self.job(job_id, only=("pk",))
        task_counts = counts.read(job.pk)
        # taskSlotCounts count each task's requiredSlots: they differ where tasks take more than one.
        return Response({"taskCounts": task_counts.as_dict(), "taskSlotCounts": task_counts.slots()})
