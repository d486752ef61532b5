from django.core.management.base import BaseCommand

from tasks.worker import WorkerLoop, default_name


class Command(BaseCommand):
    help = "Run tasks: claim them, run their command lines, record how they end."

    def add_arguments(self, parser):
        parser.add_argument("--slots", type=int, default=1, help="tasks run at once (default 1)")
        parser.add_argument("--name", default="", help="node id (default: hostname-pid); unique among live workers")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds running tasks get to finish on SIGTERM/SIGINT before being requeued")
        parser.add_argument("--poll", type=float, default=0.5, help="seconds between looks for work when idle")
        parser.add_argument("--exit-when-idle", action="store_true", help="stop once no task is left to run")

    def handle(self, *args, slots, name, grace, poll, exit_when_idle, **options):
        if slots < 1:
            self.stderr.write("--slots must be at least 1")
            raise SystemExit(2)
        WorkerLoop(name=name or default_name(), slots=slots, grace=grace, poll_interval=poll,
                   exit_when_idle=exit_when_idle).run()
