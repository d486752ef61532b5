"""The pool and node pages, through Django's test client: access, cost, controls, start task output, samples."""

import os
import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import BatchAccount, Membership, Role, default_account
from jobs import events, watcher
from pools import dashboard, node_counts
from pools.models import AllocationState, ComputeNode, NodeCountSample, NodeState, Pool, SchedulingState
from pools.node_load import Load
from pools.routing import websocket_urlpatterns
from pools.services import allocation, lifecycle, nodes
from tasks.files import startup_dir
from tasks.services import runs as task_runs

from .helpers import add, make_job, node

pytestmark = pytest.mark.django_db


def make_pool(pool_id: str = "render", account=None, **values) -> Pool:
    spec = {"account": account or default_account(), "batch_id": pool_id, "vm_size": "standard_d2s_v3", **values}
    return lifecycle.create_pool(spec=spec)


def bounded(sql: str) -> bool:
    """A SELECT reads a bounded number of rows: it has a LIMIT, is an aggregate, or keeps the
    newest few of each node (recentTasks: a window's row number)."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return True
    return bool(re.search(r"\bLIMIT\b|\b(COUNT|SUM|MAX|MIN)\(|\"newest\" <= \d", sql, re.IGNORECASE))


@pytest.fixture
def browser(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def viewer(django_user_model):
    user = django_user_model.objects.create_user(username="viewer")
    Membership.objects.create(user=user, account=default_account(), role=Role.VIEWER)
    return user


@pytest.fixture
def outsider(django_user_model):
    """A member of another account only."""
    user = django_user_model.objects.create_user(username="outsider")
    Membership.objects.create(user=user, account=BatchAccount.objects.create(name="beta"), role=Role.OPERATOR)
    return user


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/pools/", "/pools/render/", "/pools/render/nodes/n1/"])
def test_every_pool_page_sends_an_anonymous_visitor_to_log_in(client, path):
    make_pool()
    node("n1", pool="render")
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_pool_controls_refuse_anonymous_visitors(client):
    pool = make_pool(target_dedicated_nodes=0)
    node("n1", pool="render")
    for path, data in (("/pools/render/actions/resize", {"dedicated": "5"}),
                       ("/pools/render/actions/nodes", {"node": "n1", "action": "disable"})):
        response = client.post(path, data)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    pool.refresh_from_db()
    assert pool.target_dedicated_nodes == 0
    assert ComputeNode.objects.get(name="n1").scheduling_state == SchedulingState.ENABLED


def test_the_pools_page_shows_each_pool_of_the_account_with_its_nodes(browser):
    make_pool("render", target_dedicated_nodes=3, task_slots_per_node=2)
    node("render-1", pool="render")
    node("render-2", pool="render")
    make_pool("auto", made_for_job="nightly")
    make_pool("theirs", account=BatchAccount.objects.create(name="beta"))
    response = browser.get("/pools/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'href="/pools/render/"' in html and 'href="/pools/auto/"' in html and "theirs" not in html
    row = re.search(r'<tr id="pool-\d+">.*?render.*?</tr>', html, re.S).group(0)
    assert "2 / 3" in row  # current / target dedicated nodes
    assert "0 / 4" in row  # slots in use / slots of its live nodes
    assert "2 idle" in row and 'class="n-idle" style="width: 100.00%"' in row
    assert "resizing" in row
    assert 'made for job <a href="/jobs/nightly/">nightly</a>' in html
    assert 'href="/pools/"' in html  # the top navigation


def test_another_accounts_pools_and_nodes_are_invisible(client, outsider, owner):
    make_pool()
    node("n1", pool="render")
    client.force_login(outsider)
    assert "render" not in client.get("/pools/").content.decode()
    assert client.get("/pools/render/").status_code == 404
    assert client.get("/pools/render/nodes/n1/").status_code == 404
    assert client.post("/pools/render/actions/resize", {"dedicated": "4"}).status_code == 404
    client.force_login(owner)
    assert client.get("/pools/render/nodes/n1/").status_code == 200
    assert client.get("/pools/render/nodes/nobody/").status_code == 404


def test_viewers_see_no_controls_and_are_refused_them(client, viewer):
    pool = make_pool()
    node("n1", pool="render")
    client.force_login(viewer)
    for path in ("/pools/", "/pools/render/", "/pools/render/nodes/n1/"):
        html = client.get(path).content.decode()
        assert "actions/" not in html, path
    for path, data in (("/pools/render/actions/resize", {"dedicated": "5"}),
                       ("/pools/render/actions/stop-resize", {}),
                       ("/pools/render/actions/nodes", {"node": "n1", "action": "reboot"})):
        assert client.post(path, data).status_code == 403, path
    pool.refresh_from_db()
    assert pool.target_dedicated_nodes == 0 and pool.allocation_state == AllocationState.STEADY
    assert ComputeNode.objects.get(name="n1").state == NodeState.IDLE


# --- controls ---------------------------------------------------------------------------------


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def test_an_operator_resizes_a_pool_and_stops_the_resize(browser):
    pool = make_pool()
    response = browser.post("/pools/render/actions/resize", {"dedicated": "3", "low_priority": "1",
                                                              "deallocation": "taskcompletion"}, follow=True)
    pool.refresh_from_db()
    assert (pool.target_dedicated_nodes, pool.target_low_priority_nodes) == (3, 1)
    assert pool.allocation_state == AllocationState.RESIZING and pool.resize_deallocation == "taskcompletion"
    assert "is resizing to 3 dedicated and 1 low-priority nodes" in messages_of(response)
    assert "Stop resize" in response.content.decode()

    refused = browser.post("/pools/render/actions/resize", {"dedicated": "9"}, follow=True)
    assert "The specified pool is being resized." in messages_of(refused)  # Batch's own message
    pool.refresh_from_db()
    assert pool.target_dedicated_nodes == 3

    browser.post("/pools/render/actions/stop-resize")
    pool.refresh_from_db()
    assert pool.allocation_state == AllocationState.STOPPING

    nonsense = browser.post("/pools/render/actions/resize", {"dedicated": "-2"}, follow=True)
    assert "no number of nodes" in messages_of(nonsense)
    empty = browser.post("/pools/render/actions/resize", {"dedicated": "", "low_priority": ""}, follow=True)
    assert "Say how many nodes" in messages_of(empty)


def test_the_pools_page_resizes_and_comes_back(browser):
    pool = make_pool()
    response = browser.post("/pools/render/actions/resize", {"dedicated": "2", "next": "pools"})
    assert response.status_code == 302 and response["Location"] == "/pools/"
    pool.refresh_from_db()
    assert pool.target_dedicated_nodes == 2


def test_an_operator_acts_on_selected_nodes(browser):
    pool = make_pool(target_dedicated_nodes=3)
    for name in ("n1", "n2", "n3"):
        node(name, pool="render")
    allocation.settle(pool)

    response = browser.post("/pools/render/actions/nodes", {"node": ["n1", "n2"], "action": "disable"}, follow=True)
    assert "2 node(s) no longer take tasks" in messages_of(response)
    assert {n.name: (n.state, n.scheduling_state) for n in ComputeNode.objects.filter(name__in=["n1", "n2"])} == {
        "n1": ("offline", "disabled"), "n2": ("offline", "disabled")}
    browser.post("/pools/render/actions/nodes", {"node": "n1", "action": "enable"})
    assert ComputeNode.objects.get(name="n1").state == NodeState.IDLE

    response = browser.post("/pools/render/actions/nodes", {"node": "n3", "action": "reboot", "next": "node"})
    assert response["Location"] == "/pools/render/nodes/n3/"
    assert ComputeNode.objects.get(name="n3").state == NodeState.REBOOTING
    refused = browser.post("/pools/render/actions/nodes", {"node": "n3", "action": "reboot"}, follow=True)
    assert "n3: The specified operation is not valid for the current state of the resource." in messages_of(refused)
    assert "the node is rebooting: it cannot reboot" in messages_of(refused)

    browser.post("/pools/render/actions/nodes", {"node": ["n1", "n2"], "action": "remove"})
    pool.refresh_from_db()
    assert pool.target_dedicated_nodes == 1
    assert set(ComputeNode.objects.filter(state=NodeState.LEAVING_POOL).values_list("name", flat=True)) == {"n1", "n2"}


def test_removing_nodes_from_a_resizing_pool_shows_batchs_refusal(browser):
    make_pool(target_dedicated_nodes=5)  # resizing: it has no node yet
    node("n1", pool="render")
    response = browser.post("/pools/render/actions/nodes", {"node": "n1", "action": "remove"}, follow=True)
    assert "The specified pool is being resized." in messages_of(response)
    assert ComputeNode.objects.get(name="n1").state == NodeState.IDLE


# --- what the pages show ------------------------------------------------------------------------


def test_the_pool_page_shows_properties_heatmap_and_counts(browser):
    pool = make_pool(target_dedicated_nodes=4, task_slots_per_node=2, made_for_job="nightly",
                     start_task={"commandLine": "/bin/sh -c 'echo ready'", "waitForSuccess": True})
    allocation.make_nodes(pool, 2, dedicated=True, provider="local")
    node("busy", pool="render")
    nodes.start_task_ended("busy", 0, None)
    job = make_job("j", pool_info={"poolId": "render"})
    add(job, "t1")
    task_runs.claim_tasks(node_id="busy", limit=1, holding=Load())
    allocation.add_resize_error(pool.pk, "NodeStartFailed", "node x did not start: no bwrap")
    html = browser.get("/pools/render/").content.decode()
    assert "Made automatically for job" in html and 'href="/jobs/nightly/"' in html
    assert "echo ready" in html and "NodeStartFailed" in html and "no bwrap" in html
    tiles = re.findall(r'<a class="tile ([^"]+)" href="nodes/([^"]+)/" style="--u:(\d+)%"', html)
    assert sorted((cls, fill) for cls, _, fill in tiles) == [("n-creating", "0"), ("n-creating", "0"),
                                                             ("n-running", "50")]
    assert 'id="slots-used">1<span class="of"> / 2</span>' in html  # the creating nodes have no agent yet
    assert 'id="nodes-dedicated">3<span class="of"> / 4</span>' in html
    assert 'id="pool-timeline-data"' in html
    assert "{#" not in html and "{%" not in html  # no template comment shown as text


def test_the_node_page_shows_what_it_runs_its_start_task_and_its_host(browser):
    make_pool(start_task={"commandLine": "/bin/sh -c 'echo warming up'"})
    node("n1", pool="render")
    startup = startup_dir("batchsite", "n1")
    startup.mkdir(parents=True)
    (startup / "stdout.txt").write_text("warming up\nready\n")
    os.symlink("/etc/passwd", startup / "stderr.txt")  # a hostile start task: never followed
    nodes.start_task_ended("n1", 0, None)
    ComputeNode.objects.filter(name="n1").update(
        confined=False, containment="no bubblewrap",
        usage={"cpu": 12.5, "memory": 40.0, "load": 0.3, "cores": 2,
               "points": [["2026-12-03T10:00:00+00:00", 10.0, 39.0, 0.2],
                          ["2026-12-03T10:00:05+00:00", 12.5, 40.0, 0.3]]})
    job = make_job("j", pool_info={"poolId": "render"})
    add(job, "old", "now")
    [old] = task_runs.claim_tasks(node_id="n1", limit=1, holding=Load())
    task_runs.finish_task(task=old, attempt=old.attempt, exit_code=0)
    task_runs.claim_tasks(node_id="n1", limit=1, holding=Load())

    html = browser.get("/pools/render/nodes/n1/").content.decode()
    running = html[html.index("Running tasks</h2>"):html.index("Recent tasks</h2>")]
    assert 'href="/jobs/j/tasks/now/"' in running and "/jobs/j/tasks/old/" not in running
    recent = html[html.index("Recent tasks</h2>"):]
    assert 'href="/jobs/j/tasks/old/"' in recent
    assert "warming up\nready" in html and "root:" not in html
    assert "stderr.txt is not a regular file" in html
    assert "Tasks run unconfined" in html and "no bubblewrap" in html
    assert '"cpu": [10.0, 12.5]' in html and "on 2 cores" in html
    assert 'href="/pools/render/"' in html
    files = html[html.index('id="node-files"'):]
    assert "startup/stdout.txt" in files and "startup/stderr.txt" in files  # the link is listed as itself


# --- cost ---------------------------------------------------------------------------------------


def cost(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    sqls = [q["sql"] for q in queries]
    assert all(bounded(sql) for sql in sqls), [sql for sql in sqls if not bounded(sql)]
    return sqls


def test_the_pages_cost_as_many_queries_with_two_hundred_nodes_as_with_one(browser):
    make_pool("small", task_slots_per_node=2)
    big = make_pool("big", task_slots_per_node=2)
    node("small-1", pool="small")
    allocation.make_nodes(big, 199, dedicated=True, provider="local")
    node("big-1", pool="big")
    for pool in ("small", "big"):  # each node page lists a running and a recent task
        add(make_job(f"{pool}-job", pool_info={"poolId": pool}), "done", "now")
        [done] = task_runs.claim_tasks(node_id=f"{pool}-1", limit=1, holding=Load())
        task_runs.finish_task(task=done, attempt=done.attempt, exit_code=0)
        task_runs.claim_tasks(node_id=f"{pool}-1", limit=1, holding=Load())
    costs = {pool: {page: cost(browser, path) for page, path in (
        ("pools", "/pools/"), ("pool", f"/pools/{pool}/"), ("node", f"/pools/{pool}/nodes/{pool}-1/"))}
        for pool in ("small", "big")}
    for page in ("pools", "pool", "node"):
        assert len(costs["small"][page]) == len(costs["big"][page]), page
    # session, user, the account shown, its pools, their node counts, their slots, the role
    assert len(costs["big"]["pools"]) == 7, costs["big"]["pools"]
    # session, user, accounts, pool, heatmap, node counts, node table, samples, role
    assert len(costs["big"]["pool"]) == 9, costs["big"]["pool"]
    # session, user, accounts, pool, node, recent tasks, running tasks, role
    assert len(costs["big"]["node"]) == 8, costs["big"]["node"]
    html = browser.get("/pools/big/").content.decode()
    assert html.count('class="tile') == 200 and html.count('id="pick-') == dashboard.NODE_PAGE


def test_the_heatmap_draws_at_most_its_limit_and_says_so(browser, monkeypatch):
    monkeypatch.setattr(dashboard, "MAX_TILES", 20)
    pool = make_pool(task_slots_per_node=2)
    allocation.make_nodes(pool, 25, dedicated=True, provider="local")
    html = browser.get("/pools/render/").content.decode()
    assert html.count('class="tile') == 20 and "the first 20 of 25 nodes" in html


# --- samples and versions -------------------------------------------------------------------------


def test_each_second_keeps_one_sample_holding_the_counts_at_its_end():
    pool = make_pool(target_dedicated_nodes=3)
    allocation.make_nodes(pool, 3, dedicated=True, provider="local")
    for name in ("a", "b"):
        node(name, pool="render")
    samples = list(NodeCountSample.objects.filter(pool=pool).order_by("at"))
    assert 1 <= len(samples) <= 2 and len({s.at for s in samples}) == len(samples)
    last = samples[-1]
    assert (last.creating, last.idle) == (3, 2)  # every change of the last second is in it
    assert node_counts.read(pool.pk)[0].as_dict()["idle"] == 2


def test_old_node_samples_are_thinned_as_task_samples_are():
    pool = make_pool()
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=8)
    NodeCountSample.objects.bulk_create(NodeCountSample(pool=pool, at=start + timedelta(seconds=s), idle=s % 7)
                                        for s in range(0, 8 * 3600, 5))
    while node_counts.thin_samples():
        pass
    kept = NodeCountSample.objects.filter(pool=pool).count()
    assert 100 <= kept < 600


def test_the_watched_versions_move_with_what_the_pages_show():
    pool = make_pool(target_dedicated_nodes=1)
    n1 = node("n1", pool="render")
    keys = [("pools", pool.account_id), ("pool", pool.pk), ("node", pool.pk, n1.pk)]

    def versions():
        return watcher.read_versions(keys)

    before = versions()
    job = make_job("j", pool_info={"poolId": "render"})
    add(job, "t1", "t2")
    task_runs.claim_tasks(node_id="n1", limit=1, holding=Load())  # idle -> running: the counts move
    after_claim = versions()
    assert after_claim[("pool", pool.pk)] != before[("pool", pool.pk)]
    assert after_claim[("node", pool.pk, n1.pk)] != before[("node", pool.pk, n1.pk)]
    assert after_claim[("pools", pool.account_id)] == before[("pools", pool.account_id)]

    nodes.heartbeat("n1", usage={"cpu": 1.0, "memory": 2.0, "load": 0.1, "points": []})
    assert versions()[("node", pool.pk, n1.pk)] != after_claim[("node", pool.pk, n1.pk)]
    make_pool("another")
    assert versions()[("pools", pool.account_id)] != before[("pools", pool.account_id)]
    Pool.objects.filter(pk=pool.pk).delete()
    assert versions()[("pool", pool.pk)] is None and versions()[("node", pool.pk, n1.pk)] is None


def test_with_redis_a_change_of_a_pools_nodes_nudges_the_pages_that_show_it(settings, monkeypatch,
                                                                              django_capture_on_commit_callbacks):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # never reached: the publish is captured
    sent = []
    monkeypatch.setattr(events, "_publish", sent.append)
    pool = make_pool()
    job = make_job("j")
    with django_capture_on_commit_callbacks(execute=True):
        n1 = node("n1", pool="render")
    assert f"pool:{pool.pk}" in sent
    with django_capture_on_commit_callbacks(execute=True):
        add(job, "t1")
    assert str(job.pk) in sent

    def watching(*keys) -> watcher.Watcher:
        w = watcher.Watcher()
        for key in keys:
            w.callbacks[key].add(lambda: None)
        return w

    nudge = f"pool:{pool.pk}".encode()
    assert watching(("pool", pool.pk))._wanted(nudge) and watching(("node", pool.pk, n1.pk))._wanted(nudge)
    assert watching(("pools", pool.account_id))._wanted(nudge)
    assert not watching(("pool", pool.pk + 1), ("job", pool.pk))._wanted(nudge)
    assert watching(("job", job.pk))._wanted(str(job.pk).encode()) and not watching(("pool", job.pk))._wanted(
        str(job.pk).encode())


# --- the sockets --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the consumers read in their own threads
def test_the_pool_sockets_send_their_page_and_refuse_other_accounts(owner, outsider):
    make_pool()
    node("n1", pool="render")

    def socket(path: str, user) -> WebsocketCommunicator:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
        communicator.scope["user"] = user
        return communicator

    async def scenario():
        for path, part in (("/ws/pools/", 'id="pool-table"'), ("/ws/pools/render/", 'id="heatmap"'),
                           ("/ws/pools/render/nodes/n1/", 'id="node-summary"')):
            mine = socket(path, owner)
            assert (await mine.connect())[0], path
            assert part in await mine.receive_from(timeout=10)  # the state on connect
            await mine.disconnect()
        for path in ("/ws/pools/render/", "/ws/pools/render/nodes/n1/"):
            theirs = socket(path, outsider)
            assert not (await theirs.connect())[0], path

    async_to_sync(scenario)()
