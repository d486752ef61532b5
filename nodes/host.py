"""What the node knows of its host: which process is which (/proc), its name, its node root."""

import logging
import os
import socket
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from pools.models import ComputeNode
from pools.services.nodes import NodeStart
from tasks.rundirs import make_private

log = logging.getLogger("batchsite.worker")


def process_key(pid: int) -> str:
    """Which process `pid` is, in words no other process shares: this boot, this PID
    namespace, the pid and the moment it started (in clock ticks since boot, which no
    change of the wall clock moves); "" where /proc cannot tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        started = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""
    return f"{boot}/{namespace}/{pid}/{started}"


def predecessor_is_dead(worker: ComputeNode, hostname: str) -> bool:
    """Whether the agent process a node row names has provably ended: it ran on this host, in
    this boot and PID namespace, and no process of its pid and start time lives.

    A worker restarted by a supervisor right after a crash may then take its name at
    once, instead of waiting for the heartbeat to expire.
    """
    here = process_key(os.getpid()).rsplit("/", 2)[0]
    if worker.hostname != hostname or not here or worker.process_key.rsplit("/", 2)[0] != here:
        return False  # another machine's (or container's) process: only its heartbeat can tell
    return process_key(worker.pid) != worker.process_key  # gone, or its pid is another's now


def make_node_root_private() -> None:
    """The node root holds every account's task directories (open to all inside, for the
    sandbox): it is the worker's alone, wherever it is (an NFS mount outside the data
    directory, say). So is the data directory (the database, the secret key), even one
    made by hand before the first start."""
    root = Path(settings.BATCHSITE_NODE_ROOT)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder, holds in ((root, "every account's task directories"), (Path(settings.DATA_DIR), "the service's data")):
        if not make_private(folder):
            log.warning("%s is open to others and not ours to close: %s can be read there", folder, holds)


def node_start(name: str, containment, *, account: str = "", pool: str = "",
               slots: int | None = None) -> tuple[NodeStart, Callable[[ComputeNode], bool]]:
    """Who a starting node is, for its row; and how to tell that an earlier process of its name is gone."""
    hostname = socket.gethostname()
    start = NodeStart(name=name, hostname=hostname, pid=os.getpid(), slots=slots, confined=containment.confined,
                      containment=containment.describe(), process_key=process_key(os.getpid()),
                      account=account, pool=pool, ip_address=ip_address(), agent_version=AGENT_VERSION,
                      provider=os.environ.get(PROVIDER_VARIABLE, ""))
    return start, partial(predecessor_is_dead, hostname=hostname)


AGENT_VERSION = "batchsite-1"
# Set by the allocator's provider in the environment of a node it starts (nodes.providers).
PROVIDER_VARIABLE = "BATCHSITE_NODE_PROVIDER"


def ip_address() -> str:
    """The address other machines reach this one at (the one its default route leaves from)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel only picks a route
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def database_open_to_tasks() -> str | None:
    """Why tasks on this worker could reach the database without its password, or None.

    Tasks have the network (as on Batch, to call the API back and fetch data), so a
    PostgreSQL server that lets this host in without a password (`trust`) lets them
    in too: the sandbox hides the credentials, not the port.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        return None
    # Imported here: psycopg is there only where the database is PostgreSQL.
    import psycopg

    saved = os.environ.pop("PGPASSWORD", None)
    try:
        with psycopg.connect(host=database.get("HOST") or "localhost", port=database.get("PORT") or 5432,
                             dbname=database["NAME"], user=database.get("USER") or None,
                             passfile="/dev/null", connect_timeout=3):
            pass
    except psycopg.Error:
        return None
    finally:
        if saved is not None:
            os.environ["PGPASSWORD"] = saved
    return (f"PostgreSQL at {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432} lets this host "
            f"in as {database.get('USER')!r} without a password, so every task on this worker can connect to it: "
            "require a password (scram-sha-256 in pg_hba.conf) for the worker machines")


class HostUsage:
    """What this host is using, sampled with each heartbeat: the latest and the last ten minutes.

    The node keeps its recent points itself and sends them all with each heartbeat (a
    few kilobytes), so the service stores one small value per node and no table of
    samples grows with the number of nodes.
    """

    KEEP = 120  # points: ten minutes at the default five-second heartbeat

    def __init__(self):
        import psutil  # imported here: only nodes sample their host

        self.psutil = psutil
        self.points: deque = deque(maxlen=self.KEEP)
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def sample(self) -> dict:
        cpu = self.psutil.cpu_percent(interval=None)
        memory = self.psutil.virtual_memory().percent
        load = os.getloadavg()[0]
        self.points.append([timezone.now().isoformat(timespec="seconds"), cpu, memory, round(load, 2)])
        return {"cpu": cpu, "memory": memory, "load": round(load, 2), "cores": os.cpu_count(),
                "points": list(self.points)}
