"""`python manage.py demo`: a job of a few hundred varied tasks, so a new user sees the dashboard move.

A command of the nodes: its tasks run the Python that this machine's sandbox lets them see.
"""

import random
import shlex

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import default_account
from jobs.services.lifecycle import create_job
from nodes.sandbox import task_python
from tasks.services.adding import add_tasks

# Each task is a small Python program run without a shell, printing as it goes.
WORK = """
import sys, time
steps, pause, code = {steps}, {pause}, {code}
for i in range(steps):
    print(f"[{{time.strftime('%H:%M:%S')}}] {name}: step {{i + 1}} of {{steps}}", flush=True)
    time.sleep(pause)
if code:
    print("{name}: something went wrong (exit {{}})".format(code), file=sys.stderr, flush=True)
sys.exit(code)
"""

# Fails its first run and succeeds when retried: the working directory survives retries.
FLAKY = """
import os, sys, time
n = int(open(".attempt").read()) if os.path.exists(".attempt") else 0
open(".attempt", "w").write(str(n + 1))
print(f"{name}: attempt {{n + 1}}", flush=True)
time.sleep({pause})
if n == 0:
    print("{name}: transient failure, will be retried", file=sys.stderr, flush=True)
    sys.exit(75)
print("{name}: fine this time", flush=True)
"""


def command(program: str) -> str:
    return shlex.join([task_python(), "-u", "-c", program.strip()])


class Command(BaseCommand):
    help = "Create a demo job of a few hundred tasks of varied length: some fail, some are retried, some wait."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=300, help="how many tasks (default 300)")
        parser.add_argument("--id", default="", help="the job id (default demo-<time>)")
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, tasks: int, id: str, seed, **options):
        rng = random.Random(seed)
        job_id = id or f"demo-{timezone.now():%Y%m%d-%H%M%S}"
        job = create_job(spec={
            "account": default_account(), "batch_id": job_id,
            "display_name": "Batchsite demo: varied tasks, a few failures and retries",
            "uses_task_dependencies": True, "max_task_retry_count": 1,
        })
        specs = []
        for n in range(1, tasks + 1):
            name = f"task-{n:04d}"
            roll = rng.random()
            if roll < 0.05:  # long, chatty: good for watching the log viewer follow
                program = WORK.format(steps=rng.randint(30, 60), pause=1.0, code=0, name=name)
            elif roll < 0.12:
                program = WORK.format(steps=rng.randint(2, 10), pause=round(rng.uniform(0.2, 1.0), 2),
                                      code=rng.choice([1, 2, 3]), name=name)
            elif roll < 0.18:
                program = FLAKY.format(pause=round(rng.uniform(0.5, 2.0), 2), name=name)
            else:
                program = WORK.format(steps=rng.randint(1, 12), pause=round(rng.uniform(0.1, 0.8), 2), code=0,
                                      name=name)
            spec = {"batch_id": name, "command_line": command(program),
                    "display_name": f"demo step {n}"}
            if n % 50 == 0:  # a merge step after each fifty
                spec["depends_on"] = {"taskIds": [f"task-{i:04d}" for i in range(n - 10, n)]}
            specs.append(spec)
        for i in range(0, len(specs), 100):
            add_tasks(job=job, specs=specs[i:i + 100])
        self.stdout.write(f"Created job {job_id} with {len(specs)} tasks.")
        self.stdout.write(f"Watch it at http://127.0.0.1:8000/jobs/{job_id}/ (it runs in the default pool "
                          f"'{settings.BATCHSITE_DEFAULT_POOL}', whose node `make run` starts).")
