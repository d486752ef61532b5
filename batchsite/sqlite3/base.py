"""Django's SQLite backend, which also makes the database's folder when it is missing.

SQLite creates the database file but not the folder it goes in, and Django's
backend has no option to. The settings create nothing when imported, so the
folder (the data directory, by default) is made here, 0700, when a connection is
opened: by `migrate` on a fresh clone, or by the test run for its test database.
"""

from pathlib import Path

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        if not self.is_in_memory_db():
            Path(conn_params["database"]).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
