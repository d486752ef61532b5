"""Dashboard pages for pools and their nodes, with the operator's controls.

Views parse, call a selector (`pools.dashboard`) or a service, and render. Every
control is a POST of a plain form (CSRF as everywhere), refused with 403 to
viewers; a service's refusal (BatchError) becomes a message on the page that follows.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.access import dashboard_account, may_operate
from batchapi.errors import BatchError
from batchapi.input import INT32_MAX, bounded_int
from jobs.views import refusal_shown

from . import dashboard
from .models import ComputeNode, Pool
from .selectors import find_pool
from .services import node_actions, sizing

NODE_OPTIONS, DISABLE_OPTIONS = dashboard.NODE_OPTIONS, dashboard.DISABLE_OPTIONS


def get_pool_or_404(request, pool_id: str, *, change: bool = False) -> Pool:
    """The pool of the account the dashboard shows; 404 elsewhere, 403 to change it as a viewer."""
    account = dashboard_account(request)
    pool = account and find_pool(account, pool_id)
    if pool is None:
        raise Http404(f"No pool {pool_id!r}")
    if change and not may_operate(request.user, account):
        raise PermissionDenied("viewers of this account cannot change its pools")
    return pool


def get_node_or_404(pool: Pool, node_id: str) -> ComputeNode:
    node = ComputeNode.objects.filter(pool=pool, name=node_id).first()
    if node is None:
        raise Http404(f"No node {node_id!r} in pool {pool.batch_id!r}")
    return node


@require_GET
@login_required
def pool_list(request):
    account = dashboard_account(request)
    rows, more = dashboard.pool_list(account) if account else ([], False)
    return render(request, "pools/pool_list.html", {
        "rows": rows, "more": more, "operator": bool(account) and may_operate(request.user, account),
        "shown": dashboard.POOLS_SHOWN})


@require_GET
@login_required
def pool_detail(request, pool_id):
    pool = get_pool_or_404(request, pool_id)
    after = request.GET.get("after", "")[:128]
    context = dashboard.pool_context(pool, after)
    return render(request, "pools/pool_detail.html", {
        **context, "operator": may_operate(request.user, pool.account),
        "timeline": dashboard.timeline(pool, context["row"].by_state, timezone.now()),
        "ws_query": request.GET.urlencode(), "options": NODE_OPTIONS})


@require_GET
@login_required
def node_detail(request, pool_id, node_id):
    pool = get_pool_or_404(request, pool_id)
    node = get_node_or_404(pool, node_id)
    return render(request, "pools/node_detail.html", {
        **dashboard.node_context(pool, node), "operator": may_operate(request.user, pool.account),
        "options": NODE_OPTIONS, "disable_options": DISABLE_OPTIONS})


# --- operator actions ------------------------------------------------------------------------


def back_to(request, pool: Pool):
    """The pool page the form came from (with its node table's page), or the Pools page."""
    if request.POST.get("next") == "pools":
        return redirect("pool-list")
    after = request.POST.get("after", "")
    page = reverse("pool-detail", args=[pool.batch_id])
    return redirect(f"{page}?{urlencode({'after': after[:128]})}" if after else page)


def target(request, name: str) -> int | None:
    """A target node count from the form: None when left empty; a wrong one is refused (ValueError)."""
    text = request.POST.get(name, "").strip()
    if not text:
        return None
    value = bounded_int(text, low=0, high=INT32_MAX)
    if value is None:
        raise ValueError(f"{text!r} is no number of nodes")
    return value


@require_POST
@login_required
def resize_pool(request, pool_id):
    pool = get_pool_or_404(request, pool_id, change=True)
    try:
        dedicated, low_priority = target(request, "dedicated"), target(request, "low_priority")
    except ValueError as error:
        messages.error(request, str(error))
        return back_to(request, pool)
    if dedicated is None and low_priority is None:
        messages.error(request, "Say how many nodes the pool should have.")
        return back_to(request, pool)
    deallocation = request.POST.get("deallocation") or "requeue"
    with refusal_shown(request):
        sizing.resize_pool(pool=pool, target_dedicated=dedicated, target_low_priority=low_priority,
                           deallocation=deallocation)
        wanted = [f"{n} {kind}" for n, kind in ((dedicated, "dedicated"), (low_priority, "low-priority"))
                  if n is not None]
        messages.success(request, f"Pool {pool.batch_id} is resizing to {' and '.join(wanted)} nodes.")
    return back_to(request, pool)


@require_POST
@login_required
def stop_resize(request, pool_id):
    pool = get_pool_or_404(request, pool_id, change=True)
    with refusal_shown(request):
        sizing.stop_resize(pool=pool)
        messages.success(request, f"Pool {pool.batch_id} stops resizing where it is.")
    return back_to(request, pool)


def selected_nodes(request) -> list[str]:
    return [name[:128] for name in request.POST.getlist("node") if name][: node_actions.MAX_NODES_REMOVED]


def each_node(request, pool: Pool, names: list[str], act, verb: str) -> None:
    """`act(node)` for each selected node; each refusal is a warning, the rest go on."""
    done, refused = 0, []
    for node in ComputeNode.objects.filter(pool=pool, name__in=names).order_by("name"):
        try:
            act(node)
            done += 1
        except BatchError as error:
            reason = error.values.get("Reason")
            refused.append(f"{node.name}: {error.message}" + (f" ({reason})" if reason else ""))
    messages.success(request, f"{done} node(s) {verb}.")
    for line in refused[:5]:
        messages.warning(request, line)


@require_POST
@login_required
def node_action(request, pool_id):
    """What an operator does to the nodes ticked in the pool's node table (or the one of a node's page)."""
    pool = get_pool_or_404(request, pool_id, change=True)
    names, action = selected_nodes(request), request.POST.get("action", "")
    option = request.POST.get("option") or "requeue"
    if not names:
        messages.error(request, "Choose nodes first.")
    elif option not in NODE_OPTIONS or (action == "disable" and option not in DISABLE_OPTIONS):
        messages.error(request, f"{option!r} is no option of this action.")
    elif action == "remove":
        with refusal_shown(request):
            sizing.remove_nodes(pool=pool, node_ids=names, deallocation=option)
            messages.success(request, f"{len(names)} node(s) leave pool {pool.batch_id}.")
    elif action == "disable":
        each_node(request, pool, names, lambda n: node_actions.disable_scheduling(node=n, option=option),
                  "no longer take tasks")
    elif action == "enable":
        each_node(request, pool, names, lambda n: node_actions.enable_scheduling(node=n), "take tasks again")
    elif action == "reboot":
        each_node(request, pool, names, lambda n: node_actions.reboot_node(node=n, option=option), "rebooting")
    else:
        messages.error(request, "Choose an action.")
    if request.POST.get("next") == "node" and len(names) == 1 and action != "remove":
        return redirect("node-detail", pool_id=pool.batch_id, node_id=names[0])
    return back_to(request, pool)
