import re

from django.core.management.base import BaseCommand, CommandError

from nodes.agent import WorkerLoop
from nodes.host import database_open_to_tasks, default_name
from nodes.sandbox import Containment, ContainmentUnavailable
from pools.models import NODE_NAME
from pools.services.nodes import NodeNameTaken, NoSuchPool

UNCONFINED_WARNING = """
  ***************************************************************************
  *  TASKS RUN UNCONFINED on this worker: {why}
  *  Every task can read and change the database, the secret key and every
  *  account's files. Install bubblewrap (apt-get install bubblewrap) and
  *  restart the worker to sandbox them.
  ***************************************************************************
"""


class Command(BaseCommand):
    help = "Run tasks: claim them, run their command lines in a sandbox, record how they end."

    def add_arguments(self, parser):
        parser.add_argument("--pool", default="", help="the pool this node joins (default: BATCHSITE_DEFAULT_POOL, "
                                                       "'local'); made if missing where BATCHSITE_AUTO_POOLS allows")
        parser.add_argument("--account", default="", help="the pool's Batch account (default: "
                                                          "BATCHSITE_DEFAULT_ACCOUNT)")
        parser.add_argument("--slots", type=int, default=None,
                            help="tasks run at once (default: the pool's taskSlotsPerNode)")
        parser.add_argument("--name", default="", help="node id (default: hostname-pid); unique among live nodes")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds running tasks get to finish on SIGTERM/SIGINT before being requeued")
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks for work when idle")
        parser.add_argument("--exit-when-idle", action="store_true", help="stop once no task is left to run")
        parser.add_argument("--allow-unconfined", action="store_true",
                            help="where tasks cannot be sandboxed, run them anyway as this worker's user "
                                 "(they can then read everything the worker can: not for untrusted tasks)")

    def handle(self, *args, pool, account, slots, name, grace, poll, exit_when_idle, allow_unconfined, **options):
        name = name or default_name()
        if not re.match(NODE_NAME, name):
            raise CommandError(f"--name {name!r}: a node's id is 1 to 128 letters, digits, '_', '-' and '.', "
                               "not starting with '.'")
        if slots is not None and slots < 1:
            raise CommandError("--slots must be at least 1")
        try:
            containment = Containment.for_worker(allow_unconfined=allow_unconfined)
        except ContainmentUnavailable as why:
            raise CommandError(f"tasks cannot be sandboxed here: {why}. Fix that, or start the worker with "
                               "--allow-unconfined (BATCHSITE_ALLOW_UNCONFINED_TASKS=1) to run them "
                               "unconfined.") from None
        if not containment.confined:
            self.stderr.write(UNCONFINED_WARNING.format(why=containment.why_unconfined))
        elif open_database := database_open_to_tasks():
            self.stderr.write(f"\n  WARNING: {open_database}.\n\n")
        loop = WorkerLoop(name=name, pool=pool, account=account, slots=slots, grace=grace,
                          poll_interval=poll,
                          exit_when_idle=exit_when_idle, containment=containment)
        try:
            loop.run()
        except (NodeNameTaken, NoSuchPool) as refused:
            raise CommandError(str(refused)) from None
