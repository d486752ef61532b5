from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from batchapi.ids import id_key
from pools import node_counts
from pools.models import Pool


class Command(BaseCommand):
    help = ("Compare each pool's node count rows (List Pool Node Counts) with its node table and repair any "
            "drift. Exit status 1 when drift was found.")

    def add_arguments(self, parser):
        parser.add_argument("pool", nargs="?", help="a pool id (default: every pool)")
        parser.add_argument("--check", action="store_true", help="report drift, repair nothing")

    def handle(self, *args, pool=None, check=False, **options):
        pools = Pool.objects.order_by("pk").select_related("account").only("pk", "batch_id", "account__name")
        if pool:
            pools = pools.filter(key=id_key(pool))
            if not pools.exists():
                raise CommandError(f"no pool {pool!r}")
        drifted = 0
        for each in pools.iterator():
            with transaction.atomic():
                stored, real = node_counts.recount(each.pk, repair=not check)
            shown = {kind: {s: n for s, n in counts.as_dict().items() if n}
                     for kind, counts in zip(("dedicated", "lowPriority"), real)}
            if [c.as_dict() for c in stored] == [c.as_dict() for c in real]:
                self.stdout.write(f"{each.account.name}/{each.batch_id}: ok {shown}")
            else:
                drifted += 1
                action = "drift (not repaired)" if check else "drift repaired"
                was = {kind: {s: n for s, n in counts.as_dict().items() if n}
                       for kind, counts in zip(("dedicated", "lowPriority"), stored)}
                self.stdout.write(f"{each.account.name}/{each.batch_id}: {action}: stored {was} actual {shown}")
        if drifted:
            raise SystemExit(1)
