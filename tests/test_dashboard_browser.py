"""The live dashboard in a real browser, against a real daphne server and real worker processes.

Headless Chromium (Debian's) is driven by Playwright. Each test commits its data
(transactional tests), so daphne and the workers, separate processes, see it.
"""

import os
import re
import shlex
import time

import pytest

from jobs.models import Job
from tasks import counts
from tasks.models import Task
from tasks.services import actions as task_actions
from tasks.services import runs as task_runs

from .browser import CHROMIUM, CHROMIUM_ARGS, Server, browser_missing, screenshot, session_cookie, watch_policy
from .conftest import worker_env
from .helpers import TASK_PYTHON, add, claim, make_job

# Playwright's sync API keeps an event loop in this thread; the ORM calls of the
# test itself are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

MISSING = browser_missing()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              pytest.mark.django_db(transaction=True), pytest.mark.same_on_every_database]

FIELDS = ("active", "running", "completed", "succeeded", "failed")


def py(program: str) -> str:
    """A command line running a small Python program (no shell: the worker splits it with shlex)."""
    return shlex.join([TASK_PYTHON, "-u", "-c", program])


@pytest.fixture(scope="module")
def shared_node_root(tmp_path_factory):
    return tmp_path_factory.mktemp("nodes")


@pytest.fixture(autouse=True)
def node_root(shared_node_root, settings):
    """The server, the workers and the test read and write the same task directories."""
    settings.BATCHSITE_NODE_ROOT = shared_node_root
    return shared_node_root


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, shared_node_root, tmp_path_factory):
    with django_db_blocker.unblock():
        env = worker_env(BATCHSITE_NODE_ROOT=str(shared_node_root), BATCHSITE_LOG_LEVEL="WARNING")
    live = Server(env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def violations():
    """Content-Security-Policy violations seen by any page a test opens: none is allowed."""
    seen: list[str] = []
    yield seen
    assert seen == []


@pytest.fixture
def open_page(chromium, server, violations):
    """A page of a fresh browser context, logged in as `user` (or anonymous when None).

    Every page is watched for violations of the Content-Security-Policy while the test runs.
    """
    opened = []  # (context, the violations seen in it)

    def open_(user, path: str, width: int = 1280):
        context = chromium.new_context(viewport={"width": width, "height": 900})
        opened.append((context, watch_policy(context)))
        if user is not None:
            context.add_cookies([session_cookie(user, server.url)])
        page = context.new_page()
        page.goto(server.url + path)
        return page

    yield open_
    for context, seen in opened:
        for page in context.pages:
            page.wait_for_timeout(200)  # reports still on their way arrive while Playwright waits
        violations.extend(seen)
        context.close()


def wait_live(page):
    """Until the page's socket is open (the indicator in the header turns green)."""
    page.wait_for_selector("#live.on", timeout=15_000)
    page.evaluate("window.__notReloaded = true")


def dom_counts(page) -> dict:
    return {k: int(page.inner_text(f"#count-{k}")) for k in FIELDS}


def test_the_job_page_follows_a_job_to_its_end_without_a_reload(open_page, owner, start_worker):
    job = make_job("live-job", display_name="forty-five short tasks")
    add(job, *[f"ok-{i:02d}" for i in range(40)], command=py("import time; time.sleep(0.15)"))
    add(job, *[f"bad-{i}" for i in range(5)], command=py("import sys; sys.exit(3)"))
    page = open_page(owner, "/jobs/live-job/")
    wait_live(page)
    assert dom_counts(page) == {"active": 45, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}

    start_worker("--slots", "2", "--poll", "0.1", "--name", "browser-worker")
    seen = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = dom_counts(page)
        seen.add(now["completed"])
        if now["completed"] == 45:
            break
        time.sleep(0.05)
    # The counts moved on screen step by step, not once at the end.
    assert len(seen) >= 4, seen
    assert page.evaluate("window.__notReloaded") is True
    page.wait_for_function("() => document.getElementById('count-completed').textContent.trim() === '45'")
    time.sleep(0.5)  # a last update may be on its way; the final one must equal the stored counts
    assert dom_counts(page) == counts.read(job.pk).as_dict() == counts.actual(job.pk).as_dict()
    assert dom_counts(page)["failed"] == 5

    width = page.evaluate("parseFloat(document.querySelector('#job-summary .p-ok').style.width)")
    assert 85 <= width <= 90  # 40 of 45 succeeded
    points = page.evaluate("document.getElementById('timeline-chart').data[0].x.length")
    assert points >= 4
    page.wait_for_selector("#histogram-chart .main-svg")
    page.wait_for_function("() => document.getElementById('histogram-chart').data[0].y.reduce((a, b) => a + b, 0) > 0",
                           timeout=15_000)
    assert "failed" in page.inner_text("#task-table")
    screenshot(page, "job-page")
    phone = open_page(owner, "/jobs/live-job/", width=390)
    wait_live(phone)
    screenshot(phone, "job-page-phone")


def test_the_jobs_list_shows_progress_and_new_jobs_appear_by_themselves(open_page, owner):
    etl = make_job("etl-2026-11-20", display_name="Nightly ETL")
    add(etl, *[f"part-{i}" for i in range(30)])
    done = claim(node_id="render-node-1", limit=30)
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0) for t in done])
    nightly = make_job("nightly-render", display_name="Render frames 1-120", priority=100)
    add(nightly, *[f"frame-{i:03d}" for i in range(120)])
    claimed = claim(node_id="render-node-1", limit=70)
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0 if i % 12 else 1)
                                for i, t in enumerate(claimed[:62])])
    make_job("queued-analysis", priority=-10)

    page = open_page(owner, "/")
    wait_live(page)
    assert page.locator("#job-table tbody tr").count() == 3
    row = page.inner_text("#job-table tr:has-text('nightly-render')")
    assert "active" in row and "50" in row  # 50 still active

    job = make_job("arrives-later")
    add(job, "a", "b")
    page.wait_for_selector("#job-table tr:has-text('arrives-later')", timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    screenshot(page, "jobs-list")


def test_the_stdout_viewer_shows_lines_as_they_are_printed(open_page, owner, start_worker):
    job = make_job("logs")
    program = ("import time\n"
               "for i in range(50):\n"
               "    print(f'line {i:03d} of the running task', flush=True)\n"
               "    time.sleep(0.1)\n")
    (task,) = add(job, "chatty", command=py(program))
    start_worker("--slots", "1", "--poll", "0.1", "--name", "log-worker")
    deadline = time.monotonic() + 30
    while Task.objects.get(pk=task.pk).state != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)

    page = open_page(owner, "/jobs/logs/tasks/chatty/")
    wait_live(page)
    first = page.inner_text("#stdout-body")
    assert "line 049" not in first
    page.wait_for_function("() => document.getElementById('stdout-body').textContent.includes('line 049')",
                           timeout=30_000)
    text = page.inner_text("#stdout-body")
    lines = [line for line in text.splitlines() if line.startswith("line ")]
    assert lines == [f"line {i:03d} of the running task" for i in range(50)]  # each once, in order
    assert page.evaluate("window.__notReloaded") is True
    page.wait_for_function("() => document.querySelector('#task-summary .badge').textContent.trim() === 'succeeded'",
                           timeout=15_000)
    screenshot(page, "task-page")


def test_rerunning_a_failed_task_from_the_page_changes_its_state_live(open_page, owner, start_worker):
    job = make_job("rerun")
    flaky = ("import os, sys\n"
             "first = not os.path.exists('ran-before')\n"
             "open('ran-before', 'w').close()\n"
             "sys.exit(7 if first else 0)\n")
    (task,) = add(job, "flaky", command=py(flaky))
    start_worker("--slots", "1", "--poll", "0.1", "--name", "rerun-worker")
    page = open_page(owner, "/jobs/rerun/")
    wait_live(page)
    row = f"#task-{task.pk}"
    page.wait_for_function(f"() => document.querySelector('{row}').textContent.includes('failed')", timeout=30_000)
    assert "7" in page.inner_text(row)

    page.check(f"#select-{task.pk}")
    page.click("button[name=action][value=rerun]")
    page.wait_for_function(f"() => document.querySelector('{row}').textContent.includes('succeeded')", timeout=30_000)
    assert page.evaluate("window.__notReloaded") is True
    assert re.search(r"1 failed task\(s\) will run again", page.inner_text("#messages"))
    page.wait_for_function("() => document.getElementById('count-succeeded').textContent.trim() === '1'")
    assert Task.objects.get(pk=task.pk).result == "success"


def test_an_anonymous_browser_is_sent_to_log_in_and_its_socket_is_refused(open_page, owner):
    make_job("secret-job")
    page = open_page(None, "/jobs/secret-job/")
    assert "/accounts/login/" in page.url
    assert page.locator("#job-summary").count() == 0 and page.locator("#id_password").count() == 1
    outcome = page.evaluate("""() => new Promise(resolve => {
        const ws = new WebSocket(`ws://${location.host}/ws/jobs/secret-job/`);
        ws.onopen = () => resolve('open');
        ws.onclose = (e) => resolve('closed ' + e.code);
    })""")
    assert outcome.startswith("closed"), outcome

    page.fill("#id_username", "owner")
    page.fill("#id_password", "owner-password-1")
    page.click("button[type=submit]")
    page.wait_for_url("**/jobs/secret-job/")
    wait_live(page)
    assert "secret-job" in page.inner_text("h1")


def test_a_page_catches_up_by_itself_after_the_server_restarts(open_page, owner, server):
    job = make_job("restart")
    a, b, c = add(job, "a", "b", "c")
    page = open_page(owner, "/jobs/restart/")
    wait_live(page)
    server.stop()
    page.wait_for_selector("#live:not(.on)", timeout=10_000)
    # Changes made while the page has no socket...
    task_actions.terminate_task(task=a)
    claim(node_id="elsewhere", limit=1)
    server.start()
    # ...are on screen once it reconnects, without a reload.
    page.wait_for_selector("#live.on", timeout=30_000)
    page.wait_for_function("() => document.getElementById('count-failed').textContent.trim() === '1'", timeout=10_000)
    assert dom_counts(page) == counts.read(job.pk).as_dict() == {
        "active": 1, "running": 1, "completed": 1, "succeeded": 0, "failed": 1}
    page.wait_for_function(f"() => document.querySelector('#task-{a.pk}').textContent.includes('TaskEnded')")
    assert page.evaluate("window.__notReloaded") is True


def test_a_socket_reaches_only_the_jobs_of_the_account_shown(open_page, django_user_model):
    from accounts.models import BatchAccount, Membership, Role

    alpha, beta = BatchAccount.objects.create(name="alpha"), BatchAccount.objects.create(name="beta")
    make_job("alpha-job", account=alpha)
    make_job("beta-job", account=beta)
    user = django_user_model.objects.create_user("beta-only", password="beta-password-1")
    Membership.objects.create(user=user, account=beta, role=Role.OPERATOR)
    page = open_page(user, "/jobs/beta-job/")
    wait_live(page)
    outcome = page.evaluate("""(job) => new Promise(resolve => {
        const ws = new WebSocket(`ws://${location.host}/ws/jobs/${job}/`);
        ws.onopen = () => resolve('open');
        ws.onclose = (e) => resolve('closed ' + e.code);
    })""", "alpha-job")
    assert outcome.startswith("closed"), outcome
    page.goto(page.url.replace("/jobs/beta-job/", "/"))
    wait_live(page)
    assert "beta-job" in page.inner_text("main") and "alpha-job" not in page.inner_text("main")


def test_a_button_of_a_summary_the_socket_swapped_in_still_posts(open_page, owner):
    """The live socket renders fragments without a request, so without a CSRF token."""
    job = make_job("swapped")
    add(job, "a")
    page = open_page(owner, "/jobs/swapped/")
    wait_live(page)  # on connect the socket sends the summary, buttons and all
    with page.expect_navigation() as posted:
        page.click("#job-summary button:has-text('Disable')")
    assert posted.value.ok, posted.value.status
    assert Job.objects.get(pk=job.pk).state in {"disabling", "disabled"}


def test_no_page_violates_the_content_security_policy(open_page, owner, admin_user, violations):
    """Every kind of page, with what runs on it: charts, live updates, log viewers, htmx
    forms, confirmations, the admin's widgets and the browsable API."""
    from accounts.models import BatchAccount, Membership, Role

    job = make_job("csp-job", display_name="charts and live updates")
    add(job, *[f"t-{i:02d}" for i in range(12)])
    done = claim(node_id="csp-node", limit=8)
    task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0 if i % 4 else 2) for i, t in enumerate(done)])
    running = claim(node_id="csp-node", limit=1)[0]
    Membership.objects.create(user=owner, account=BatchAccount.objects.create(name="second"), role=Role.VIEWER)

    def policy_of(response) -> str:
        header = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in header and "unsafe-eval" not in header, (response.url, header)
        return header

    # The job page: four Plotly charts, a live update, an htmx filter, a confirmation.
    page = open_page(owner, "/jobs/csp-job/")
    policy_of(page.reload())
    wait_live(page)
    for chart in ("timeline", "share", "histogram", "scatter"):
        page.wait_for_selector(f"#{chart}-chart .main-svg", timeout=15_000)
    page.wait_for_function("() => document.getElementById('scatter-chart').data[0].x.length === 6", timeout=15_000)
    claim(node_id="csp-node", limit=1)  # one more runs: pushed to the page
    page.wait_for_function("() => document.getElementById('count-running').textContent.trim() === '2'", timeout=15_000)
    page.select_option("select[name=state]", "running")  # submits through htmx, no reload
    page.wait_for_function("() => document.querySelectorAll('#task-table tr[data-pk]').length === 2")
    assert page.evaluate("window.__notReloaded") is True and "state=running" in page.url
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#job-summary button:has-text('Delete')")
    page.wait_for_timeout(300)
    assert asked == ["Delete job csp-job with all its tasks and files?"]
    assert page.evaluate("window.__notReloaded") is True  # dismissed: nothing was sent

    # The task page: log viewers, live socket, a confirmed terminate.
    page = open_page(owner, f"/jobs/csp-job/tasks/{running.batch_id}/")
    policy_of(page.reload())
    wait_live(page)
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation() as posted:
        page.click("#task-summary button:has-text('Terminate')")
    assert posted.value.ok, posted.value.status
    page.wait_for_function("() => document.querySelector('#task-summary .badge').textContent.trim() === 'failed'",
                           timeout=15_000)

    # The jobs list, and switching account with its select (a plain form, no htmx).
    page = open_page(owner, "/")
    policy_of(page.reload())
    wait_live(page)
    with page.expect_navigation():
        page.select_option("select[name=account]", "second")
    assert page.input_value("select[name=account]") == "second" and "csp-job" not in page.inner_text("main")

    # The browsable API in a logged-in browser.
    page = open_page(owner, "/batch/jobs")
    policy_of(page.reload())
    assert "Django REST framework" in page.title() or page.locator(".response-info").count() == 1

    # The admin: index, a change list, a change form with its widgets.
    for path in ("/admin/", "/admin/jobs/job/", f"/admin/jobs/job/{job.pk}/change/",
                 f"/admin/tasks/task/{running.pk}/change/"):
        page = open_page(admin_user, path)
        policy_of(page.reload())
        assert page.locator("#content").count() == 1, path

    # The login page, a real login through it, and the lockout page.
    page = open_page(None, "/accounts/login/")
    policy_of(page.reload())
    page.fill("#id_username", "owner")
    page.fill("#id_password", "owner-password-1")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url.endswith("/")
    page = open_page(None, "/admin/login/")
    for i in range(5):
        page.fill("#id_username", "nobody")
        page.fill("#id_password", f"wrong-{i}")
        with page.expect_navigation():
            page.click("input[type=submit]")
    assert "Too many failed logins" in page.inner_text("main")
    screenshot(page, "locked-out")



def test_the_job_page_says_why_tasks_wait_and_draws_each_nodes_runs(open_page, owner, start_worker):
    # A pipeline whose merge waits on a parent that fails.
    pipeline = make_job("pipeline", uses_task_dependencies=True)
    add(pipeline, "render-1", "render-2", command=py("import time; time.sleep(0.2)"))
    add(pipeline, "render-3", command=py("import sys; sys.exit(7)"))
    add(pipeline, "merge", depends_on={"taskIds": ["render-1", "render-2", "render-3"]})
    # A job whose pool has no node, and never gets one here (no allocator runs).
    stranded = make_job("stranded", pool_info={"poolId": "empty-pool"})
    add(stranded, "t")

    page = open_page(owner, "/jobs/stranded/")
    wait_live(page)
    assert "its pool empty-pool has no node yet: it is resizing to 1" in page.inner_text("#why-waiting")

    page = open_page(owner, "/jobs/pipeline/")
    wait_live(page)
    start_worker("--slots", "2", "--poll", "0.1", "--name", "timeline-node")
    page.wait_for_function("() => (document.getElementById('why-waiting') || {}).textContent"
                           " && document.getElementById('why-waiting').textContent.includes('render-3, which failed')",
                           timeout=60_000)
    assert "exit code 7" in page.inner_text("#why-waiting")
    assert page.evaluate("window.__notReloaded") is True
    # The node timeline: a row for the node, a bar for each run, the failure in red.
    page.reload()
    page.wait_for_function("() => { const el = document.getElementById('node-timeline-chart');"
                           " return el && el.data && el.data.length === 3; }", timeout=15_000)
    bars = page.evaluate("document.getElementById('node-timeline-chart').data"
                         ".map(t => [t.name, t.y.length, [...new Set(t.y)]])")
    assert ["succeeded", 2, ["timeline-node"]] in bars and ["failed", 1, ["timeline-node"]] in bars
    assert page.locator("#node-timeline-chart .bars path").count() >= 3
    screenshot(page, "job-page-waiting")
