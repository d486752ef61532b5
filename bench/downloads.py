"""Downloading a 2 GB task file through daphne: the server's memory, time to first byte, and who waits.

    python bench/downloads.py [--gigabytes 2] [--slow-megabytes-per-second 50]

Makes a sparse file of --gigabytes in a task's working directory (`truncate -s
2G`, as a task could), starts daphne on a throw-away SQLite database, and reads
the file with a real HTTP client (requests): through the API whole, through the
API as an ocp-range read of half of it (1 GB), and through the dashboard's
download view; then once more through the API by a client that reads slowly.
During each download another thread asks GET taskcounts every 100 ms. For each:
daphne's resident memory before, its peak during (VmHWM, reset per download
through clear_refs) and its growth; time to first byte; total time and
throughput; the latency of the other requests. Last, curl reads the whole file
(what the server sends when the client is not the bottleneck). Prints its
figures; asserts nothing.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def memory(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process, in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current resident size (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Prober(threading.Thread):
    """Asks `url` every `every` seconds until stopped; keeps the latencies."""

    def __init__(self, session, url: str, every: float = 0.1):
        super().__init__(daemon=True)
        self.session, self.url, self.every = session, url, every
        self.latencies: list[float] = []
        self.failures = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            t0 = time.perf_counter()
            try:
                ok = self.session.get(self.url, timeout=30).status_code == 200
            except Exception:
                ok = False
            if ok:
                self.latencies.append(time.perf_counter() - t0)
            else:
                self.failures += 1
            self.done.wait(self.every)

    def stop(self):
        self.done.set()
        self.join()


def download(server, session, path: str, headers: dict, expected: int, probe_session, probe_url: str,
             rate: float | None = None) -> dict:
    """Read `path` to its end (at `rate` bytes/s at most) while another thread probes; the figures."""
    pid = server.proc.pid
    reset_peak(pid)
    before = memory(pid)["VmRSS"]
    prober = Prober(probe_session, server.url + probe_url)
    prober.start()
    t0 = time.perf_counter()
    first = None
    received = 0
    with session.get(server.url + path, headers=headers, stream=True, timeout=60) as response:
        assert response.status_code == 200, (response.status_code, response.text[:300])
        assert int(response.headers["Content-Length"]) == expected
        for chunk in response.iter_content(MB):
            if first is None:
                first = time.perf_counter() - t0
            received += len(chunk)
            if rate:
                ahead = received / rate - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
    total = time.perf_counter() - t0
    prober.stop()
    after = memory(pid)
    assert received == expected, (received, expected)
    latencies = sorted(prober.latencies) or [float("nan")]
    return {
        "rss_before": before, "peak": after["VmHWM"], "growth": after["VmHWM"] - before,
        "ttfb": first, "total": total, "throughput": received / MB / total,
        "probe_n": len(prober.latencies), "probe_failures": prober.failures,
        "probe_median": statistics.median(latencies), "probe_max": latencies[-1],
    }


def report(name: str, size: int, f: dict) -> None:
    print(f"{name} ({size / MB:,.0f} MB):")
    print(f"  daphne RSS {f['rss_before']:.0f} MB before, peak {f['peak']:.0f} MB: growth {f['growth']:.1f} MB")
    print(f"  first byte after {f['ttfb'] * 1e3:.0f} ms; all in {f['total']:.1f} s ({f['throughput']:.0f} MB/s)")
    print(f"  GET taskcounts meanwhile: {f['probe_n']} answered, median {f['probe_median'] * 1e3:.0f} ms, "
          f"max {f['probe_max'] * 1e3:.0f} ms, {f['probe_failures']} failed")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--slow-megabytes-per-second", type=float, default=50.0)
    parser.add_argument("--slow-megabytes", type=float, default=256.0)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="batchsite-download-bench-")
    env = dict(os.environ, BATCHSITE_DATA_DIR=data, BATCHSITE_LOG_LEVEL="WARNING",
               DJANGO_SETTINGS_MODULE="batchsite.settings")
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    import requests
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    from accounts.models import Membership, Role, default_account
    from jobs.services import lifecycle
    from tasks.files import working_dir
    from tasks.services import adding as task_adding
    from tests.browser import Server, session_cookie

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    Membership.objects.get_or_create(user=user, account=default_account(), defaults={"role": Role.OPERATOR})
    token = Token.objects.create(user=user).key
    job = lifecycle.create_job(spec={"account": default_account(), "batch_id": "big-files"})
    task = task_adding.add_task(job=job, spec={"batch_id": "sparse", "command_line": "/bin/true"})
    task.job = job
    size = int(args.gigabytes * 1024**3)
    wd = working_dir(task)
    wd.mkdir(parents=True)
    os.truncate(os.open(wd / "sparse", os.O_CREAT | os.O_WRONLY, 0o644), size)  # truncate -s, as a task would
    print(f"a {size / 1024**3:.1f} GB sparse file in {wd} (node root {settings.BATCHSITE_NODE_ROOT})")

    server = Server(env, Path(data) / "daphne.log")
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        probe = requests.Session()
        probe.headers["Authorization"] = f"Token {token}"
        page = requests.Session()
        cookie = session_cookie(user, server.url)
        page.cookies.set(cookie["name"], cookie["value"])
        counts = "/batch/jobs/big-files/taskcounts"
        for warm in (api, probe):
            assert warm.get(server.url + counts).status_code == 200  # imports, first queries
        assert page.get(server.url + "/jobs/big-files/tasks/sparse/").status_code == 200
        print(f"daphne at start: {memory(server.proc.pid)['VmRSS']:.0f} MB resident")

        api_path = "/batch/jobs/big-files/tasks/sparse/files/wd/sparse"
        half = size // 2
        runs = [
            ("API GET, whole file", api, api_path, {}, size, None),
            ("API GET, ocp-range of half the file", api, api_path,
             {"ocp-range": f"bytes={half // 2}-{half // 2 + half - 1}"}, half, None),
            ("dashboard download", page, "/jobs/big-files/tasks/sparse/files/wd/sparse", {}, size, None),
        ]
        slow = int(args.slow_megabytes * MB)
        runs.append((f"API GET, ocp-range of {args.slow_megabytes:.0f} MB read by a client at "
                     f"{args.slow_megabytes_per_second:.0f} MB/s", api, api_path,
                     {"ocp-range": f"bytes=0-{slow - 1}"}, slow, args.slow_megabytes_per_second * MB))
        for name, session, path, headers, expected, rate in runs:
            figures = download(server, session, path, headers, expected, probe, counts, rate=rate)
            report(name, expected, figures)
        if shutil.which("curl"):
            # Python's client tops out near 200 MB/s here; curl shows what the server itself sends.
            reset_peak(server.proc.pid)
            before = memory(server.proc.pid)["VmRSS"]
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", f"Authorization: Token {token}",
                                  "-w", "%{time_starttransfer} %{time_total} %{size_download}",
                                  server.url + api_path], capture_output=True, text=True, check=True).stdout
            first, total, received = (float(x) for x in out.split())
            growth = memory(server.proc.pid)["VmHWM"] - before
            print(f"API GET, whole file, read by curl ({received / MB:,.0f} MB):")
            print(f"  daphne RSS growth {growth:.1f} MB; first byte after {first * 1e3:.0f} ms; "
                  f"all in {total:.1f} s ({received / MB / total:.0f} MB/s)")
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
