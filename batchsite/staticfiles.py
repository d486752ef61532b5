"""WhiteNoise as Batchsite runs it: every file from the finders, none collected first.

`make run` needs no collectstatic (WHITENOISE_USE_FINDERS), so STATIC_ROOT exists
only once someone runs collectstatic, which makes it. Until then WhiteNoise would
warn of the missing folder each time its middleware is built (every test
client builds one); there is nothing there to serve yet, so it is left out instead.
"""

import os

from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    def add_files(self, root, prefix=None):
        if self.autorefresh or os.path.isdir(root):
            super().add_files(root, prefix)
