"""Conditional requests on jobs and tasks: If-Match, If-None-Match, If-Modified-Since,
If-Unmodified-Since, as the Batch REST API honours them.

A read whose If-None-Match matches, or whose entity is not newer than
If-Modified-Since, is answered 304 Not Modified. Any other failed condition, and
any failed condition on a write, is 412 ConditionNotMet, and nothing changes.
ETags match with or without their quotes (clients send both) and `*` matches
any entity. HTTP dates carry whole seconds, so times compare to the second.
"""

from datetime import UTC
from email.utils import parsedate_to_datetime

from .errors import BatchError


def _tags(header: str) -> set[str]:
    tags = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tags.add(tag.strip('"').upper())
    return tags - {""}


def _date(header: str | None):
    if not header:
        return None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError, OverflowError):
        return None  # an unreadable date is ignored, as HTTP says
    # "-0000" (RFC 2822: the zone is unknown) parses without one; HTTP dates are GMT.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def evaluate(headers, *, etag: str, last_modified, read: bool) -> bool:
    """True if a read may answer 304; raises ConditionNotMet (412) for a failed condition."""
    etag = etag.upper()
    modified = last_modified.replace(microsecond=0)
    if_match = headers.get("If-Match")
    if if_match and "*" not in _tags(if_match) and etag not in _tags(if_match):
        raise condition_not_met()
    unmodified_since = _date(headers.get("If-Unmodified-Since"))
    if unmodified_since and modified > unmodified_since:
        raise condition_not_met()
    if_none_match = headers.get("If-None-Match")
    if if_none_match and ("*" in _tags(if_none_match) or etag in _tags(if_none_match)):
        if read:
            return True
        raise condition_not_met()
    modified_since = _date(headers.get("If-Modified-Since"))
    if modified_since and not if_none_match and modified <= modified_since:
        if read:
            return True
        raise condition_not_met()
    return False


def condition_not_met() -> BatchError:
    return BatchError("ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.", 412)
