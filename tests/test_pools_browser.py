"""The pool and node pages, live, in a real browser against a real daphne server and real worker processes.

As `test_dashboard_browser.py` (whose server, browser and page fixtures these tests
share): each test commits its data, so daphne and the workers, separate
processes, see it; nodes join and leave through the services the agent and the
allocator call, or as a real worker process.
"""

import os
import time

import pytest

from accounts.models import default_account
from pools.models import AllocationState, ComputeNode, NodeState, Pool
from pools.node_load import Load
from pools.services import allocation, lifecycle, nodes, sizing
from tasks.models import Task, TaskState
from tasks.services import actions as task_actions
from tasks.services import runs as task_runs

from . import test_dashboard_browser as dashboard_browser
from .browser import browser_missing, screenshot
from .helpers import add, make_job, node

# The dashboard's browser fixtures: a daphne server and a Chromium for the module, the node root they
# share with the workers, and pages watched for violations of the Content-Security-Policy.
shared_node_root, node_root, server = dashboard_browser.shared_node_root, dashboard_browser.node_root, \
    dashboard_browser.server
chromium, violations, open_page = dashboard_browser.chromium, dashboard_browser.violations, dashboard_browser.open_page
wait_live = dashboard_browser.wait_live

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

MISSING = browser_missing()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              pytest.mark.django_db(transaction=True), pytest.mark.same_on_every_database]


def make_pool(pool_id: str, **values) -> Pool:
    spec = {"account": default_account(), "batch_id": pool_id, "vm_size": "standard_d2s_v3", **values}
    return lifecycle.create_pool(spec=spec)


def tiles(page) -> dict[str, str]:
    """The heatmap on screen: node id -> the tile's classes."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('#heatmap a.tile'))
        .map(a => [decodeURIComponent(a.getAttribute('href').split('/')[1]), a.className]))""")


def wait_tiles(page, expected: dict[str, str], timeout: float = 15) -> None:
    """Until the heatmap shows exactly these nodes, each in this state."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {name: next(c[2:] for c in classes.split() if c.startswith("n-"))
                for name, classes in tiles(page).items()}
        if seen == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the heatmap shows {seen}, not {expected}")
        time.sleep(0.05)


def test_the_heatmap_follows_a_pool_as_it_grows_and_shrinks_without_a_reload(open_page, owner):
    pool = make_pool("grid")
    page = open_page(owner, "/pools/grid/")
    wait_live(page)
    assert tiles(page) == {} and "No nodes" in page.inner_text("#heatmap")
    points = page.evaluate("document.getElementById('pool-timeline-chart').data[0].x.length")

    # Resize to three: the allocator makes the rows, then each node's agent joins (as `nodes.allocator` and
    # `manage.py worker` do, through the same services).
    sizing.resize_pool(pool=pool, target_dedicated=3)
    page.wait_for_function("() => document.querySelector('#pool-summary').textContent.includes('resizing')")
    made = [n.name for n in allocation.make_nodes(pool, 3, dedicated=True, provider="local")]
    wait_tiles(page, dict.fromkeys(made, "creating"))
    for name in made:
        node(name, pool="grid")
    wait_tiles(page, dict.fromkeys(made, "idle"))
    allocation.settle(pool)
    page.wait_for_function("() => document.querySelector('#pool-summary').textContent.includes('steady')")

    # A task starts on one node: its tile turns running and fills (one slot of one in use).
    job = make_job("on-grid", pool_info={"poolId": "grid"})
    add(job, "t1")
    [task] = task_runs.claim_tasks(node_id=made[0], limit=1, holding=Load())
    wait_tiles(page, {made[0]: "running", made[1]: "idle", made[2]: "idle"})
    assert page.get_attribute(f"#heatmap a.tile[href='nodes/{made[0]}/']", "style") == "--u:100%"
    task_actions.terminate_task(task=Task.objects.select_related("job").get(pk=task.pk))

    # Shrink to one: two nodes are asked to leave, then their agents stop; their tiles go.
    sizing.resize_pool(pool=pool, target_dedicated=1)
    leaving = allocation.plan(Pool.objects.get(pk=pool.pk)).leaving
    allocation.let_go(pool, leaving)
    gone = sorted(n.name for n in leaving)
    stays = (set(made) - set(gone)).pop()
    page.wait_for_function("() => document.querySelectorAll('#heatmap a.tile.n-leavingpool').length === 2")
    for name in gone:
        nodes.leave_pool(name)
    wait_tiles(page, {stays: ComputeNode.objects.get(name=stays).state})
    assert allocation.settle(pool) == AllocationState.STEADY
    page.wait_for_function("() => document.querySelector('#pool-summary').textContent.includes('steady')")
    assert page.inner_text("#nodes-dedicated").split() == ["1", "/", "1"]

    assert page.evaluate("window.__notReloaded") is True
    # Each change that reached the page added a point to nodes over time.
    assert page.evaluate("document.getElementById('pool-timeline-chart').data[0].x.length") >= points + 4
    screenshot(page, "pool-page")


def test_the_pools_page_shows_a_new_pool_and_its_nodes_by_themselves(open_page, owner):
    make_pool("first", target_dedicated_nodes=0)
    page = open_page(owner, "/pools/")
    wait_live(page)
    assert page.locator("#pool-table tbody tr").count() == 1

    later = make_pool("later", target_dedicated_nodes=2, made_for_job="nightly")
    page.wait_for_selector("#pool-table tr:has-text('later')", timeout=10_000)
    assert "made for job nightly" in page.inner_text(f"#pool-{later.pk}")
    time.sleep(1)  # the page has settled on the new pool: what comes next is the node's news
    node("later-1", pool="later")
    page.wait_for_function(f"() => document.querySelector('#pool-{later.pk}').textContent.includes('1 idle')")
    assert "1 / 2" in page.inner_text(f"#pool-{later.pk}")
    assert page.evaluate("window.__notReloaded") is True
    screenshot(page, "pools-list")


def test_the_node_page_shows_its_running_task_and_its_hosts_usage(open_page, owner, start_worker, monkeypatch):
    make_pool("work", task_slots_per_node=2,
              start_task={"commandLine": "/bin/echo the start task ran", "waitForSuccess": True})
    job = make_job("long", pool_info={"poolId": "work"})
    (task,) = add(job, "sleeper", command="/bin/sleep 30")
    monkeypatch.setenv("BATCHSITE_HEARTBEAT_SECONDS", "1")  # points of usage come with each heartbeat
    start_worker("--name", "n1", "--pool", "work", "--slots", "2", "--poll", "0.1")
    deadline = time.monotonic() + 60
    while Task.objects.get(pk=task.pk).state != TaskState.RUNNING:
        assert time.monotonic() < deadline, "the worker did not start the task"
        time.sleep(0.1)

    page = open_page(owner, "/pools/work/nodes/n1/")
    wait_live(page)
    assert page.locator("#node-tasks .running-tasks a[href='/jobs/long/tasks/sleeper/']").count() == 1
    assert "the start task ran" in page.inner_text("#start-stdout")
    assert "1" == page.inner_text("#node-running").strip()
    # The chart grows as heartbeats bring points, without a reload.
    page.wait_for_function("() => document.getElementById('usage-chart').data", timeout=15_000)
    first = page.evaluate("document.getElementById('usage-chart').data[0].x.length")
    page.wait_for_function(f"() => document.getElementById('usage-chart').data[0].x.length >= {first + 2}",
                           timeout=30_000)
    assert page.evaluate("document.getElementById('usage-chart').data[0].y.every(v => v >= 0 && v <= 100)")
    assert page.locator("#node-summary .badge.s-running").count() == 1
    screenshot(page, "node-page")

    # The node state follows the task's end.
    task_actions.terminate_task(task=Task.objects.select_related("job").get(pk=task.pk))
    page.wait_for_function("() => document.querySelector('#node-tasks').textContent.includes('Nothing runs here now')",
                           timeout=30_000)
    page.wait_for_selector("#node-summary .badge.s-idle", timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert ComputeNode.objects.get(name="n1").state == NodeState.IDLE
