"""How a worker is told to stop: SIGTERM or SIGINT, counted and nothing more.

The handler runs between any two bytecodes of the loop, in the middle of a
transaction or with the logging lock held, so it only counts; the loop looks at
the count in its next step. A count, not a flag: a second signal means "requeue
now", even when both arrive before the loop looks.
"""

import signal


class StopSignals:
    def __init__(self):
        self.count = 0
        self.seen = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self.handler)
        signal.signal(signal.SIGINT, self.handler)

    def handler(self, signum, frame) -> None:
        self.count += 1

    def take(self) -> int:
        """How many arrived since the last look."""
        new, self.seen = self.count - self.seen, self.count
        return new
