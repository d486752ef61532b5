"""The account the dashboard shows, and the others the user may switch to, for the top bar.

Lazy: pages that do not show them (the admin's) pay no query, and the dashboard's
views share the one `dashboard_accounts` makes.
"""

from django.utils.functional import SimpleLazyObject

from .access import dashboard_account, dashboard_accounts


def batch_account(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"batch_account": SimpleLazyObject(lambda: dashboard_account(request)),
            "batch_accounts": SimpleLazyObject(lambda: dashboard_accounts(request))}
