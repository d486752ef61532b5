"""Which accounts a user may use, in which role, and the one the dashboard shows.

A user (API token or dashboard session) uses the accounts they are a member of
(superusers: any). The dashboard keeps the one chosen in the session. A viewer
reads; an operator may also add, change, terminate and delete. (Which account an
API request acts for is `batchapi.access`'s to say.)
"""

from django.db.models import QuerySet

from .models import BatchAccount, Membership, Role

SESSION_KEY = "batchsite_account"


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
