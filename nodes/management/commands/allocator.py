from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import default_account
from nodes.allocator import Allocator
from nodes.providers.local import LocalProvider
from pools.services.lifecycle import ensure_pool, ensure_pools_of_open_jobs


class Command(BaseCommand):
    help = ("Give every pool the nodes its targets ask for: start worker processes for missing nodes "
            "(provider `local`: on this machine), let extra ones drain and leave, replace lost ones.")

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds (default 1)")
        parser.add_argument("--allow-unconfined", action="store_true",
                            help="start workers with --allow-unconfined (where tasks cannot be sandboxed)")
        parser.add_argument("--worker-arg", action="append", default=[],
                            help="one more argument for every worker started (repeatable), e.g. --worker-arg=--grace=5")

    def handle(self, *args, interval, allow_unconfined, worker_arg, **options):
        default = ensure_pool(default_account(), settings.BATCHSITE_DEFAULT_POOL)
        if made := ensure_pools_of_open_jobs():  # jobs from before pools name pools nobody made
            self.stdout.write(f"made {made} pool(s) that open jobs name")
        self.stdout.write(f"default pool {default.batch_id}: {default.target_dedicated_nodes} node(s) of "
                          f"{default.task_slots_per_node} slot(s)")
        extra = tuple(worker_arg) + (("--allow-unconfined",) if allow_unconfined else ())
        Allocator({"local": LocalProvider(extra_args=extra)}, interval=interval).run()
