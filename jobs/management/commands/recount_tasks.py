from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from batchapi.ids import id_key
from jobs.models import Job
from tasks import counts


class Command(BaseCommand):
    help = ("Compare each job's task count rows with its task table and repair any drift "
            "(Batch's validationStatus). Exit status 1 when drift was found.")

    def add_arguments(self, parser):
        parser.add_argument("job", nargs="?", help="a job id (default: every job)")
        parser.add_argument("--check", action="store_true", help="report drift, repair nothing")

    def handle(self, *args, job=None, check=False, **options):
        jobs = Job.objects.order_by("pk").only("pk", "batch_id")
        if job:
            jobs = jobs.filter(key=id_key(job))
            if not jobs.exists():
                raise CommandError(f"no job {job!r}")
        drifted = 0
        for each in jobs.iterator():
            with transaction.atomic():
                stored, real = counts.recount(each.pk, repair=not check)
            if stored.same_counts(real):
                self.stdout.write(f"{each.batch_id}: ok {real.as_dict()}")
            else:
                drifted += 1
                action = "drift (not repaired)" if check else "drift repaired"
                self.stdout.write(f"{each.batch_id}: {action}: stored {stored.as_dict()} actual {real.as_dict()}")
        if drifted:
            raise SystemExit(1)
