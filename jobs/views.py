"""Dashboard pages. The live dashboard grows here; for now, the jobs list."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from tasks import counts

from .models import Job


@login_required
def job_list(request):
    page = Paginator(Job.objects.order_by("-pk"), 50).get_page(request.GET.get("page"))
    job_counts = counts.read_many([job.pk for job in page])
    rows = [(job, job_counts[job.pk]) for job in page]
    return render(request, "jobs/job_list.html", {"page": page, "rows": rows})
