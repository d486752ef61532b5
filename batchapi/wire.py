"""Values on Batch's wire: ISO 8601 in bodies, RFC 1123 in headers, ISO 8601 durations."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from django.utils.dateparse import parse_duration

# What the Batch service answers for "no limit": TimeSpan.MaxValue.
UNLIMITED_DURATION = "P10675199DT2H48M5.4775807S"
# Anything this long is "no limit" too (clients send TimeSpan.MaxValue or near it).
UNLIMITED_FROM = timedelta(days=10_000_000)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rfc1123(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


def duration(value: timedelta | None, *, unlimited: str | None = UNLIMITED_DURATION) -> str | None:
    """A stored duration on the wire; None (no limit) as Batch's maximum."""
    if value is None:
        return unlimited
    return iso_duration(value)


def iso_duration(value: timedelta) -> str:
    """The shortest ISO 8601 form, as .NET writes a TimeSpan: PT2H, P1DT30M, PT0.5S, PT0S."""
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or value.microseconds:
        fraction = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time += f"{seconds}{fraction}S"
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


def parse_wire_duration(text: str) -> timedelta | None:
    """An ISO 8601 duration from the wire; None means no limit. ValueError if malformed."""
    if not isinstance(text, str) or not text.upper().startswith(("P", "-P")):
        raise ValueError("expected an ISO 8601 duration such as PT1H30M")
    try:
        value = parse_duration(text.upper())
    except OverflowError:  # more days than a timedelta (or Batch's TimeSpan) holds
        raise ValueError("the duration is longer than the longest Batch accepts (about 10,675,199 days)") from None
    if value is None:
        raise ValueError("expected an ISO 8601 duration such as PT1H30M")
    if value < timedelta(0):
        raise ValueError("a duration cannot be negative")
    return None if value >= UNLIMITED_FROM else value


def drop_none(data: dict) -> dict:
    """Batch leaves absent properties out rather than sending null."""
    return {k: v for k, v in data.items() if v is not None}
