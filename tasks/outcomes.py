"""What a run's end writes: Batch's failureInfo bodies, and the expressions the updates use."""

from datetime import timedelta

from django.conf import settings
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce

# failureInfo bodies, as the Batch service words them.
FAILURE_EXIT_CODE = {
    "category": "usererror",
    "code": "FailureExitCode",
    "message": "The task exited with an exit code representing a failure",
}
TASK_ENDED = {
    "category": "usererror",
    "code": "TaskEnded",
    "message": "Task Was Ended by User Request",
}


def wall_clock_expired(limit: timedelta) -> dict:
    return {
        "category": "usererror",
        "code": "MaxWallClockTimeExpiry",
        "message": "The task exceeded the max wall clock time",
        "details": [{"name": "MaxWallClockTime", "value": str(limit)}],
    }


def program_not_found(program: str, reason: str) -> dict:
    return {
        "category": "usererror",
        "code": "CommandProgramNotFound",
        "message": "The specified command program is not found",
        "details": [{"name": "Program", "value": program}, {"name": "Message", "value": reason}],
    }


def files_expire_after(moment):
    """When a task's directory may go: `moment` (a time, or an expression such as
    F("end_time")) plus its retentionTime, or the settings' default without one."""
    if not hasattr(moment, "resolve_expression"):
        moment = Value(moment, output_field=DateTimeField())
    return ExpressionWrapper(
        moment + Coalesce(F("retention_time"), Value(settings.BATCHSITE_DEFAULT_RETENTION,
                                                     output_field=DurationField())),
        output_field=DateTimeField())


def run_time_until(now):
    """The run's length as the update computes it, from the row's own start_time."""
    return ExpressionWrapper(Value(now, output_field=DateTimeField()) - F("start_time"),
                             output_field=DurationField())
