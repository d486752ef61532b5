"""Batch ids: 1-64 letters, digits, hyphens and underscores; unique without regard to case."""

from django.core.validators import RegexValidator
from django.db import connection
from django.db.models import Q

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

batch_id_validator = RegexValidator(
    ID_PATTERN,
    "An id may contain only letters, digits, hyphens and underscores, and at most 64 of them.",
)


def id_key(batch_id: str) -> str:
    """The lookup key of an id: Batch ids keep their case but compare without it."""
    return batch_id.lower()


def find_by_id(rows, batch_id: str, *, only=None):
    """The row of `rows` (a queryset of a resource with a `key`) with this Batch id, or None."""
    rows = rows.filter(key=id_key(batch_id))
    return (rows.only(*only) if only else rows).first()


def key_prefix(column: str, prefix: str) -> Q:
    """`column` (an id key) starts with `prefix`, in the form an index serves on this database.

    PostgreSQL: LIKE 'prefix%', which the varchar_pattern_ops indexes on the keys
    serve (a range would follow the database's language collation, where '-' may
    sort as if absent). SQLite compares bytes (BINARY), so a range is exact
    there, and its LIKE, case-insensitive by default, could use no index.
    """
    if connection.vendor == "postgresql":
        return Q(**{f"{column}__startswith": prefix})
    return Q(**{f"{column}__gte": prefix, f"{column}__lt": prefix + "\U0010ffff"})
