"""Foundation figures: bulk add rate, worker throughput, taskcounts cost at scale.

    python bench/foundation.py [--tasks 100000] [--run 2000] [--slots 4]

Uses a throw-away data directory (SQLite by default; set DATABASE_URL to measure
PostgreSQL, on a database you can afford to fill). Prints its figures; asserts nothing.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the big job (taskcounts, add rate)")
    parser.add_argument("--run", type=int, default=2000, help="/bin/true tasks the worker runs")
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="batchsite-bench-")
    os.environ.setdefault("BATCHSITE_DATA_DIR", data)
    os.environ["DJANGO_SETTINGS_MODULE"] = "batchsite.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from accounts.models import default_account
    from jobs.services import lifecycle
    from tasks import counts
    from tasks.services import adding as task_adding
    from tasks.services import sweeps

    print(f"database: {connection.vendor}")
    big = lifecycle.create_job(spec={"account": default_account(), "batch_id": f"bench-big-{int(time.time())}"})
    start = time.perf_counter()
    for first in range(0, args.tasks, 100):  # as the SDK sends them: collections of 100
        task_adding.add_tasks(job=big, specs=[{"batch_id": f"t{i}", "command_line": "/bin/true"}
                                           for i in range(first, min(first + 100, args.tasks))])
    elapsed = time.perf_counter() - start
    print(f"add_tasks: {args.tasks} tasks in collections of 100: {elapsed:.2f} s ({args.tasks / elapsed:,.0f} tasks/s)")

    timings = []
    for _ in range(200):
        t0 = time.perf_counter()
        counts.read(big.pk)
        timings.append(time.perf_counter() - t0)
    timings.sort()
    print(f"taskcounts read at {args.tasks} tasks: median {timings[100] * 1e3:.3f} ms, "
          f"p95 {timings[190] * 1e3:.3f} ms")
    t0 = time.perf_counter()
    counts.actual(big.pk)
    print(f"(a full recount of the same job for comparison: {(time.perf_counter() - t0) * 1e3:.1f} ms)")
    lifecycle.delete_job(job=big)
    while sweeps.purge_deleted_jobs(chunk=20_000):
        pass

    # The worker, sandboxed (as it runs tasks) and, for the cost of the sandbox, unconfined.
    for label, extra_env, extra_args in (("sandboxed", {}, []),
                                         ("unconfined", {"BATCHSITE_BWRAP": "/nonexistent"}, ["--allow-unconfined"])):
        run_id = f"bench-run-{label}-{int(time.time())}"
        run = lifecycle.create_job(spec={"account": default_account(), "batch_id": run_id})
        for first in range(0, args.run, 100):
            task_adding.add_tasks(job=run, specs=[{"batch_id": f"t{i}", "command_line": "/bin/true"}
                                               for i in range(first, min(first + 100, args.run))])
        env = dict(os.environ, BATCHSITE_LOG_LEVEL="WARNING", **extra_env)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "worker", "--exit-when-idle", "--poll", "0.1",
                        "--slots", str(args.slots), "--name", f"bench-{label}", *extra_args], env=env, check=True)
        elapsed = time.perf_counter() - t0
        done = counts.read(run.pk)
        print(f"worker ({label}): {args.run} /bin/true tasks with {args.slots} slots in {elapsed:.2f} s "
              f"({args.run / elapsed:,.0f} tasks/s, incl. start-up); counts {done.as_dict()}")

if __name__ == "__main__":
    main()
