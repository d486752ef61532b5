"""Pools at scale: List Pool Node Counts, a node list page, the pool page and a claim, at 10 and 1,000 nodes.

    python bench/pools.py [--nodes 1000] [--running 0.1]

Nodes are rows (no processes): most idle, a tenth running. The counts must cost the
same at any number of nodes (they read a pool's few count rows); the pages are
measured through the whole Django stack in this process (a logged-in client), so
the figures are server time without the network. Uses a throw-away data directory
(SQLite by default; set DATABASE_URL for PostgreSQL). Prints its figures; asserts nothing.
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


def timed(call, repeat: int) -> tuple[float, float]:
    """(median, p95) milliseconds of `call`, after one warm-up."""
    call()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        runs.append((time.perf_counter() - t0) * 1e3)
    runs.sort()
    return statistics.median(runs), runs[int(len(runs) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--running", type=float, default=0.1, help="share of the nodes running a task")
    args = parser.parse_args()

    os.environ.setdefault("BATCHSITE_DATA_DIR", tempfile.mkdtemp(prefix="batchsite-bench-"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "batchsite.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client
    from django.urls import NoReverseMatch, reverse
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User

    from accounts.models import Membership, Role, default_account
    from jobs.transitions import count_nodes
    from pools import node_counts
    from pools.models import ComputeNode, NodeState
    from pools.services import lifecycle
    from tasks.services import runs as task_runs

    account = default_account()
    user = User.objects.create_superuser("bench", password="bench-password-1")
    Membership.objects.create(user=user, account=account, role=Role.OPERATOR)
    api = Client(headers={"authorization": f"Token {Token.objects.create(user=user).key}"})
    browser = Client()
    browser.force_login(user)
    print(f"database: {connection.vendor}")

    def make_pool(pool_id: str, n: int):
        pool = lifecycle.create_pool(spec={"account": account, "batch_id": pool_id, "vm_size": "standard_d2s_v3",
                                           "task_slots_per_node": 4})
        now, running = timezone.now(), int(n * args.running)
        busy = [2 if i < running else 0 for i in range(n)]
        rows = [ComputeNode(pool=pool, name=f"{pool_id}-{i:05d}", vm_size="standard_d2s_v3", slots=4,
                            state=NodeState.RUNNING if busy[i] else NodeState.IDLE,
                            running_tasks_count=busy[i], running_task_slots_count=busy[i],
                            state_transition_time=now, creation_time=now, last_modified=now, allocation_time=now,
                            heartbeat_at=now, provider="local") for i in range(n)]
        with transaction.atomic():
            ComputeNode.objects.bulk_create(rows, batch_size=500)
            count_nodes(pool.pk, True, {NodeState.RUNNING: running, NodeState.IDLE: n - running})
        return pool

    small, big = make_pool("small", 10), make_pool("big", args.nodes)
    for pool in (small, big):
        stored, real = node_counts.read(pool.pk), node_counts.actual(pool.pk)
        assert [c.as_dict() for c in stored] == [c.as_dict() for c in real]

    print(f"\nList Pool Node Counts and the count rows, 10 vs {args.nodes} nodes:")
    read_small = timed(lambda: node_counts.read(small.pk), 300)
    read_big = timed(lambda: node_counts.read(big.pk), 300)
    print(f"  node_counts.read: {read_small[0]:.3f} ms vs {read_big[0]:.3f} ms median "
          f"(ratio {read_big[0] / read_small[0]:.2f})")
    answer = api.get("/batch/nodecounts")
    assert answer.status_code == 200, answer.content
    over_http = timed(lambda: api.get("/batch/nodecounts"), 100)
    print(f"  GET /batch/nodecounts (both pools; it reads count rows only: tests/test_nodes_api.py): "
          f"median {over_http[0]:.2f} ms, p95 {over_http[1]:.2f} ms")

    print(f"\nPages at {args.nodes} nodes (server time, in process):")
    assert api.get("/batch/pools/big/nodes").status_code == 200
    listing = timed(lambda: api.get("/batch/pools/big/nodes", {"maxresults": 1000}), 20)
    print(f"  GET /batch/pools/big/nodes?maxresults=1000: median {listing[0]:.1f} ms, p95 {listing[1]:.1f} ms")
    for name in ("pool-list", "pool-detail"):
        try:
            path = reverse(name) if name == "pool-list" else reverse(name, args=["big"])
        except NoReverseMatch:
            print(f"  {name}: no such page")
            continue
        status = browser.get(path).status_code
        page = timed(lambda: browser.get(path), 20)
        print(f"  {path} ({status}): median {page[0]:.1f} ms, p95 {page[1]:.1f} ms")

    print(f"\nA claim by an idle node of a pool of {args.nodes} (no task: the node and fill-type reads only):")
    idle = ComputeNode.objects.filter(pool=big, state=NodeState.IDLE).order_by("pk").values_list("name", flat=True)[0]
    claim = timed(lambda: task_runs.claim_tasks(node_id=idle, limit=4), 200)
    print(f"  claim_tasks: median {claim[0]:.3f} ms, p95 {claim[1]:.3f} ms")


if __name__ == "__main__":
    main()
