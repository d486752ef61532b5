"""Live dashboard figures, measured in a real browser against a real daphne server.

    python bench/live_dashboard.py             # embedded default: SQLite, no Redis
    python bench/live_dashboard.py --scale-out # PostgreSQL + Redis on 127.0.0.1 (database batchsite_bench)

1. Latency: a task changes state (committed here, as a worker would), and the
   browser's MutationObserver stamps the moment the new count is in the DOM.
   Same machine, same clock. Reports median and p95 over --changes changes.
2. Coalescing: a separate process makes 1,000+ transitions a second on one job
   for --seconds; the page counts the updates it receives per second, and at the
   end its counts must equal taskcounts.

Prints its figures; asserts nothing.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OBSERVER = """() => {
  window.__changes = [];
  window.__updates = [];
  const read = () => {
    const el = document.getElementById('count-running');
    return el && el.textContent.trim();
  };
  let last = read();
  new MutationObserver(() => {
    const now = read();
    if (now !== last) { last = now; window.__changes.push([now, performance.timeOrigin + performance.now()]); }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
  document.body.addEventListener('htmx:wsAfterMessage', (e) => {
    if (e.detail.message.includes('id="job-summary"')) {
      window.__updates.push(performance.timeOrigin + performance.now());
    }
  });
}"""


def setup_env(scale_out: bool) -> dict:
    env = dict(os.environ, BATCHSITE_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="batchsite.settings")
    env.pop("REDIS_URL", None)
    env["BATCHSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="batchsite-live-bench-")
    if scale_out:
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS batchsite_bench")
            conn.execute("CREATE DATABASE batchsite_bench")
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/batchsite_bench"
        env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    else:
        env.pop("DATABASE_URL", None)
    return env


def load(job_id: str, seconds: float) -> None:
    """Run in a subprocess: claim and finish tasks of `job_id` as fast as possible for `seconds`."""
    import django

    django.setup()
    from jobs.models import Job
    from tasks.services import runs as task_runs

    job = Job.objects.get(batch_id=job_id)
    transitions, end = 0, time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < end:
        claimed = task_runs.claim_tasks(node_id="bench-load", limit=100)
        if not claimed:
            break
        task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0 if t.pk % 7 else 1) for t in claimed])
        transitions += 2 * len(claimed)
    elapsed = time.monotonic() - started
    print(json.dumps({"transitions": transitions, "seconds": elapsed, "job": job.pk}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale-out", action="store_true", help="PostgreSQL + Redis instead of SQLite alone")
    parser.add_argument("--changes", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--load", nargs=2, metavar=("JOB", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        return load(args.load[0], float(args.load[1]))

    env = setup_env(args.scale_out)
    os.environ.update(env)
    if not args.scale_out:
        os.environ.pop("REDIS_URL", None)
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.db import connection

    from accounts.models import default_account
    from jobs.services import lifecycle
    from tasks import counts
    from tasks.services import adding as task_adding
    from tasks.services import runs as task_runs
    from tests.browser import Server, logged_in_context

    user = get_user_model().objects.create_user("bench", password="bench-password-1")

    from accounts.models import Membership

    Membership.objects.get_or_create(user=user, account=default_account())  # sees the default account
    server = Server(env, Path(env["BATCHSITE_DATA_DIR"]) / "daphne.log")
    label = "PostgreSQL + Redis" if args.scale_out else "SQLite, no Redis (embedded default)"
    print(f"set-up: {label} ({connection.vendor})")
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser, context = logged_in_context(p, user, server.url)

            # --- 1. commit-to-DOM latency -----------------------------------------------------
            job = lifecycle.create_job(spec={"account": default_account(), "batch_id": "latency"})
            task_adding.add_tasks(job=job, specs=[{"batch_id": f"t{i}", "command_line": "/bin/true"}
                                               for i in range(args.changes)])
            page = context.new_page()
            page.goto(server.url + "/jobs/latency/")
            page.wait_for_selector("#live.on")
            time.sleep(1)
            page.evaluate(OBSERVER)
            latencies = []
            for step in range(1, args.changes + 1):
                time.sleep(0.25 + random.random() * 0.2)  # apart, and at random phase to the watcher's poll
                task_runs.claim_tasks(node_id="bench", limit=1)  # commits when it returns
                committed = time.time() * 1000
                page.wait_for_function(f"() => window.__changes.some(c => c[0] === '{step}')", timeout=10_000)
                shown = page.evaluate(f"window.__changes.find(c => c[0] === '{step}')[1]")
                latencies.append(shown - committed)
            latencies.sort()
            p95 = latencies[int(len(latencies) * 0.95) - 1]
            median = statistics.median(latencies)
            print(f"commit -> count in the DOM, {len(latencies)} changes: median {median:.0f} ms, "
                  f"p95 {p95:.0f} ms, max {latencies[-1]:.0f} ms")
            page.close()

            # --- 2. updates a page receives under a storm of transitions ------------------------
            storm = lifecycle.create_job(spec={"account": default_account(), "batch_id": "storm"})
            total = 60_000
            for first in range(0, total, 1000):
                task_adding.add_tasks(job=storm, specs=[{"batch_id": f"s{i}", "command_line": "/bin/true"}
                                                     for i in range(first, first + 1000)])
            page = context.new_page()
            page.goto(server.url + "/jobs/storm/")
            page.wait_for_selector("#live.on")
            time.sleep(1)
            page.evaluate(OBSERVER)
            started = time.time() * 1000
            out = subprocess.run([sys.executable, __file__, "--load", "storm", str(args.seconds)], env=env,
                                 capture_output=True, text=True, check=True)
            finished = time.time() * 1000
            result = json.loads(out.stdout.strip().splitlines()[-1])
            time.sleep(1.5)
            updates = page.evaluate("window.__updates")
            during = [u for u in updates if started <= u <= finished + 200]
            per_second: dict[int, int] = {}
            for u in during:
                per_second[int((u - started) // 1000)] = per_second.get(int((u - started) // 1000), 0) + 1
            stored = counts.read(storm.pk).as_dict()
            dom = {k: int(page.inner_text(f"#count-{k}")) for k in stored}
            rate = result["transitions"] / result["seconds"]
            print(f"storm: {result['transitions']:,} transitions in {result['seconds']:.1f} s ({rate:,.0f}/s); "
                  f"the page got {len(during)} updates: {len(during) / (result['seconds']):.1f}/s on average, "
                  f"at most {max(per_second.values() or [0])} in any one second")
            print(f"final counts: DOM {dom} {'==' if dom == stored else '!='} taskcounts {stored}")
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
