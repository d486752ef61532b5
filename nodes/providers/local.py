"""The `local` provider: a node is a worker process on this machine, started by the allocator."""

import logging
import os
import signal
import subprocess
import sys
from collections import deque
from pathlib import Path

from django.conf import settings

from pools.models import ComputeNode, Pool

from ..host import PROVIDER_VARIABLE
from . import Ended

log = logging.getLogger("batchsite.allocator")

MANAGE = Path(settings.BASE_DIR) / "manage.py"


class LocalProvider:
    name = "local"

    def __init__(self, *, extra_args: tuple[str, ...] = (), env: dict | None = None):
        self.extra_args = extra_args  # e.g. --allow-unconfined, --poll, passed to every worker
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def log_path(self, name: str) -> Path:
        folder = Path(settings.DATA_DIR) / "logs" / "nodes"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder / f"{name}.log"

    def create(self, pool: Pool, nodes: list[ComputeNode]) -> dict[str, str]:
        started = {}
        for node in nodes:
            command = [sys.executable, str(MANAGE), "worker", "--pool", pool.batch_id, "--account",
                       pool.account.name, "--name", node.name, "--slots", str(node.slots), *self.extra_args]
            path = self.log_path(node.name)
            try:
                with open(path, "ab") as out:
                    # Its own session: a Ctrl-C meant for the allocator's terminal is not the node's.
                    env = {**(self.env if self.env is not None else os.environ), PROVIDER_VARIABLE: self.name}
                    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, env=env)
            except OSError as exc:
                path.write_text(f"could not start the worker: {exc}\n")
                self.procs[node.name] = None  # reported by `ended`
                continue
            self.procs[node.name], self.logs[node.name] = proc, path
            started[node.name] = str(proc.pid)
        return started

    def remove(self, nodes: list[ComputeNode]) -> None:
        for node in nodes:
            proc = self.procs.get(node.name)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # the worker leaves its pool cleanly

    def ended(self) -> list[Ended]:
        gone = []
        for name, proc in list(self.procs.items()):
            if proc is None or proc.poll() is not None:
                del self.procs[name]
                gone.append(Ended(name, last_words(self.logs.pop(name, None), proc)))
        return gone

    def running(self) -> set[str]:
        return {name for name, proc in self.procs.items() if proc is not None and proc.poll() is None}

    def stop_all(self, timeout: float = 30) -> None:
        """Stop every node this provider started, and wait for them (the allocator is stopping)."""
        for proc in self.procs.values():
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            if proc is None:
                continue
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def last_words(path: Path | None, proc: subprocess.Popen | None) -> str:
    """Why a worker ended, in its own words: the last lines of its log."""
    status = f"exit status {proc.returncode}" if proc is not None else "it could not be started"
    if path is None or not path.exists():
        return status
    with open(path, "rb") as log_file:
        log_file.seek(max(0, path.stat().st_size - 2000))
        lines = deque(log_file.read().decode(errors="replace").splitlines(), maxlen=3)
    return f"{status}: {' / '.join(line.strip() for line in lines if line.strip())}"[:500]
