"""AZ_BATCH_AUTHENTICATION_TOKEN: what a running task uses to call the API on its own job.

A task whose authenticationTokenSettings ask for `job` access gets a token in its
environment (the job manager adding tasks is the usual case). The token is
signed with the project's secret key and names the job, the task and the run; it
is good only while that run is current, so it dies with the task, and only for
requests on that job (anything else is 403 AuthorizationFailure, batchapi.views). Clients send
it as `Authorization: Bearer <token>`, as the Batch SDKs do with such a token.
"""

from django.core import signing
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from batchapi.access import TaskScope

from .models import RUNNING_STATES, Task

SALT = "batchsite.task-token"

class TaskUser:
    """request.user for a task's token: authenticated, but not a person with a login."""

    is_authenticated = True
    is_active = True
    is_staff = is_superuser = False
    pk = id = None
    username = "task"

    def __init__(self, scope: TaskScope):
        self.scope = scope

    def __str__(self) -> str:
        return f"task {self.scope.task_pk}"


def issue(task) -> str:
    return signing.dumps({"j": task.job_id, "t": task.pk, "a": task.attempt}, salt=SALT, compress=True)


def wants_token(task) -> bool:
    settings = task.authentication_token_settings or {}
    return "job" in [str(a).lower() for a in settings.get("access") or []]


class TaskTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if len(header) != 2 or header[0].lower() != b"bearer":
            return None
        try:
            claims = signing.loads(header[1].decode(), salt=SALT)
        except (signing.BadSignature, UnicodeDecodeError):
            raise AuthenticationFailed("The authentication token is not valid.") from None
        current = (Task.objects.filter(pk=claims["t"], job_id=claims["j"], attempt=claims["a"],
                                       state__in=RUNNING_STATES)
                   .values_list("job__key", "job__account_id").first())
        if current is None:
            raise AuthenticationFailed("The authentication token has expired: its task is no longer running.")
        scope = TaskScope(job_pk=claims["j"], task_pk=claims["t"], job_key=current[0], account_pk=current[1])
        return TaskUser(scope), scope

    def authenticate_header(self, request):
        return "Bearer"
