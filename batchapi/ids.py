"""Batch ids: 1-64 letters, digits, hyphens and underscores; unique without regard to case."""

from django.core.validators import RegexValidator

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

batch_id_validator = RegexValidator(
    ID_PATTERN,
    "An id may contain only letters, digits, hyphens and underscores, and at most 64 of them.",
)


def id_key(batch_id: str) -> str:
    """The lookup key of an id: Batch ids keep their case but compare without it."""
    return batch_id.lower()
