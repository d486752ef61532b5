"""varchar_pattern_ops indexes for id-prefix searches on PostgreSQL (see batchapi.ids.key_prefix).

PostgreSQL only: its B-tree indexes in a language collation cannot serve LIKE
'prefix%'. SQLite searches by range on its existing indexes and needs none.
"""

from django.db import migrations

INDEXES = [
    ("task_key_prefix", "tasks_task", "job_id, key varchar_pattern_ops"),
    ("job_key_prefix", "jobs_job", "key varchar_pattern_ops"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, table, columns in INDEXES:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, _, _ in INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("tasks", "0005_list_filter_indexes"),
    ]

    operations = [migrations.RunPython(create, drop)]
