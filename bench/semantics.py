"""Batch-semantics figures: list queries on a 1,000,000-task job, and claiming while
100,000 tasks wait on one range.

    python bench/semantics.py [--tasks 1000000] [--waiting 100000] [--parents 2000]

Uses a throw-away data directory (SQLite by default; set DATABASE_URL to measure
PostgreSQL on a database you can afford to fill). Prints its figures; asserts nothing.

1. The first page (maxresults 1000, $select=id,state) of the unfiltered list and of
   three filters, over the Batch API through Django's test client: median of 5
   after one warm-up.
2. A dependency job: --waiting tasks depending on the range 1..--parents, and the
   parents themselves. The parents are claimed and finished in-process, 4 at a
   time as a 4-slot worker would, and the rate compared with a job of the same
   number of plain tasks; then the time of the completion that releases them all.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# None: the unfiltered list, the job's tasks in creation order.
FILTERS = [None, "state eq 'completed'", "executionInfo/result eq 'failure'", "startswith(id,'render')"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--parents", type=int, default=2000)
    args = parser.parse_args()

    os.environ.setdefault("BATCHSITE_DATA_DIR", tempfile.mkdtemp(prefix="batchsite-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "batchsite.settings"
    os.environ.setdefault("BATCHSITE_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}")
    list_queries(args.tasks)
    claim_rates(args.waiting, args.parents)


def list_queries(n: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIClient

    from tests.helpers import make_big_job

    t0 = time.perf_counter()
    job = make_big_job(n, f"million-{int(time.time())}", prefixes=("render-", "encode-"))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE tasks_task")
    print(f"made a job of {n:,} tasks in {time.perf_counter() - t0:.1f} s")

    user, _ = get_user_model().objects.get_or_create(username="bench")

    from accounts.models import Membership, default_account

    Membership.objects.get_or_create(user=user, account=default_account())  # sees the default account
    client = APIClient()
    client.force_authenticate(user)
    for expression in FILTERS:
        params = {"$select": "id,state", **({"$filter": expression} if expression else {})}
        url = f"/batch/jobs/{job.batch_id}/tasks"
        response = client.get(url, params)  # warm-up
        assert response.status_code == 200, response.content
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = client.get(url, params)
            timings.append(time.perf_counter() - t0)
        page = response.json()
        print(f"first page of {expression or 'all tasks'!r} ($select=id,state): {len(page['value'])} tasks, "
              f"median {statistics.median(timings) * 1e3:.1f} ms (max {max(timings) * 1e3:.1f} ms), "
              f"next link: {'yes' if 'odata.nextLink' in page else 'no'}")


def claim_rates(waiting: int, parents: int) -> None:
    from accounts.models import default_account
    from jobs.services import lifecycle
    from tasks.services import runs as task_runs

    stamp = int(time.time())
    # Top priority: the million-task job above must not take the claims.
    plain = lifecycle.create_job(spec={"account": default_account(), "batch_id": f"plain-{stamp}", "priority": 1000})
    add_all(plain, [{"batch_id": f"p{i}", "command_line": "/bin/true"} for i in range(parents)])
    plain_rate = drain(parents)

    deps = lifecycle.create_job(spec={"account": default_account(), "batch_id": f"deps-{stamp}", "priority": 1000,
                                 "uses_task_dependencies": True})
    t0 = time.perf_counter()
    add_all(deps, [{"batch_id": f"merge-{i}", "command_line": "/bin/true",
                    "depends_on": {"taskIdRanges": [{"start": 1, "end": parents}]}} for i in range(waiting)])
    print(f"added {waiting:,} tasks waiting on the range 1..{parents} in {time.perf_counter() - t0:.1f} s")
    add_all(deps, [{"batch_id": str(i), "command_line": "/bin/true"} for i in range(1, parents + 1)])
    deps_rate = drain(parents - 1)
    print(f"claim + finish, 4 at a time: plain job {plain_rate:,.0f} tasks/s; "
          f"beside {waiting:,} waiting tasks {deps_rate:,.0f} tasks/s")

    last = task_runs.claim_tasks(node_id="bench", limit=4)
    assert len(last) == 1, len(last)
    t0 = time.perf_counter()
    task_runs.finish_tasks([task_runs.RunEnd(last[0], last[0].attempt, 0)])
    print(f"the last parent's completion released {waiting:,} tasks in {(time.perf_counter() - t0) * 1e3:.0f} ms")
    t0 = time.perf_counter()
    claimed = task_runs.claim_tasks(node_id="bench", limit=4)
    print(f"then the first claim of released tasks: {len(claimed)} in {(time.perf_counter() - t0) * 1e3:.1f} ms")


def add_all(job, specs: list[dict]) -> None:
    from tasks.services import adding as task_adding

    for first in range(0, len(specs), 100):
        task_adding.add_tasks(job=job, specs=specs[first:first + 100])


def drain(n: int) -> float:
    """Claim and finish n tasks, 4 at a time; tasks per second."""
    from tasks.services import runs as task_runs

    done, t0 = 0, time.perf_counter()
    while done < n:
        claimed = task_runs.claim_tasks(node_id="bench", limit=min(4, n - done))
        if not claimed:
            raise RuntimeError(f"nothing to claim after {done} of {n}")
        task_runs.finish_tasks([task_runs.RunEnd(t, t.attempt, 0) for t in claimed])
        done += len(claimed)
    return n / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
