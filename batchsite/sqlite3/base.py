"""Django's SQLite backend, which also makes the database's folder when it is missing.

SQLite creates the database file but not the folder it goes in, and Django's
backend has no option to. The settings create nothing when imported, so the
folder (the data directory, by default) is made here, 0700, when a connection is
opened: by `migrate` on a fresh clone, or by the test run for its test database.
"""

from pathlib import Path

from django.conf import settings
from django.db.backends.sqlite3 import base

from tasks.rundirs import make_private


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.is_in_memory_db():
            folder = Path(conn_params["database"]).parent
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The data directory is the service's alone, even one made by hand (a folder
            # of the operator's own choosing, elsewhere, is left as it is).
            if folder == Path(settings.DATA_DIR):
                make_private(folder)
        return super().get_new_connection(conn_params)
