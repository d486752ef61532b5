"""Small filters for task pages: run times and file sizes a person reads at a glance."""

from django import template
from django.utils import timezone

from jobs.dashboard import human_seconds

register = template.Library()


@register.filter
def run_time(task) -> str:
    """The last run's length; for a running task, how long it has run so far."""
    if task.state in ("preparing", "running") and task.start_time:
        return human_seconds((timezone.now() - task.start_time).total_seconds()) + "…"
    if task.run_time is not None:
        return human_seconds(task.run_time.total_seconds())
    return "—"


@register.filter
def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@register.filter
def ago(moment) -> str:
    """"just now", "42 s ago", "3 min ago", "5 h ago", "2 days ago"."""
    seconds = (timezone.now() - moment).total_seconds()
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} days ago"
