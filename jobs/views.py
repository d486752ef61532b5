"""Dashboard pages for jobs: the jobs list and the job page, with its operator actions.

Views parse, call a selector (`jobs.dashboard`) or a service, and render. One
view serves a page and its fragment: an htmx request for the task table gets
just that partial of the same template.
"""

import csv
import logging
from contextlib import contextmanager

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from accounts.access import dashboard_account, may_operate
from batchapi.errors import BatchError
from batchapi.wire import iso
from tasks import counts
from tasks.downloads import under_asgi
from tasks.models import Task, TaskState
from tasks.services import actions as task_actions

from . import dashboard, waiting
from .models import Job
from .selectors import find_job
from .services import lifecycle

log = logging.getLogger(__name__)


def get_job_or_404(request, job_id: str, *, change: bool = False) -> Job:
    """The job of the account the dashboard shows; 404 elsewhere, 403 to change it as a viewer."""
    account = dashboard_account(request)
    job = account and find_job(account, job_id)
    if job is None:
        raise Http404(f"No job {job_id!r}")
    if change and not may_operate(request.user, account):
        raise PermissionDenied("viewers of this account cannot change its jobs")
    return job


@require_GET
@login_required
def job_list(request):
    flt = dashboard.JobFilter.from_query(request.GET, dashboard_account(request))
    rows, next_before = dashboard.job_page(flt)
    context = {"rows": rows, "next_before": next_before, "filter": flt, "tabs": dashboard.job_tabs(flt.account),
               "states": Job._meta.get_field("state").choices,
               "ws_query": request.GET.urlencode(), "unconfined": dashboard.unconfined_workers()}
    return render(request, "jobs/job_list.html", context)


def task_table(job: Job, flt: dashboard.TaskFilter) -> dict:
    """What the task table partial shows: one page of the job's tasks under a filter."""
    tasks, next_after = dashboard.task_page(job, flt)
    return {"job": job, "tasks": tasks, "next_after": next_after, "filter": flt, "task_states": TaskState.choices}


@require_GET
@login_required
def job_detail(request, job_id):
    job = get_job_or_404(request, job_id)
    table = task_table(job, dashboard.TaskFilter.from_query(request.GET))
    if request.htmx and request.htmx.target == "task-table":
        return render(request, "jobs/job_detail.html#task-table", table)
    current = counts.read(job.pk)
    return render(request, "jobs/job_detail.html", {
        **table, "counts": current, "progress": dashboard.Progress.of(current),
        "waiting": waiting.why_waiting(job, current),
        "timeline": dashboard.timeline(job, current), "node_tasks": dashboard.node_tasks(job),
    })


@require_GET
@login_required
def job_durations(request, job_id):
    job = get_job_or_404(request, job_id)
    return render(request, "jobs/job_detail.html#durations", dashboard.durations_context(job, counts.read(job.pk)))


# --- operator actions: one view each, a service call, its refusal shown as a message ------


@contextmanager
def refusal_shown(request):
    """A service's refusal (BatchError) becomes an error message on the page that follows."""
    try:
        yield
    except BatchError as error:
        messages.error(request, error.message)


@require_POST
@login_required
def terminate_job(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    with refusal_shown(request):
        lifecycle.terminate_job(job=job)
        messages.success(request, f"Job {job.batch_id} terminated.")
    return redirect("job-detail", job_id=job.batch_id)


@require_POST
@login_required
def delete_job(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    with refusal_shown(request):
        lifecycle.delete_job(job=job)
        messages.success(request, f"Job {job.batch_id} is being deleted.")
        return redirect("job-list")
    return redirect("job-detail", job_id=job.batch_id)


@require_POST
@login_required
def disable_job(request, job_id):
    """Running tasks finish; nothing new starts."""
    job = get_job_or_404(request, job_id, change=True)
    with refusal_shown(request):
        lifecycle.disable_job(job=job, disable_tasks="wait")
        messages.success(request, f"Job {job.batch_id} disabled: running tasks finish, no new task starts.")
    return redirect("job-detail", job_id=job.batch_id)


@require_POST
@login_required
def enable_job(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    with refusal_shown(request):
        lifecycle.enable_job(job=job)
        messages.success(request, f"Job {job.batch_id} enabled.")
    return redirect("job-detail", job_id=job.batch_id)


@require_POST
@login_required
def rerun_failed_tasks(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    with refusal_shown(request):
        n = task_actions.reactivate_failed_tasks(job=job)
        messages.success(request, f"{n} failed task(s) of {job.batch_id} will run again.")
    return redirect("job-detail", job_id=job.batch_id)


# The task table's actions act on the tasks ticked in it (the task page sends its one task)
# and answer with the table again, or go back to the page they came from.


def selected_tasks(request) -> list[int]:
    return [int(pk) for pk in request.POST.getlist("task") if pk.isdigit()][: dashboard.PAGE_SIZE * 4]


def after_task_action(request, job: Job, pks: list[int]):
    if request.POST.get("next") == "task" and len(pks) == 1:
        task = Task.objects.filter(job=job, pk=pks[0]).only("batch_id").first()
        if task is not None:
            return redirect("task-detail", job_id=job.batch_id, task_id=task.batch_id)
    query = request.POST.get("query", "")
    if request.htmx:
        table = task_table(job, dashboard.TaskFilter.from_query(QueryDict(query)))
        return render(request, "jobs/job_detail.html#task-table", {**table, "show_messages": True})
    back = reverse("job-detail", args=[job.batch_id])
    return redirect(f"{back}?{query}" if query else back)


def each_task(request, job: Job, pks: list[int], service, verb: str) -> None:
    """`service(task=...)` for each selected task; each refusal is a warning, the rest go on."""
    done, refused = 0, []
    for task in Task.objects.filter(job=job, pk__in=pks).select_related("job"):
        try:
            service(task=task)
            done += 1
        except BatchError as error:
            refused.append(f"{task.batch_id}: {error.message}")
    messages.success(request, f"{done} task(s) {verb}.")
    for line in refused[:5]:
        messages.warning(request, line)


@require_POST
@login_required
def rerun_tasks(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    pks = selected_tasks(request)
    with refusal_shown(request):
        n = task_actions.reactivate_failed_tasks(job=job, pks=pks)
        messages.success(request, f"{n} failed task(s) will run again."
                         + (f" {len(pks) - n} selected were not failed." if len(pks) > n else ""))
    return after_task_action(request, job, pks)


@require_POST
@login_required
def terminate_tasks(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    pks = selected_tasks(request)
    each_task(request, job, pks, task_actions.terminate_task, "terminated")
    return after_task_action(request, job, pks)


@require_POST
@login_required
def delete_tasks(request, job_id):
    job = get_job_or_404(request, job_id, change=True)
    pks = selected_tasks(request)
    each_task(request, job, pks, task_actions.delete_task, "deleted")
    return after_task_action(request, job, pks)


# The table's form posts to each button's own view (formaction); a client that posts the
# form to its action instead names the button as `action`, and lands in the same view.
TASK_ACTION_VIEWS = {"rerun": rerun_tasks, "terminate": terminate_tasks, "delete": delete_tasks}


@require_POST
@login_required
def task_action(request, job_id):
    view = TASK_ACTION_VIEWS.get(request.POST.get("action", ""))
    if view is not None:
        return view(request, job_id)
    job = get_job_or_404(request, job_id, change=True)
    messages.error(request, "Choose an action.")
    return after_task_action(request, job, selected_tasks(request))


CSV_COLUMNS = ("id", "state", "result", "exit_code", "retry_count", "requeue_count", "start_time", "end_time",
               "run_seconds", "worker", "failure_code")


class _Echo:
    def write(self, value):
        return value


CSV_CHUNK = 2000


def _csv_rows(job, flt, after: int) -> tuple[str, int | None]:
    """The CSV lines of the next CSV_CHUNK matching tasks after pk `after`, and the last pk (None at the end).

    Each chunk is its own keyset query: no cursor stays open between chunks, so the
    sync thread's connection serves other requests while a big export is sent.
    """
    rows = list(flt.tasks(job).filter(pk__gt=after).order_by("pk")
                .values_list("pk", "batch_id", "state", "result", "exit_code", "retry_count", "requeue_count",
                             "start_time", "end_time", "run_time", "node_id", "failure_info")[:CSV_CHUNK])
    writer = csv.writer(_Echo())
    text = "".join(writer.writerow([
        batch_id, state, result, "" if exit_code is None else exit_code, retries, requeues,
        iso(start) if start else "", iso(end) if end else "",
        f"{run_time.total_seconds():.3f}" if run_time is not None else "", node, (failure or {}).get("code", ""),
    ]) for (_, batch_id, state, result, exit_code, retries, requeues, start, end, run_time, node, failure) in rows)
    return text, (rows[-1][0] if len(rows) == CSV_CHUNK else None)


@require_GET
@login_required
def task_csv(request, job_id):
    """The task table (with its filters) as CSV, streamed in chunks: any size, bounded memory.

    Under ASGI the body is an asynchronous iterator (Django would drain a synchronous
    one whole before sending); under WSGI a plain one.
    """
    job = get_job_or_404(request, job_id)
    flt = dashboard.TaskFilter.from_query(request.GET)
    # The first chunk is read now, while a failure can still be answered as an error:
    # under ASGI an exception once the response has started leaves the request hanging.
    first, after = _csv_rows(job, flt, 0)
    header = csv.writer(_Echo()).writerow(CSV_COLUMNS) + first

    def stopped():
        log.exception("the CSV export of job %s stopped", job.pk)  # end the response, never hang it
        return "# the export stopped early: the server log says why\r\n"

    def lines():
        yield header
        position = after
        while position is not None:
            try:
                text, position = _csv_rows(job, flt, position)
            except Exception:
                yield stopped()
                return
            yield text

    async def async_lines():  # the same lines, each chunk's query on the ORM's thread
        chunks = lines()
        while (text := await sync_to_async(next)(chunks, None)) is not None:
            yield text

    response = StreamingHttpResponse(async_lines() if under_asgi(request) else lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{job.batch_id}-tasks.csv"'
    return response
