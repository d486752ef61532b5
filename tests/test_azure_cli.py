"""The seed document's `az batch` commands, run by the real azure-cli against a live
Batchsite (`--account-endpoint http://127.0.0.1:PORT/batch`, Shared Key), with a worker
running the tasks.

azure-cli is not a project dependency (~730 MB): `make test` installs it once into its
own cached virtualenv (scripts/ensure-azure-cli.sh); where that was not possible these
tests skip and say so.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from accounts.models import BatchAccount

VERSION = os.environ.get("BATCHSITE_AZURE_CLI_VERSION", "2.91.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
AZ = Path(os.environ.get("BATCHSITE_AZURE_CLI_VENV", CACHE / "batchsite" / f"azure-cli-{VERSION}")) / "bin" / "az"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.same_on_every_database,
    pytest.mark.skipif(not AZ.exists(), reason=f"azure-cli is not installed at {AZ} "
                                               "(scripts/ensure-azure-cli.sh installs it; `make test` runs that)"),
]


@pytest.fixture
def az(server, tmp_path):
    account = BatchAccount.objects.create(name="clitest")
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "azure-config"), "AZURE_CORE_COLLECT_TELEMETRY": "0",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_ONLY_SHOW_ERRORS": "1"}
    auth = ["--account-name", account.name, "--account-key", account.primary_key,
            "--account-endpoint", f"{server.url}/batch"]

    def run(*args: str, check: bool = True):
        result = subprocess.run([str(AZ), *args, *auth], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if result.stdout.strip() else None

    return run


def test_the_seed_documents_az_batch_commands(az, start_worker, tmp_path):
    az("batch", "job", "create", "--id", "nightly", "--pool-id", "local", "--priority", "10",
       "--job-max-task-retry-count", "2", "--job-max-wall-clock-time", "PT1H", "--uses-task-dependencies")
    job = az("batch", "job", "show", "--job-id", "nightly")
    assert (job["priority"], job["constraints"]["maxTaskRetryCount"]) == (10, 2)
    assert job["constraints"]["maxWallClockTime"] in ("1:00:00", "PT1H")
    assert job["usesTaskDependencies"] is True

    az("batch", "task", "create", "--job-id", "nightly", "--task-id", "download-data",
       "--command-line", "/bin/echo downloaded")
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(json.dumps([
        {"id": "process-data", "commandLine": "/bin/echo processed", "dependsOn": {"taskIds": ["download-data"]}},
        {"id": "generate-report", "commandLine": "/bin/echo report", "dependsOn": {"taskIds": ["process-data"]}},
    ]))
    az("batch", "task", "create", "--job-id", "nightly", "--json-file", str(tasks_file))

    counts = az("batch", "job", "task-counts", "show", "--job-id", "nightly")
    assert counts["taskCounts"]["active"] == 3

    worker = start_worker("--name", "cli-node", "--account", "clitest", "--poll", "0.1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts = az("batch", "job", "task-counts", "show", "--job-id", "nightly")
        if counts["taskCounts"]["succeeded"] == 3:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the tasks did not all succeed: {counts}")

    listed = az("batch", "task", "list", "--job-id", "nightly")
    assert sorted(t["id"] for t in listed) == ["download-data", "generate-report", "process-data"]
    assert {t["state"] for t in listed} == {"completed"}
    starts = {t["id"]: t["executionInfo"]["startTime"] for t in listed}
    assert starts["download-data"] < starts["process-data"] < starts["generate-report"]

    az("batch", "task", "file", "download", "--job-id", "nightly", "--task-id", "generate-report",
       "--file-path", "stdout.txt", "--destination", str(tmp_path / "report.txt"))
    assert (tmp_path / "report.txt").read_text() == "report\n"

    az("batch", "job", "stop", "--job-id", "nightly")
    assert az("batch", "job", "show", "--job-id", "nightly")["state"] == "completed"
    az("batch", "job", "delete", "--job-id", "nightly", "--yes")
    deadline = time.monotonic() + 30
    while az("batch", "job", "list") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert az("batch", "job", "list") == []
    worker.terminate()
    worker.wait(timeout=30)


# --- Pools (issue 12, first slice: pools as a resource, no nodes yet) -------------------------

def test_az_batch_pool_commands_add_list_show_change_and_delete_pools(az, tmp_path):
    from tasks.services.sweeps import sweep

    az("batch", "pool", "create", "--id", "cli-pool", "--vm-size", "standard_d2s_v3", "--target-dedicated-nodes", "2")
    full = tmp_path / "pool.json"
    full.write_text(json.dumps({
        "id": "Full-Pool", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": 0, "taskSlotsPerNode": 4,
        "taskSchedulingPolicy": {"nodeFillType": "pack"}, "resizeTimeout": "PT20M",
        "startTask": {"commandLine": "/bin/sh -c 'echo ready'", "waitForSuccess": True},
        "metadata": [{"name": "team", "value": "vfx"}],
        "virtualMachineConfiguration": {
            "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                               "sku": "22_04-lts", "version": "latest"},
            "nodeAgentSKUId": "batch.node.ubuntu 22.04"},
    }))
    az("batch", "pool", "create", "--json-file", str(full))

    pool = az("batch", "pool", "show", "--pool-id", "CLI-POOL")  # ids ignore case
    assert (pool["id"], pool["vmSize"], pool["state"]) == ("cli-pool", "standard_d2s_v3", "active")
    assert (pool["targetDedicatedNodes"], pool["currentDedicatedNodes"]) == (2, 0)
    assert pool["allocationState"] == "resizing"
    assert pool["taskSlotsPerNode"] == 1
    pool = az("batch", "pool", "show", "--pool-id", "full-pool")
    assert pool["allocationState"] == "steady"
    assert (pool["taskSlotsPerNode"], pool["taskSchedulingPolicy"]["nodeFillType"]) == (4, "pack")
    assert pool["resizeTimeout"] in ("0:20:00", "PT20M")
    assert pool["startTask"]["commandLine"] == "/bin/sh -c 'echo ready'" and pool["startTask"]["waitForSuccess"]
    assert pool["virtualMachineConfiguration"]["nodeAgentSkuId"] == "batch.node.ubuntu 22.04"
    assert pool["metadata"] == [{"name": "team", "value": "vfx"}]

    assert sorted(p["id"] for p in az("batch", "pool", "list")) == ["Full-Pool", "cli-pool"]
    listed = az("batch", "pool", "list", "--filter", "id eq 'full-pool'", "--select", "id,state")
    assert [(p["id"], p["state"]) for p in listed] == [("Full-Pool", "active")]
    assert "vmSize" not in listed[0]

    # set: Patch Pool (the properties given change; the start task stays).
    az("batch", "pool", "set", "--pool-id", "full-pool", "--metadata", "stage=two")
    pool = az("batch", "pool", "show", "--pool-id", "full-pool")
    assert pool["metadata"] == [{"name": "stage", "value": "two"}]
    assert pool["startTask"]["commandLine"] == "/bin/sh -c 'echo ready'"

    # reset: Update Properties (what is left out is removed).
    reset = az("batch", "pool", "reset", "--pool-id", "full-pool", "--metadata", "stage=three")
    assert reset["metadata"] == [{"name": "stage", "value": "three"}]
    pool = az("batch", "pool", "show", "--pool-id", "full-pool")
    assert "startTask" not in pool or pool["startTask"] is None
    assert pool["metadata"] == [{"name": "stage", "value": "three"}]

    az("batch", "pool", "delete", "--pool-id", "cli-pool", "--yes")
    assert az("batch", "pool", "show", "--pool-id", "cli-pool")["state"] == "deleting"
    sweep()  # a worker's housekeeping: the pool has no nodes to wait for
    assert [p["id"] for p in az("batch", "pool", "list")] == ["Full-Pool"]
    assert az("batch", "pool", "show", "--pool-id", "cli-pool", check=False) is None  # 404: az prints no JSON
    from pools.models import Pool

    assert [p.batch_id for p in Pool.objects.all()] == ["Full-Pool"]
