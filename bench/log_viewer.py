"""The stdout viewer on a 1 GB file: time to first screen and the server's memory.

    python bench/log_viewer.py [--gigabytes 1]

Writes a stdout.txt of numbered lines into a throw-away node root, starts daphne,
opens the task page in headless Chromium and times until the file's last line is
on screen; then "load earlier" once. Reads daphne's resident memory from /proc
before and after (and its peak). Prints its figures; asserts nothing.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def memory(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def write_big_log(path: Path, size: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = b"".join(b"%012d some output of a long task, as a log line looks\n" % i for i in range(16_384))
    written, n = 0, 0
    with open(path, "wb") as f:
        while written < size:
            f.write(lines)
            written += len(lines)
            n += 16_384
        f.write(b"THE LAST LINE\n")
    return written


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=1.0)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="batchsite-log-bench-")
    env = dict(os.environ, BATCHSITE_DATA_DIR=data, BATCHSITE_LOG_LEVEL="WARNING",
               DJANGO_SETTINGS_MODULE="batchsite.settings")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import default_account
    from jobs.services import lifecycle
    from tasks.files import task_dir
    from tasks.services import adding as task_adding
    from tests.browser import Server, logged_in_context

    user = get_user_model().objects.create_user("bench", password="bench-password-1")

    from accounts.models import Membership

    Membership.objects.get_or_create(user=user, account=default_account())  # sees the default account
    job = lifecycle.create_job(spec={"account": default_account(), "batch_id": "big-log"})
    task = task_adding.add_task(job=job, spec={"batch_id": "chatty", "command_line": "/bin/true"})
    task.job = job
    path = task_dir(task) / "stdout.txt"
    t0 = time.perf_counter()
    size = write_big_log(path, int(args.gigabytes * 1024**3))
    print(f"wrote {size / 1024**3:.2f} GB to {path.name} in {time.perf_counter() - t0:.1f} s "
          f"(node root {settings.BATCHSITE_NODE_ROOT})")

    server = Server(env, Path(data) / "daphne.log")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser, context = logged_in_context(p, user, server.url)
            warm = context.new_page()  # first request warms the server (imports, templates)
            warm.goto(server.url + "/")
            warm.close()
            before = memory(server.proc.pid)
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(server.url + "/jobs/big-log/tasks/chatty/", wait_until="commit")
            page.wait_for_function("() => document.getElementById('stdout-body') && "
                                   "document.getElementById('stdout-body').textContent.includes('THE LAST LINE')")
            first_screen = time.perf_counter() - t0
            shown = page.evaluate("document.getElementById('stdout-body').textContent.length")
            t0 = time.perf_counter()
            page.click("#stdout-body button.earlier")
            page.wait_for_function("() => document.querySelectorAll('#stdout-body button.earlier').length === 1 && "
                                   "document.getElementById('stdout-body').textContent.length > %d" % (shown * 1.5))
            earlier = time.perf_counter() - t0
            after = memory(server.proc.pid)
            print("time to first screen (page request to the file's last line on screen): "
                  f"{first_screen * 1e3:.0f} ms; "
                  f"{shown / 1024:.0f} KB of text shown")
            print(f"load earlier (the previous 64 KB): {earlier * 1e3:.0f} ms")
            print(f"daphne memory: {before['VmRSS']:.0f} MB before, {after['VmRSS']:.0f} MB after, "
                  f"peak {after['VmHWM']:.0f} MB (the file is {size / 1024**2:,.0f} MB)")
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)  # a gigabyte of test output


if __name__ == "__main__":
    main()
