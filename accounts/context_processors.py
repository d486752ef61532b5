"""The account the dashboard shows, and the others the user may switch to, for the top bar."""

from .access import SESSION_KEY, accounts_of


def batch_account(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    mine = list(accounts_of(user))
    chosen = request.session.get(SESSION_KEY)
    current = next((a for a in mine if a.name == chosen), mine[0] if mine else None)
    return {"batch_account": current, "batch_accounts": mine}
