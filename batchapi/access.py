"""Which account an API request acts for, and whether it may change anything there.

- Shared Key: the account that signed it, with every right (the key is the account).
- A task's token (`tasks.tokens`): its own job's account, and only that job.
- A user (API token or the browsable API's session): an account they are a member
  of (`accounts.access`); API callers name it in the `batchsite-account` header,
  or have just one. A viewer reads; an operator may also change things.
"""

from dataclasses import dataclass

from rest_framework.authentication import SessionAuthentication

from accounts.access import SESSION_KEY, memberships
from accounts.models import BatchAccount, Role
from accounts.shared_key import AccountScope

from .errors import BatchError

ACCOUNT_HEADER = "batchsite-account"


@dataclass(frozen=True)
class TaskScope:
    """request.auth for a task's token: the only job it may touch (`job_key`), in its account."""

    job_pk: int
    task_pk: int
    job_key: str
    account_pk: int


def no_access() -> BatchError:
    return BatchError("InsufficientAccountPermissions",
                      "The account being accessed does not have sufficient permissions to execute this operation.",
                      403)


def resolve(request) -> tuple[BatchAccount, bool]:
    """(the account the API request acts for, whether it may change things there)."""
    auth = request.auth
    if isinstance(auth, AccountScope):
        return auth.account, True
    if isinstance(auth, TaskScope):
        return BatchAccount.objects.get(pk=auth.account_pk), True
    name = request.headers.get(ACCOUNT_HEADER)
    if not name and hasattr(request, "session"):
        name = request.session.get(SESSION_KEY)
    mine = memberships(request.user)
    # A logged-in browser (the browsable API) sees what its dashboard shows; a script must say.
    if not name and len(mine) > 1 and not isinstance(request.successful_authenticator, SessionAuthentication):
        raise BatchError("MissingRequiredHeader", "A required header was not specified.", 400, {
            "HeaderName": ACCOUNT_HEADER, "Reason": "you are a member of several accounts: name the one to use"})
    chosen = [(a, r) for a, r in mine if a.name == name] if name else mine[:1]
    if not chosen:
        raise no_access()
    account, role = chosen[0]
    return account, role == Role.OPERATOR
