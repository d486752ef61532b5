"""Dashboard pages for one task: its properties and its stdout/stderr viewers."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils.http import content_disposition_header, http_date
from django.views.decorators.http import require_GET

from batchapi.errors import BatchError
from jobs.views import get_job_or_404

from . import downloads, files, logs
from .models import Task
from .selectors import find_task


def get_task_or_404(job, task_id: str) -> Task:
    """Task `task_id` of the job the page shows, or 404."""
    task = find_task(job, task_id)
    if task is None:
        raise Http404(f"No task {task_id!r} in job {job.batch_id!r}")
    return task


@require_GET
@login_required
def task_detail(request, job_id, task_id):
    job = get_job_or_404(request, job_id)
    task = get_task_or_404(job, task_id)
    return render(request, "tasks/task_detail.html", {
        "job": job, "task": task, "logs": [logs.read_before(task, name) for name in logs.LOG_NAMES],
    })


@require_GET
@login_required
def log_earlier(request, job_id, task_id, name):
    """The chunk before `before`: what "load earlier" puts in place of its button."""
    job = get_job_or_404(request, job_id)
    task = get_task_or_404(job, task_id)
    if name not in logs.LOG_NAMES:
        raise Http404(name)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        raise Http404("before must be a byte offset") from None
    chunk = logs.read_before(task, name, end=before)
    return render(request, "tasks/task_detail.html#log-earlier", {"job": job, "task": task, "log": chunk})


@require_GET
@login_required
def task_file(request, job_id, task_id, path):
    """Download a file of the task directory whole: streamed in chunks, never read into memory."""
    job = get_job_or_404(request, job_id)
    task = get_task_or_404(job, task_id)
    try:
        file = files.open_file(task, path)
    except (BatchError, files.Unreadable):
        raise Http404(path) from None
    response = downloads.file_response(request, file, 0, file.size)
    response["Content-Disposition"] = content_disposition_header(True, file.name)
    response["Last-Modified"] = http_date(file.stat.st_mtime)
    return response
