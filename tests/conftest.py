import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    os.umask(0o077)  # as the entry points (manage.py, asgi.py) set it: the suite's files are private too


@pytest.fixture(autouse=True)
def node_root(tmp_path, settings):
    """Each test gets its own task directories and blob storage."""
    settings.BATCHSITE_NODE_ROOT = tmp_path / "nodes"
    settings.BATCHSITE_STORAGE_ROOT = tmp_path / "storage"
    settings.STORAGES = {**settings.STORAGES, "batchsite": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(settings.BATCHSITE_STORAGE_ROOT)}}}
    return settings.BATCHSITE_NODE_ROOT


@pytest.fixture
def owner(django_user_model):
    """A user who operates the default account (where make_job puts jobs)."""
    from accounts.models import Membership, Role, default_account

    user = django_user_model.objects.create_user(username="owner", password="owner-password-1")
    Membership.objects.create(user=user, account=default_account(), role=Role.OPERATOR)
    return user


@pytest.fixture
def api(owner) -> APIClient:
    """A client authenticated as `owner` with a DRF token, as scripts call the API."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


def database_url() -> str:
    """The URL of the test database, for worker processes started by a test."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@functools.cache
def sandbox_missing() -> str | None:
    """Why tasks cannot be sandboxed on this machine, or None when they can.

    Where they cannot (no bubblewrap, no user namespaces), the suite's workers run
    tasks unconfined so that everything else is still tested; the containment tests
    skip with this reason.
    """
    from nodes.sandbox import Containment, ContainmentUnavailable

    try:
        Containment.for_worker()
    except ContainmentUnavailable as why:
        if os.environ.get("BATCHSITE_REQUIRE_SANDBOX"):  # CI: the sandbox is what is tested, never skipped
            raise RuntimeError(f"BATCHSITE_REQUIRE_SANDBOX is set, but tasks cannot be sandboxed here: {why}")
        return f"tasks cannot be sandboxed here ({why})"
    return None


def worker_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), "worker", *args]


def worker_env(**extra) -> dict:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url(),
        "BATCHSITE_NODE_ROOT": str(settings.BATCHSITE_NODE_ROOT),
        "BATCHSITE_STORAGE_ROOT": str(settings.BATCHSITE_STORAGE_ROOT),
        "BATCHSITE_LOG_LEVEL": "WARNING",
    })
    if sandbox_missing():
        env["BATCHSITE_ALLOW_UNCONFINED_TASKS"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def run_worker():
    """Run `manage.py worker --exit-when-idle` against the test database until it stops."""

    def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        result = subprocess.run(worker_command("--exit-when-idle", "--poll", "0.2", *args), env=worker_env(),
                                capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def start_worker():
    """Start a worker process; the test stops it. Every process started is killed at the end."""
    procs = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen(worker_command(*args), env=worker_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path):
    """`daphne` on the test database in its own process (tests that need it are transactional)."""
    from .browser import Server

    live = Server(worker_env(), tmp_path / "daphne.log")
    yield live
    live.stop()
