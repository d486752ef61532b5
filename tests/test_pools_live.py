"""Pools, compute nodes and node counts end to end: a live Batchsite (`server`), the allocator
running as a real `manage.py allocator` process that starts real worker processes as nodes,
and every pool, node and node-count operation driven by the real `az batch` CLI and the real
azure-batch SDK (15.x), as a script written for Azure Batch drives them.

After each step, List Pool Node Counts (what the wire says, from the count rows) is checked
against a full count of the node rows (`pools.node_counts.actual`).
"""

import json
import os
import platform
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from azure.batch import BatchClient, models
from azure.batch.models._models import BatchNodeRebootOptions  # azure-batch 15.1 does not export it
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from accounts.models import BatchAccount, default_account
from pools import node_counts
from pools.models import ComputeNode, Pool
from pools.services import lifecycle

from .conftest import ROOT, sandbox_missing, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

# The az binary, found as tests/test_azure_cli.py finds it (scripts/ensure-azure-cli.sh installs it).
AZ_VERSION = os.environ.get("BATCHSITE_AZURE_CLI_VERSION", "2.91.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
AZ = Path(os.environ.get("BATCHSITE_AZURE_CLI_VENV", CACHE / "batchsite" / f"azure-cli-{AZ_VERSION}")) / "bin" / "az"
needs_az = pytest.mark.skipif(not AZ.exists(), reason=f"azure-cli is not installed at {AZ} "
                                                      "(scripts/ensure-azure-cli.sh installs it)")

VM_SIZE = "standard_d2s_v3"
WAIT = 90  # seconds: worker processes start slowly on a loaded 2-core machine
API_VERSION = "2025-06-01"
# The number of the clock_nanosleep system call (/proc/PID/syscall names it so): where the allocator sleeps.
CLOCK_NANOSLEEP = {"x86_64": 230, "aarch64": 115}
needs_pause = pytest.mark.skipif(platform.machine() not in CLOCK_NANOSLEEP,
                                 reason="the allocator can be held between rounds only where clock_nanosleep's number "
                                        "is known")
# Batch's names of the node counts on the wire, and the state each counts.
COUNT_NAMES = {
    "creating": "creating", "idle": "idle", "offline": "offline", "preempted": "preempted",
    "rebooting": "rebooting", "reimaging": "reimaging", "running": "running", "starting": "starting",
    "startTaskFailed": "starttaskfailed", "leavingPool": "leavingpool", "unknown": "unknown",
    "unusable": "unusable", "waitingForStartTask": "waitingforstarttask", "upgradingOS": "upgradingos",
    "deallocated": "deallocated", "deallocating": "deallocating",
}



# --- The allocator, as a process ---------------------------------------------------------------


class LiveAllocator:
    """`manage.py allocator` on the test database; the workers it starts inherit its environment."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        command = [sys.executable, str(ROOT / "manage.py"), "allocator", "--interval", "0.2",
                   "--worker-arg=--poll=0.2"]
        if sandbox_missing():
            command.append("--allow-unconfined")
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(command, cwd=ROOT, env=worker_env(BATCHSITE_LOG_LEVEL="INFO"),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.node_pids: dict[str, int] = {}  # every node process seen, to be sure none outlives the test

    def pause(self) -> None:
        """Hold the allocator still between two rounds: a resizing pool stays as it is until `resume`.

        Stopped inside a round it could hold SQLite's write lock (every other writer would wait for
        it, and the server answer 500 after its busy timeout), so it is stopped again until it is
        caught in the sleep between rounds: Python's time.sleep, clock_nanosleep(CLOCK_MONOTONIC,
        TIMER_ABSTIME, ...), which it never calls inside a transaction.
        """
        sleeping = f"{CLOCK_NANOSLEEP[platform.machine()]} 0x1 0x1 "
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            os.kill(self.proc.pid, signal.SIGSTOP)
            eventually(lambda: process_state(self.proc.pid), lambda state: state == "T", "the allocator to stop",
                       pause=0.001)
            if Path(f"/proc/{self.proc.pid}/syscall").read_text().startswith(sleeping):
                return
            os.kill(self.proc.pid, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the allocator was never caught between two rounds")

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def note_nodes(self) -> None:
        for name, pid in ComputeNode.objects.filter(provider="local", pid__isnull=False).values_list("name", "pid"):
            self.node_pids[name] = pid

    def stop(self) -> None:
        """SIGTERM: the allocator stops its workers and exits; killed if it does not."""
        self.note_nodes()
        self.resume()  # a paused allocator would not hear the SIGTERM
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        for name, pid in self.node_pids.items():  # a worker left behind by a killed allocator
            if process_lives(pid) and name in read_cmdline(pid):
                os.kill(pid, signal.SIGKILL)


def read_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_state(pid: int) -> str:
    """Its state letter in /proc (R, S, T stopped, Z zombie, ...), or "" when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, TypeError):
        return ""


def process_lives(pid: int) -> bool:
    return process_state(pid) not in ("", "Z")


@pytest.fixture
def allocator(server, tmp_path):
    # The allocator makes the default account's default pool with a node unless it exists: here it
    # exists with none, so that the only worker processes are the ones these tests ask for.
    lifecycle.create_pool(spec=dict(account=default_account(), batch_id="local", vm_size=VM_SIZE,
                                    target_dedicated_nodes=0, provider="local"))
    live = LiveAllocator(tmp_path / "allocator.log")
    yield live
    live.stop()
    print(f"--- the allocator's log ends:\n{live.tail()}")  # shown when the test failed


# --- Waiting and checking ----------------------------------------------------------------------


def eventually(read, ok, what: str, timeout: float = WAIT, pause: float = 0.3):
    """Call `read` until `ok` holds for what it returned (returned), or fail showing the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {value!r}")
        time.sleep(pause)


def wire_counts(counts: node_counts.NodeCounts) -> dict:
    return {**{name: counts.of(state) for name, state in COUNT_NAMES.items()}, "total": counts.total}


def full_count(pool_id: str, account: BatchAccount) -> dict:
    """The pool's nodes by state as a full count of the node rows says, in the wire's shape."""
    pool = Pool.objects.filter(account=account, key=pool_id.lower()).first()
    dedicated, low_priority = node_counts.actual(pool.pk) if pool else (node_counts.NodeCounts(),) * 2
    return {"poolId": pool.batch_id if pool else pool_id, "dedicated": wire_counts(dedicated),
            "lowPriority": wire_counts(low_priority)}


def folded(value):
    """Keys in lower case: the az CLI prints the wire's `upgradingOS` as `upgradingOs`."""
    if isinstance(value, dict):
        return {key.lower(): folded(v) for key, v in value.items()}
    return value


def assert_counts_exact(read_wire, pool_id: str, account: BatchAccount) -> dict:
    """List Pool Node Counts (`read_wire`: the pool's entry) equals a full count of the pool's node
    rows. The rows are counted before and after the read: only a read between two equal counts
    (nothing moved meanwhile) can be compared."""
    for _ in range(20):
        before = folded(full_count(pool_id, account))
        wire = folded(read_wire())
        if folded(full_count(pool_id, account)) == before:
            assert wire == before, f"/nodecounts says {wire}, the node rows {before}"
            return wire
        time.sleep(0.2)
    raise AssertionError(f"the nodes of {pool_id} never held still long enough to compare their counts")


def deleting_or_gone(batch, pool_id: str) -> bool:
    """Right after Delete Pool: `deleting` while its nodes leave, or gone already (a pool with no
    node left is removed by the next round of the allocator)."""
    try:
        return batch.get_pool(pool_id).state == models.BatchPoolState.DELETING
    except ResourceNotFoundError:
        return True


def await_deletion(gone, pool_id: str) -> None:
    """Wait until `gone()` says the pool is gone; where it is not, fail saying what keeps it."""
    try:
        eventually(gone, bool, f"pool {pool_id} to be gone")
    except AssertionError:
        pool = Pool.objects.filter(key=pool_id.lower()).first()
        if pool is None:
            raise
        nodes = list(ComputeNode.objects.filter(pool=pool).values_list("name", "state", "creation_time"))
        raise AssertionError(f"pool {pool_id} is still {pool.state} ({pool.allocation_state}, deleted at "
                             f"{pool.state_transition_time}) with nodes {nodes}") from None


def node_names(pool_id: str) -> set[str]:
    return set(ComputeNode.objects.filter(pool__key=pool_id.lower()).values_list("name", flat=True))


def pids_of(names) -> dict[str, int]:
    return dict(ComputeNode.objects.filter(name__in=list(names)).values_list("name", "pid"))


def assert_processes_end(pids: dict[str, int]) -> None:
    """The worker processes of nodes that left have ended (the allocator reaped them)."""
    eventually(lambda: {name: pid for name, pid in pids.items() if process_lives(pid)}, lambda alive: not alive,
               "the nodes' worker processes to end")


# --- The az CLI --------------------------------------------------------------------------------


class AzFailed(Exception):
    pass


@pytest.fixture
def cli_account():
    return BatchAccount.objects.create(name="clitest")


@pytest.fixture
def az(server, cli_account, tmp_path):
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "azure-config"), "AZURE_CORE_COLLECT_TELEMETRY": "0",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_ONLY_SHOW_ERRORS": "1"}
    auth = ["--account-name", cli_account.name, "--account-key", cli_account.primary_key,
            "--account-endpoint", f"{server.url}/batch"]

    def run(*args: str, check: bool = True):
        """The command's JSON output; with check=False, the finished process when it failed."""
        result = subprocess.run([str(AZ), *args, *auth], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            if check:
                raise AzFailed(f"az {' '.join(args)} failed: {result.stderr}")
            return result
        return json.loads(result.stdout) if result.stdout.strip() else None

    return run


def cli_pool_counts(az, pool_id: str):
    def read():
        [entry] = az("batch", "pool", "node-counts", "list", "--filter", f"poolId eq '{pool_id}'")
        return entry
    return read


def cli_nodes(az, pool_id: str) -> dict[str, dict]:
    return {node["id"]: node for node in az("batch", "node", "list", "--pool-id", pool_id)}


def cli_steady(az, pool_id: str, n: int, state: str = "idle") -> tuple[dict, dict[str, dict]]:
    """Wait until `az batch pool show` says steady and `az batch node list` shows `n` nodes in `state`."""
    def read():
        return az("batch", "pool", "show", "--pool-id", pool_id), cli_nodes(az, pool_id)

    def ok(value):
        pool, nodes = value
        return pool["allocationState"] == "steady" and [n["state"] for n in nodes.values()] == [state] * n
    return eventually(read, ok, f"pool {pool_id} to be steady with {n} {state} node(s)")


def cli_error(result) -> str:
    """What a failed az command said (its stderr carries Batch's message and code)."""
    assert isinstance(result, subprocess.CompletedProcess) and result.returncode != 0, result
    return result.stderr


# --- The SDK -----------------------------------------------------------------------------------


@pytest.fixture
def sdk_account():
    return BatchAccount.objects.create(name="sdktest")


@pytest.fixture
def batch(server, sdk_account) -> BatchClient:
    return BatchClient(endpoint=f"{server.url}/batch",
                       credential=AzureNamedKeyCredential(sdk_account.name, sdk_account.primary_key))


def sdk_pool_counts(batch: BatchClient, pool_id: str):
    def read():
        [entry] = batch.list_pool_node_counts(filter=f"poolId eq '{pool_id}'")
        return entry.as_dict()
    return read


def sdk_steady(batch: BatchClient, pool_id: str, n: int, state=models.BatchNodeState.IDLE):
    def read():
        return batch.get_pool(pool_id), {node.id: node for node in batch.list_nodes(pool_id)}

    def ok(value):
        pool, nodes = value
        return (pool.allocation_state == models.AllocationState.STEADY
                and [node.state for node in nodes.values()] == [state] * n)
    return eventually(read, ok, f"pool {pool_id} to be steady with {n} {state} node(s)")


def raw(batch: BatchClient, method: str, url: str, body=None):
    """A request through the SDK's own pipeline (Shared Key signed), its answer unparsed."""
    request = HttpRequest(method, url, params={"api-version": API_VERSION}, json=body)
    try:
        return batch.send_request(request)
    except HttpResponseError as refused:  # azure-batch raises even here; the answer comes with it
        return refused.response


# --- az batch ------------------------------------------------------------------------------------


@needs_az
@needs_pause
def test_az_batch_pool_resize_abort_stops_a_resize_where_it_is(az, allocator, cli_account):
    az("batch", "pool", "create", "--id", "halt", "--vm-size", VM_SIZE, "--target-dedicated-nodes", "1")
    pool, nodes = cli_steady(az, "halt", 1)
    assert (pool["targetDedicatedNodes"], pool["currentDedicatedNodes"]) == (1, 1)
    assert_counts_exact(cli_pool_counts(az, "halt"), "halt", cli_account)

    # With the allocator held still, the resize cannot have begun to make nodes when it is stopped.
    allocator.pause()
    az("batch", "pool", "resize", "--pool-id", "halt", "--target-dedicated-nodes", "3")
    assert az("batch", "pool", "show", "--pool-id", "halt")["allocationState"] == "resizing"
    again = az("batch", "pool", "resize", "--pool-id", "halt", "--target-dedicated-nodes", "2", check=False)
    assert "PoolBeingResized" in cli_error(again) or "being resized" in cli_error(again)
    # The refused resize changed nothing.
    assert az("batch", "pool", "show", "--pool-id", "halt")["targetDedicatedNodes"] == 3
    az("batch", "pool", "resize", "--pool-id", "halt", "--abort")  # Stop Resize
    assert az("batch", "pool", "show", "--pool-id", "halt")["allocationState"] == "stopping"
    allocator.resume()

    pool = eventually(lambda: az("batch", "pool", "show", "--pool-id", "halt"),
                      lambda pool: pool["allocationState"] == "steady", "the stopped resize to settle")
    assert pool["targetDedicatedNodes"] == 3  # Batch keeps the target
    # Where it was: no node made, none lost; and it stays there (a stopped resize does not start
    # again by itself).
    stayed = pool["currentDedicatedNodes"] == 1 and set(cli_nodes(az, "halt")) == set(nodes)
    if stayed:
        time.sleep(3)
        pool, later = az("batch", "pool", "show", "--pool-id", "halt"), cli_nodes(az, "halt")
        stayed = (pool["allocationState"], pool["currentDedicatedNodes"], set(later)) == ("steady", 1, set(nodes))
    assert stayed, "a stopped resize started again by itself"
    assert_counts_exact(cli_pool_counts(az, "halt"), "halt", cli_account)


@needs_az
def test_az_batch_creates_resizes_and_deletes_a_pool_of_real_nodes(az, allocator, cli_account):
    az("batch", "pool", "create", "--id", "cli-pool", "--vm-size", VM_SIZE, "--target-dedicated-nodes", "2")
    assert az("batch", "pool", "show", "--pool-id", "cli-pool")["allocationState"] == "resizing"
    pool, nodes = cli_steady(az, "cli-pool", 2)
    assert (pool["targetDedicatedNodes"], pool["currentDedicatedNodes"], pool["currentLowPriorityNodes"]) == (2, 2, 0)
    assert "resizeErrors" not in pool
    assert set(nodes) == node_names("cli-pool")
    for node_id in nodes:
        shown = az("batch", "node", "show", "--pool-id", "cli-pool", "--node-id", node_id)
        assert (shown["id"], shown["state"], shown["schedulingState"]) == (node_id, "idle", "enabled")
        assert (shown["vmSize"], shown["isDedicated"]) == (VM_SIZE, True)
        assert shown["url"].endswith(f"/batch/pools/cli-pool/nodes/{quote(node_id, safe='')}")
        assert shown["nodeAgentInfo"]["lastUpdateTime"]
    # Each node is a worker process of its own, started by the allocator.
    pids = pids_of(nodes)
    assert len(set(pids.values())) == 2 and all(process_lives(pid) for pid in pids.values())
    assert all("--pool cli-pool" in read_cmdline(pid) for pid in pids.values())
    counts = assert_counts_exact(cli_pool_counts(az, "cli-pool"), "cli-pool", cli_account)
    assert (counts["dedicated"]["idle"], counts["dedicated"]["total"], counts["lowpriority"]["total"]) == (2, 2, 0)
    # The node counts of the other pools of the account: this one only (the default pool is another account's).
    assert [c["poolId"] for c in az("batch", "pool", "node-counts", "list")] == ["cli-pool"]

    # Up: one more node joins.
    az("batch", "pool", "resize", "--pool-id", "cli-pool", "--target-dedicated-nodes", "3")
    assert az("batch", "pool", "show", "--pool-id", "cli-pool")["targetDedicatedNodes"] == 3
    pool, grown = cli_steady(az, "cli-pool", 3)
    assert set(nodes) < set(grown) and pool["currentDedicatedNodes"] == 3
    assert_counts_exact(cli_pool_counts(az, "cli-pool"), "cli-pool", cli_account)

    # Down: two nodes drain and leave, their processes end; the one left keeps its id.
    pids = pids_of(grown)
    az("batch", "pool", "resize", "--pool-id", "cli-pool", "--target-dedicated-nodes", "1",
       "--node-deallocation-option", "terminate")
    pool, shrunk = cli_steady(az, "cli-pool", 1)
    assert set(shrunk) < set(grown)
    assert (pool["targetDedicatedNodes"], pool["currentDedicatedNodes"]) == (1, 1)
    assert "resizeErrors" not in pool
    assert_processes_end({name: pid for name, pid in pids.items() if name not in shrunk})
    assert process_lives(pids[next(iter(shrunk))])
    assert_counts_exact(cli_pool_counts(az, "cli-pool"), "cli-pool", cli_account)

    # Delete: the pool is `deleting` while its node leaves, then it is gone.
    az("batch", "pool", "delete", "--pool-id", "cli-pool", "--yes")
    # `deleting` while its node leaves; or gone already (the az CLI takes a second to start).
    shown = az("batch", "pool", "show", "--pool-id", "cli-pool", check=False)
    if isinstance(shown, subprocess.CompletedProcess):
        assert "PoolNotFound" in cli_error(shown)
    else:
        assert shown["state"] == "deleting"
    # While it is there, it takes no resize (its node may have left, and the pool gone, already).
    refused = az("batch", "pool", "resize", "--pool-id", "cli-pool", "--target-dedicated-nodes", "2", check=False)
    assert "PoolBeingDeleted" in cli_error(refused) or "PoolNotFound" in cli_error(refused)
    await_deletion(lambda: isinstance(az("batch", "pool", "show", "--pool-id", "cli-pool", check=False),
                                      subprocess.CompletedProcess), "cli-pool")
    gone = az("batch", "pool", "show", "--pool-id", "cli-pool", check=False)
    assert "The specified pool does not exist" in cli_error(gone)
    assert_processes_end({name: pid for name, pid in pids.items() if name in shrunk})
    assert not Pool.objects.filter(key="cli-pool").exists() and node_names("cli-pool") == set()
    assert az("batch", "pool", "node-counts", "list") == []
    assert az("batch", "pool", "list") == []


def cli_task_done(az, job_id: str, task_id: str) -> dict:
    return eventually(lambda: az("batch", "task", "show", "--job-id", job_id, "--task-id", task_id),
                      lambda task: task["state"] == "completed", f"task {task_id} to complete")


@needs_az
def test_az_batch_node_commands_steer_tasks_reboot_and_remove_real_nodes(az, allocator, cli_account, server):
    az("batch", "pool", "create", "--id", "farm", "--vm-size", VM_SIZE, "--target-dedicated-nodes", "2")
    _, nodes = cli_steady(az, "farm", 2)
    first, second = sorted(nodes)
    az("batch", "job", "create", "--id", "frames", "--pool-id", "farm")

    # Disable scheduling: the node goes offline, and the job's tasks run on the other one only.
    az("batch", "node", "scheduling", "disable", "--pool-id", "farm", "--node-id", first)
    shown = az("batch", "node", "show", "--pool-id", "farm", "--node-id", first)
    assert (shown["state"], shown["schedulingState"]) == ("offline", "disabled")
    counts = assert_counts_exact(cli_pool_counts(az, "farm"), "farm", cli_account)
    assert (counts["dedicated"]["offline"], counts["dedicated"]["idle"]) == (1, 1)
    for i in range(4):
        az("batch", "task", "create", "--job-id", "frames", "--task-id", f"f{i}", "--command-line", f"/bin/echo {i}")
    for i in range(4):
        task = cli_task_done(az, "frames", f"f{i}")
        assert task["executionInfo"]["exitCode"] == 0
        info = task["nodeInfo"]
        assert (info["poolId"], info["nodeId"]) == ("farm", second)
        assert info["nodeUrl"] == f"{server.url}/batch/pools/farm/nodes/{quote(second, safe='')}"
    assert az("batch", "node", "show", "--pool-id", "farm", "--node-id", first)["totalTasksRun"] == 0
    ran = eventually(lambda: az("batch", "node", "show", "--pool-id", "farm", "--node-id", second),
                     lambda node: node["totalTasksRun"] == 4, "the node to count its runs")
    assert ran["totalTasksSucceeded"] == 4 and ran["state"] == "idle"
    assert {t["taskId"] for t in ran["recentTasks"]} <= {f"f{i}" for i in range(4)}

    # Enable it, disable the other: the next task runs on the first.
    az("batch", "node", "scheduling", "enable", "--pool-id", "farm", "--node-id", first)
    shown = az("batch", "node", "show", "--pool-id", "farm", "--node-id", first)
    assert (shown["state"], shown["schedulingState"]) == ("idle", "enabled")
    az("batch", "node", "scheduling", "disable", "--pool-id", "farm", "--node-id", second,
       "--node-disable-scheduling-option", "taskcompletion")
    az("batch", "task", "create", "--job-id", "frames", "--task-id", "f4", "--command-line", "/bin/echo 4")
    assert cli_task_done(az, "frames", "f4")["nodeInfo"]["nodeId"] == first
    assert_counts_exact(cli_pool_counts(az, "farm"), "farm", cli_account)

    # Reboot with taskcompletion while the first node runs a task: `rebooting` until the task ends,
    # which it does (not requeued), then `idle` again, booted anew.
    booted = az("batch", "node", "show", "--pool-id", "farm", "--node-id", first)["lastBootTime"]
    az("batch", "task", "create", "--job-id", "frames", "--task-id", "nap", "--command-line", "/bin/sleep 12")
    eventually(lambda: az("batch", "task", "show", "--job-id", "frames", "--task-id", "nap"),
               lambda task: task["state"] == "running", "the nap to run")
    az("batch", "node", "reboot", "--pool-id", "farm", "--node-id", first, "--node-reboot-option", "taskcompletion")
    shown = az("batch", "node", "show", "--pool-id", "farm", "--node-id", first)
    assert shown["state"] == "rebooting", shown
    counts = assert_counts_exact(cli_pool_counts(az, "farm"), "farm", cli_account)
    assert (counts["dedicated"]["rebooting"], counts["dedicated"]["offline"]) == (1, 1)
    nap = cli_task_done(az, "frames", "nap")
    assert (nap["executionInfo"]["result"], nap["executionInfo"]["requeueCount"]) == ("success", 0)
    assert nap["nodeInfo"]["nodeId"] == first
    rebooted = eventually(lambda: az("batch", "node", "show", "--pool-id", "farm", "--node-id", first),
                          lambda node: node["state"] == "idle", "the node to come back from its reboot")
    assert rebooted["lastBootTime"] > booted
    assert_counts_exact(cli_pool_counts(az, "farm"), "farm", cli_account)

    # Remove Nodes (az batch node delete): the node leaves, its process ends, the target shrinks.
    az("batch", "node", "scheduling", "enable", "--pool-id", "farm", "--node-id", second)
    pids = pids_of([first, second])
    az("batch", "node", "delete", "--pool-id", "farm", "--node-list", first, "--node-deallocation-option", "requeue")
    assert az("batch", "pool", "show", "--pool-id", "farm")["targetDedicatedNodes"] == 1
    pool, left = cli_steady(az, "farm", 1)
    assert set(left) == {second} and pool["targetDedicatedNodes"] == 1
    assert_processes_end({first: pids[first]})
    assert process_lives(pids[second])
    assert_counts_exact(cli_pool_counts(az, "farm"), "farm", cli_account)
    missing = az("batch", "node", "show", "--pool-id", "farm", "--node-id", first, check=False)
    assert "The specified node does not exist" in cli_error(missing)


# --- The azure-batch SDK -------------------------------------------------------------------------


def sdk_task_done(batch: BatchClient, job_id: str, task_id: str):
    return eventually(lambda: batch.get_task(job_id, task_id), lambda t: t.state == models.BatchTaskState.COMPLETED,
                      f"task {task_id} to complete")


def test_the_sdk_drives_a_pool_of_real_nodes_and_its_jobs_run_there(batch, allocator, sdk_account, server):
    batch.create_pool(models.BatchPoolCreateOptions(id="sdk-pool", vm_size=VM_SIZE, target_dedicated_nodes=2))
    batch.create_pool(models.BatchPoolCreateOptions(id="other", vm_size=VM_SIZE, target_dedicated_nodes=1))
    assert batch.get_pool("sdk-pool").allocation_state == models.AllocationState.RESIZING
    pool, nodes = sdk_steady(batch, "sdk-pool", 2)
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (2, 2, 0)
    _, others = sdk_steady(batch, "other", 1)
    assert set(nodes) == node_names("sdk-pool") and set(others) == node_names("other")
    for node_id in nodes:
        got = batch.get_node("sdk-pool", node_id)
        assert (got.id, got.state, got.scheduling_state) == (node_id, models.BatchNodeState.IDLE,
                                                             models.SchedulingState.ENABLED)
        assert (got.vm_size, got.is_dedicated, got.url) == (
            VM_SIZE, True, f"{server.url}/batch/pools/sdk-pool/nodes/{quote(node_id, safe='')}")
    listed = {c.pool_id: c for c in batch.list_pool_node_counts()}
    assert set(listed) == {"sdk-pool", "other"}
    assert (listed["sdk-pool"].dedicated.idle, listed["other"].dedicated.idle) == (2, 1)
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)
    assert_counts_exact(sdk_pool_counts(batch, "other"), "other", sdk_account)

    # Resize up, then down (the SDK's pollers wait for `steady`).
    batch.begin_resize_pool("sdk-pool", models.BatchPoolResizeOptions(target_dedicated_nodes=3),
                            polling_interval=1).result(timeout=WAIT)
    pool, grown = sdk_steady(batch, "sdk-pool", 3)
    assert set(nodes) < set(grown) and pool.current_dedicated_nodes == 3
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)
    pids = pids_of(grown)
    batch.begin_resize_pool("sdk-pool", models.BatchPoolResizeOptions(
        target_dedicated_nodes=2, node_deallocation_option=models.BatchNodeDeallocationOption.TASK_COMPLETION),
        polling_interval=1).result(timeout=WAIT)
    pool, nodes = sdk_steady(batch, "sdk-pool", 2)
    assert set(nodes) < set(grown) and (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (2, 2)
    assert_processes_end({name: pid for name, pid in pids.items() if name not in nodes})
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)

    # A job in the pool: its tasks run on the pool's nodes only, and each names a node that answers.
    batch.create_job(models.BatchJobCreateOptions(id="render", pool_info=models.BatchPoolInfo(pool_id="sdk-pool")))
    batch.create_tasks("render", [models.BatchTaskCreateOptions(id=f"frame-{i}", command_line=f"/bin/echo {i}")
                                  for i in range(8)])
    for i in range(8):
        task = sdk_task_done(batch, "render", f"frame-{i}")
        assert task.execution_info.exit_code == 0
        info = task.node_info
        assert info.pool_id == "sdk-pool" and info.node_id in nodes, info
        assert info.node_url == f"{server.url}/batch/pools/sdk-pool/nodes/{quote(info.node_id, safe='')}"
        answer = raw(batch, "GET", info.node_url)
        assert answer.status_code == 200 and answer.json()["id"] == info.node_id
        assert batch.get_node(info.pool_id, info.node_id).affinity_id == info.affinity_id
    ran = eventually(lambda: {n.id: n.total_tasks_run for n in batch.list_nodes("sdk-pool")},
                     lambda totals: sum(totals.values()) == 8, "the nodes to count their runs")
    assert set(ran) == set(nodes)
    assert [n.total_tasks_run for n in batch.list_nodes("other")] == [0]  # the other pool's node ran none

    # Disable scheduling (requeue) on the node running a long task: the task goes back to the queue
    # and runs on the other node; the first goes offline.
    batch.create_task("render", models.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 300"))
    running = eventually(lambda: batch.get_task("render", "long"),
                         lambda t: t.state == models.BatchTaskState.RUNNING, "the long task to run")
    busy = running.node_info.node_id
    [spare] = set(nodes) - {busy}
    batch.disable_node_scheduling("sdk-pool", busy, models.BatchNodeDisableSchedulingOptions(
        node_disable_scheduling_option=models.BatchNodeDisableSchedulingOption.REQUEUE))
    moved = eventually(lambda: batch.get_task("render", "long"),
                       lambda t: t.state == models.BatchTaskState.RUNNING and t.node_info.node_id == spare,
                       "the long task to run on the other node")
    assert moved.execution_info.requeue_count == 1
    offline = eventually(lambda: batch.get_node("sdk-pool", busy), lambda n: n.state == models.BatchNodeState.OFFLINE,
                         "the disabled node to go offline")
    assert (offline.scheduling_state, offline.running_tasks_count) == (models.SchedulingState.DISABLED, 0)
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)
    batch.terminate_task("render", "long")

    batch.enable_node_scheduling("sdk-pool", busy)
    enabled = batch.get_node("sdk-pool", busy)
    assert (enabled.state, enabled.scheduling_state) == (models.BatchNodeState.IDLE, models.SchedulingState.ENABLED)

    # Reboot: `rebooting`, then `idle` once its agent has started afresh (the poller waits for that).
    booted = enabled.last_boot_time
    batch.begin_reboot_node("sdk-pool", busy, BatchNodeRebootOptions(node_reboot_kind="requeue"),
                            polling_interval=1).result(timeout=WAIT)
    rebooted = eventually(lambda: batch.get_node("sdk-pool", busy), lambda n: n.state == models.BatchNodeState.IDLE,
                          "the node to be idle after its reboot")
    assert rebooted.last_boot_time > booted
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)

    # Remove Nodes: that node leaves, its process ends, the target shrinks by one.
    sdk_steady(batch, "sdk-pool", 2)
    pids = pids_of(nodes)
    batch.begin_remove_nodes("sdk-pool", models.BatchNodeRemoveOptions(node_ids=[busy]),
                             polling_interval=1).result(timeout=WAIT)
    pool, left = sdk_steady(batch, "sdk-pool", 1)
    assert set(left) == {spare} and (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (1, 1)
    assert_processes_end({busy: pids[busy]})
    with pytest.raises(ResourceNotFoundError) as gone:
        batch.get_node("sdk-pool", busy)
    assert gone.value.error.code == "NodeNotFound"
    assert_counts_exact(sdk_pool_counts(batch, "sdk-pool"), "sdk-pool", sdk_account)

    # Delete: `deleting` while its nodes leave, then gone; the other pool is untouched.
    pids = pids_of(node_names("sdk-pool"))
    deleting = batch.begin_delete_pool("sdk-pool", polling_interval=1)
    assert deleting_or_gone(batch, "sdk-pool")
    await_deletion(deleting.done, "sdk-pool")
    with pytest.raises(ResourceNotFoundError) as gone:
        batch.get_pool("sdk-pool")
    assert gone.value.error.code == "PoolNotFound"
    assert_processes_end(pids)
    assert [c.pool_id for c in batch.list_pool_node_counts()] == ["other"]
    assert_counts_exact(sdk_pool_counts(batch, "other"), "other", sdk_account)
    assert {n.id for n in batch.list_nodes("other")} == set(others)


@needs_pause
def test_the_sdk_stops_a_resize_where_it_is(batch, allocator, sdk_account):
    batch.create_pool(models.BatchPoolCreateOptions(id="halt", vm_size=VM_SIZE, target_dedicated_nodes=1))
    _, nodes = sdk_steady(batch, "halt", 1)
    # With the allocator held still, the resize stops before any node is made.
    allocator.pause()
    resizing = batch.begin_resize_pool("halt", models.BatchPoolResizeOptions(target_dedicated_nodes=3),
                                       polling_interval=1)
    assert batch.get_pool("halt").allocation_state == models.AllocationState.RESIZING
    stopping = batch.begin_stop_pool_resize("halt", polling_interval=1)
    assert batch.get_pool("halt").allocation_state == models.AllocationState.STOPPING
    allocator.resume()
    stopping.result(timeout=WAIT)
    resizing.result(timeout=WAIT)
    pool = batch.get_pool("halt")
    assert pool.target_dedicated_nodes == 3  # Batch keeps the target
    # Where it was: no node made, none lost; and it stays there.
    stayed = (pool.allocation_state, pool.current_dedicated_nodes) == (models.AllocationState.STEADY, 1)
    if stayed:
        time.sleep(3)
        pool = batch.get_pool("halt")
        stayed = (pool.allocation_state, {n.id for n in batch.list_nodes("halt")}) == (
            models.AllocationState.STEADY, set(nodes))
    assert stayed, "a stopped resize started again by itself"
    assert_counts_exact(sdk_pool_counts(batch, "halt"), "halt", sdk_account)


def refused_by(call, status: int, code: str) -> dict:
    """The SDK raises for a refused call, with Batch's status and code; Batch's values (which
    the SDK reads as the error's details) as a dict."""
    with pytest.raises(HttpResponseError) as caught:
        call()
    error = caught.value.error
    assert (caught.value.status_code, error.code) == (status, code), caught.value
    return {detail.code: detail.message for detail in error.details or []}


def assert_batch_error(answer, status: int, code: str, values: dict) -> None:
    """A raw answer in Batch's error shape."""
    assert answer.status_code == status, answer.text()
    body = answer.json()
    assert body["code"] == code and body["odata.metadata"].endswith("$metadata#Microsoft.Azure.Batch.Protocol."
                                                                    "Entities.Container.errors/@Element"), body
    assert body["message"]["lang"] == "en-US" and body["message"]["value"]
    assert values.items() <= {v["key"]: v["value"] for v in body["values"]}.items(), body


@needs_pause
def test_bad_resizes_and_removals_get_batchs_errors_and_change_nothing(batch, allocator, sdk_account, server):
    batch.create_pool(models.BatchPoolCreateOptions(id="strict", vm_size=VM_SIZE, target_dedicated_nodes=1))
    _, nodes = sdk_steady(batch, "strict", 1)
    [real] = nodes
    url = f"{server.url}/batch/pools/strict"

    def unchanged():
        pool = batch.get_pool("strict")
        assert (pool.allocation_state, pool.target_dedicated_nodes, pool.resize_timeout) == (
            models.AllocationState.STEADY, 1, timedelta(minutes=15))
        assert [(n.id, n.state) for n in batch.list_nodes("strict")] == [(real, models.BatchNodeState.IDLE)]
        assert_counts_exact(sdk_pool_counts(batch, "strict"), "strict", sdk_account)

    # Remove Nodes naming a node the pool does not have: 404 NodeNotFound, and the real one stays.
    def remove(**options):
        return lambda: batch.begin_remove_nodes("strict", models.BatchNodeRemoveOptions(**options))
    assert refused_by(remove(node_ids=[real, "ghost"]), 404, "NodeNotFound") == {"NodeId": "ghost"}
    assert_batch_error(raw(batch, "POST", f"{url}/removenodes", {"nodeList": [real, "ghost"]}), 404, "NodeNotFound",
                       {"NodeId": "ghost"})
    unchanged()
    # More than 100 node ids: 400.
    too_many = refused_by(remove(node_ids=[real] + [f"ghost-{i}" for i in range(100)]), 400, "InvalidPropertyValue")
    assert too_many["PropertyName"] == "nodeList"
    assert_batch_error(raw(batch, "POST", f"{url}/removenodes", {"nodeList": [real] * 101}), 400,
                       "InvalidPropertyValue", {"PropertyName": "nodeList"})
    unchanged()
    # A nodeDeallocationOption Batch does not have: 400, on Resize and on Remove Nodes.
    refused_by(lambda: batch.begin_resize_pool("strict", models.BatchPoolResizeOptions(
        target_dedicated_nodes=0, node_deallocation_option="whenever")), 400, "InvalidPropertyValue")
    assert_batch_error(raw(batch, "POST", f"{url}/resize",
                           {"targetDedicatedNodes": 0, "nodeDeallocationOption": "whenever"}),
                       400, "InvalidPropertyValue", {"PropertyName": "nodeDeallocationOption"})
    refused_by(remove(node_ids=[real], node_deallocation_option="whenever"), 400, "InvalidPropertyValue")
    unchanged()
    # A resizeTimeout below 5 minutes: 400, on Resize and on Remove Nodes.
    refused_by(lambda: batch.begin_resize_pool("strict", models.BatchPoolResizeOptions(
        target_dedicated_nodes=0, resize_timeout=timedelta(minutes=1))), 400, "InvalidPropertyValue")
    assert_batch_error(raw(batch, "POST", f"{url}/resize", {"targetDedicatedNodes": 0, "resizeTimeout": "PT4M59S"}),
                       400, "InvalidPropertyValue", {"PropertyName": "resizeTimeout"})
    refused_by(remove(node_ids=[real], resize_timeout=timedelta(minutes=4)), 400, "InvalidPropertyValue")
    unchanged()

    # A pool being resized takes no other resize or removal: 409 PoolBeingResized. (The allocator
    # is held still so that the first resize cannot have finished.)
    allocator.pause()
    try:
        resizing = batch.begin_resize_pool("strict", models.BatchPoolResizeOptions(target_dedicated_nodes=2),
                                           polling_interval=1)
        refused_by(lambda: batch.begin_resize_pool("strict", models.BatchPoolResizeOptions(target_dedicated_nodes=5)),
                   409, "PoolBeingResized")
        assert_batch_error(raw(batch, "POST", f"{url}/resize", {"targetDedicatedNodes": 5}), 409, "PoolBeingResized",
                           {"PoolId": "strict"})
        refused_by(remove(node_ids=[real]), 409, "PoolBeingResized")
        pool = batch.get_pool("strict")
        assert (pool.allocation_state, pool.target_dedicated_nodes) == (models.AllocationState.RESIZING, 2)
        assert [n.id for n in batch.list_nodes("strict")] == [real]  # not removed
    finally:
        allocator.resume()
    resizing.result(timeout=WAIT)
    pool, nodes = sdk_steady(batch, "strict", 2)
    assert real in nodes and pool.target_dedicated_nodes == 2
    assert_counts_exact(sdk_pool_counts(batch, "strict"), "strict", sdk_account)


def test_a_pool_deleted_while_its_nodes_start_is_gone_once_they_are(batch, allocator, sdk_account):
    batch.create_pool(models.BatchPoolCreateOptions(id="hasty", vm_size=VM_SIZE, target_dedicated_nodes=2))
    # Hold the two worker processes still as soon as the allocator has started them, so that the
    # delete comes while the nodes are `starting`, before their agents join.
    started = eventually(lambda: list(ComputeNode.objects.filter(pool__key="hasty", state="starting")
                                      .values_list("name", "provider_handle")),
                         lambda rows: len(rows) == 2, "the allocator to start two nodes", pause=0.02)
    pids = {name: int(handle) for name, handle in started}
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    try:
        assert {n.state for n in batch.list_nodes("hasty")} == {models.BatchNodeState.STARTING}
        deleting = batch.begin_delete_pool("hasty", polling_interval=1)
        assert deleting_or_gone(batch, "hasty")
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
    # Each node either never joins, or its agent joins only to leave: a node of a deleting pool takes no work.
    joined = eventually(lambda: list(ComputeNode.objects.filter(name__in=list(pids))
                                     .values_list("name", "state", "heartbeat_at")),
                        lambda rows: all(beat is not None for _, _, beat in rows),
                        "the held nodes' agents to join their pool or go")
    assert {state for _, state, _ in joined} <= {"leavingpool"}, f"nodes of a deleting pool: {joined}"
    deleting.result(timeout=WAIT)
    left = list(ComputeNode.objects.filter(pool__key="hasty").values_list("name", "state"))
    assert not Pool.objects.filter(key="hasty").exists(), f"the pool is still there, with nodes {left}"
    with pytest.raises(ResourceNotFoundError) as gone:
        batch.get_pool("hasty")
    assert gone.value.error.code == "PoolNotFound"
    assert_processes_end(pids)
    assert not ComputeNode.objects.filter(name__in=list(pids)).exists()
    assert list(batch.list_pool_node_counts()) == []
