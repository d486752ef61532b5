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

    worker = start_worker("--name", "cli-node", "--poll", "0.1")
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
