"""schemathesis, fed the schema a live Batchsite serves, fuzzes every operation with valid and invalid
requests: none answers a server error, every error comes in Batch's error shape, and every answer is
as the schema says.

Bounded and repeatable: derandomized generation (the same cases every run), CASES_PER_OPERATION
cases per operation, one worker. It runs schemathesis's CLI (tests/schemathesis_hooks.py holds the
Batch error-shape check and aims valid cases at the objects made here); a failure shows the CLI's
report: each failing operation, the check, the answer and a curl command that reproduces it.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from accounts.models import default_account
from tasks.files import task_dir

from . import schemathesis_hooks as hooks
from .helpers import add, make_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.same_on_every_database]

ROOT = Path(__file__).resolve().parent.parent
CASES_PER_OPERATION = 20
OPERATIONS = 42
CHECKS = (
    "not_a_server_error", "batch_error_shape",  # no 5xx; every error in Batch's shape
    # ... and the schema is true: each answer's status, content type, headers and body are as it says.
    "status_code_conformance", "content_type_conformance", "response_headers_conformance",
    "response_schema_conformance",
)


@pytest.fixture
def live_batch(server, owner) -> str:
    """What valid cases aim at (the job, its task and files, jobs and tasks to destroy); the token."""
    assert default_account().name == hooks.ACCOUNT  # make_job's account, the owner's
    job = make_job(hooks.JOB_ID, job_preparation_task={"commandLine": "/bin/true"})
    # `anchor` stays active, so the job never completes by itself (onAllTasksComplete).
    task, _anchor, *_doomed = add(job, hooks.TASK_ID, "anchor", *hooks.DOOMED_TASKS)
    for doomed in hooks.DOOMED_JOBS:
        make_job(doomed)
    directory = task_dir(task)
    (directory / "wd" / "out").mkdir(parents=True)
    (directory / "stdout.txt").write_bytes(b"0123456789")
    (directory / "wd" / "out" / "result.csv").write_text("a,b\n")
    return Token.objects.create(user=owner).key


def schemathesis(server, token: str, workdir: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/api/schema/?format=json",
        "--header", f"Authorization: Token {token}",
        "--checks", ",".join(CHECKS),
        "--phases", "fuzzing", "--mode", "all", "--max-examples", str(CASES_PER_OPERATION),
        "--generation-deterministic", "--no-shrink", "--generation-with-security-parameters", "false",
        "--suppress-health-check", "all", "--workers", "1", "--no-color", "--warnings", "off",
    ]
    # In a folder of its own: the CLI keeps a cache (.schemathesis) where it runs.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


def test_no_operation_answers_a_server_error_an_error_outside_batch_shape_or_the_schema(server, live_batch, tmp_path):
    run = schemathesis(server, live_batch, tmp_path)
    report = run.stdout + run.stderr
    print(report[report.find("SUMMARY"):])  # the figures, with pytest -s
    assert run.returncode == 0, report[report.find("FAILURES"):] if "FAILURES" in report else report
    assert f"Tested: {OPERATIONS}" in report
    cases = int(re.search(r"(\d+) generated", report).group(1))
    assert cases >= OPERATIONS * CASES_PER_OPERATION * 3 // 4, report  # the run was not vacuous

