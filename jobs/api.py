"""Azure Batch job operations: /jobs, /jobs/{jobId}, terminate, disable, enable, taskcounts."""

from rest_framework import status
from rest_framework.response import Response

from batchapi.errors import invalid_property, job_not_found, missing_property
from batchapi.fields import validate_body
from batchapi.ids import id_key
from batchapi.odata import parse_filter, parse_select
from batchapi.views import BatchView, Page
from tasks import counts

from . import services
from .models import Job
from .serializers import FILTERS, PROPERTIES, JobAddSerializer, JobUpdateSerializer, columns, job_fields, job_to_wire


def get_job(job_id: str, *, only=None) -> Job:
    jobs = Job.objects.all()
    if only:
        jobs = jobs.only(*only)
    job = jobs.filter(key=id_key(job_id)).first()
    if job is None:
        raise job_not_found(job_id)
    return job


class JobListView(BatchView):
    def get(self, request):
        page = Page(request, path=request.path)
        select = parse_select(page.select, set(PROPERTIES))
        jobs = Job.objects.only(*columns(select))
        if page.filter:
            jobs = jobs.filter(parse_filter(page.filter, FILTERS))
        rows, more = page.slice(jobs)
        base = self.base_url()
        return Response(page.body([job_to_wire(j, base=base, select=select) for j in rows], rows, more))

    def post(self, request):
        data = validate_body(JobAddSerializer, request.data)
        job = services.create_job(spec=job_fields(data))
        response = Response(status=status.HTTP_201_CREATED)
        return self.entity_headers(response, job, location=f"{self.base_url()}/jobs/{job.batch_id}")


class JobDetailView(BatchView):
    def get(self, request, job_id):
        select = parse_select(request.query_params.get("$select"), set(PROPERTIES))
        job = get_job(job_id, only=columns(select))
        if self.unchanged(job):
            return self.not_modified(job)
        return self.entity_headers(Response(job_to_wire(job, base=self.base_url(), select=select)), job)

    def patch(self, request, job_id):
        return self._update(request, job_id, replace=False)

    def put(self, request, job_id):
        return self._update(request, job_id, replace=True)

    def _update(self, request, job_id, *, replace):
        data = validate_body(JobUpdateSerializer, request.data)
        job = get_job(job_id)
        self.unchanged(job, read=False)
        job = services.update_job(job=job, changes=job_fields(data), replace=replace)
        return self.entity_headers(Response(status=status.HTTP_200_OK), job)

    def delete(self, request, job_id):
        job = get_job(job_id)
        self.unchanged(job, read=False)
        services.delete_job(job=job)
        return Response(status=status.HTTP_202_ACCEPTED)


class JobTerminateView(BatchView):
    def post(self, request, job_id):
        body = request.data if isinstance(request.data, dict) else {}
        reason = str(body.get("terminateReason") or "")[:256]
        job = get_job(job_id)
        self.unchanged(job, read=False)
        services.terminate_job(job=job, reason=reason)
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


class JobDisableView(BatchView):
    def post(self, request, job_id):
        body = request.data if isinstance(request.data, dict) else {}
        disable_tasks = body.get("disableTasks")
        if disable_tasks is None:
            raise missing_property("disableTasks")
        if str(disable_tasks).lower() not in ("requeue", "terminate", "wait"):
            raise invalid_property("disableTasks", "one of requeue, terminate, wait", disable_tasks)
        job = get_job(job_id)
        self.unchanged(job, read=False)
        services.disable_job(job=job, disable_tasks=str(disable_tasks).lower())
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


class JobEnableView(BatchView):
    def post(self, request, job_id):
        job = get_job(job_id)
        self.unchanged(job, read=False)
        services.enable_job(job=job)
        return self.entity_headers(Response(status=status.HTTP_202_ACCEPTED), job)


class JobTaskCountsView(BatchView):
    def get(self, request, job_id):
        job = get_job(job_id, only=("pk",))
        task_counts = counts.read(job.pk).as_dict()
        # Every task takes one slot until multi-slot scheduling exists.
        return Response({"taskCounts": task_counts, "taskSlotCounts": dict(task_counts)})
