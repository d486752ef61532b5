"""Which account a request acts for, and whether it may change anything there.

- Shared Key: the account that signed it, with every right (the key is the account).
- A task's token: its own job's account, and only that job (batchapi.views).
- A user (API token or dashboard session): an account they are a member of
  (superusers: any). The dashboard keeps the one chosen in the session; API
  callers name it in the `batchsite-account` header, or have just one. A viewer
  reads; an operator may also add, change, terminate and delete.
"""

from django.db.models import QuerySet
from rest_framework.authentication import SessionAuthentication

from batchapi.errors import BatchError

from .models import BatchAccount, Membership, Role
from .shared_key import AccountScope

SESSION_KEY = "batchsite_account"
ACCOUNT_HEADER = "batchsite-account"


def no_access() -> BatchError:
    return BatchError("InsufficientAccountPermissions",
                      "The account being accessed does not have sufficient permissions to execute this operation.",
                      403)


def accounts_of(user) -> QuerySet[BatchAccount]:
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return BatchAccount.objects.none()
    if user.is_superuser:
        return BatchAccount.objects.order_by("name")
    return BatchAccount.objects.filter(members__user=user).order_by("name")


def role_of(user, account: BatchAccount) -> str | None:
    if user.is_superuser:
        return Role.OPERATOR
    return Membership.objects.filter(user=user, account=account).values_list("role", flat=True).first()


def chosen_account(user, name: str | None) -> BatchAccount | None:
    """The member account called `name` (the session's choice), else the user's first, as the
    dashboard shows it; None if they have none."""
    mine = accounts_of(user)
    return (name and mine.filter(name=name).first()) or mine.first()


def memberships(user) -> list[tuple[BatchAccount, str]]:
    """(account, role) for each account the user may use, by name: one query."""
    if not getattr(user, "is_authenticated", False) or getattr(user, "pk", None) is None:
        return []
    if user.is_superuser:
        return [(account, Role.OPERATOR) for account in BatchAccount.objects.order_by("name")]
    rows = Membership.objects.filter(user=user).select_related("account").order_by("account__name")
    return [(row.account, row.role) for row in rows]


def resolve(request) -> tuple[BatchAccount, bool]:
    """(the account the API request acts for, whether it may change things there)."""
    from batchapi.task_tokens import TaskScope
    from jobs.models import Job

    auth = request.auth
    if isinstance(auth, AccountScope):
        return auth.account, True
    if isinstance(auth, TaskScope):
        return Job.objects.select_related("account").get(pk=auth.job_pk).account, True
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


# --- the dashboard -------------------------------------------------------------------


def dashboard_accounts(request) -> list[BatchAccount]:
    """The user's accounts, by name, read once per request."""
    if not hasattr(request, "_batch_accounts"):
        # Bounded like every query of a page; nobody switches between more accounts than this.
        request._batch_accounts = list(accounts_of(request.user)[:200])
    return request._batch_accounts


def dashboard_account(request) -> BatchAccount | None:
    """The account the dashboard shows: the one chosen in the session, else the user's first."""
    mine, chosen = dashboard_accounts(request), request.session.get(SESSION_KEY)
    return next((a for a in mine if a.name == chosen), mine[0] if mine else None)


def may_operate(user, account: BatchAccount) -> bool:
    return role_of(user, account) == Role.OPERATOR
