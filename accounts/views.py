"""Switching the account the dashboard shows."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .access import SESSION_KEY, accounts_of


@require_POST
@login_required
def switch_account(request):
    name = request.POST.get("account", "")
    if not accounts_of(request.user).filter(name=name).exists():
        raise Http404("not one of your accounts")
    request.session[SESSION_KEY] = name
    return redirect("job-list")
