"""Blob containers move from the storage's top level into their account's folder.

Until now every account shared one set of containers (<storage>/<container>/…);
each account now has its own (<storage>/<account>/<container>/…). The containers
that existed were the default account's (the only one there was before accounts,
and the one `make run` uses), so they move there.

Only for the folder storage Batchsite ships with; another backend is left as it
is, and says so. A marker file in the storage makes the move happen once, also
when more than one database (a test database, say) migrates over the same folder.
"""

import logging
import os
import uuid
from pathlib import Path

from django.conf import settings
from django.db import migrations

MARKER = ".containers-per-account"
log = logging.getLogger("batchsite.migrations")


def move_containers(apps, schema_editor):
    storage = settings.STORAGES.get("batchsite", {})
    if storage.get("BACKEND") != "django.core.files.storage.FileSystemStorage":
        log.warning("blob storage %s: move its containers under %s/ yourself", storage.get("BACKEND"),
                    settings.BATCHSITE_DEFAULT_ACCOUNT)
        return
    root = Path((storage.get("OPTIONS") or {}).get("location") or settings.BATCHSITE_STORAGE_ROOT)
    if (root / MARKER).exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    containers = [entry for entry in root.iterdir() if not entry.name.startswith(".")]
    if containers:
        # Through a fresh folder: a container may bear the default account's name.
        moving = root / f".moving-{uuid.uuid4().hex}"
        moving.mkdir()
        for entry in containers:
            os.rename(entry, moving / entry.name)
        os.rename(moving, root / settings.BATCHSITE_DEFAULT_ACCOUNT)
    (root / MARKER).write_text("containers live in <account>/<container>\n")


class Migration(migrations.Migration):
    dependencies = [("tasks", "0012_worker_containment")]
    operations = [migrations.RunPython(move_containers, migrations.RunPython.noop)]
