"""Blob containers move from the storage's top level into their account's folder.

Until now every account shared one set of containers (<storage>/<container>/…);
each account now has its own (<storage>/<account>/<container>/…). The containers
that existed were the default account's (the only one there was before accounts,
and the one `make run` uses), so they move there.

Only for the folder storage Batchsite ships with; another backend is left as it
is, and says so. A marker file in the storage makes the move happen once, also
when more than one database (a test database, say) migrates over the same folder.
"""

import fcntl
import logging
import os
import re
import uuid
from pathlib import Path

from django.conf import settings
from django.db import migrations

MARKER = ".containers-per-account"
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")  # as tasks.file_specs has it, frozen here
log = logging.getLogger("batchsite.migrations")


def move_containers(apps, schema_editor):
    storage = settings.STORAGES.get("batchsite", {})
    if storage.get("BACKEND") != "django.core.files.storage.FileSystemStorage":
        log.warning("blob storage %s: move its containers under %s/ yourself", storage.get("BACKEND"),
                    settings.BATCHSITE_DEFAULT_ACCOUNT)
        return
    root = Path((storage.get("OPTIONS") or {}).get("location") or settings.BATCHSITE_STORAGE_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    # One mover at a time (two databases migrating at once over the same folder).
    with open(root / ".containers-moving.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / MARKER).exists():
            return
        # A move cut short (a crash) left its folder: it is finished, not begun anew.
        moving = next((entry for entry in root.iterdir() if entry.name.startswith(".moving-")), None)
        if moving is None:
            moving = root / f".moving-{uuid.uuid4().hex}"
            moving.mkdir()
        # Containers only (the names staging accepts): anything else stays where it is.
        for entry in root.iterdir():
            if entry.is_dir() and not entry.is_symlink() and CONTAINER_NAME.fullmatch(entry.name):
                os.rename(entry, moving / entry.name)
        if any(moving.iterdir()):
            os.rename(moving, root / settings.BATCHSITE_DEFAULT_ACCOUNT)
        else:
            moving.rmdir()
        (root / MARKER).write_text("containers live in <account>/<container>\n")


class Migration(migrations.Migration):
    dependencies = [("tasks", "0012_worker_containment")]
    operations = [migrations.RunPython(move_containers, migrations.RunPython.noop)]
