"""What Batchsite accepts from outside: text both databases can store and every response can render.

Three kinds of input broke reads or hung requests before they were refused here:
- NUL: PostgreSQL refuses it in text and in jsonb, so a query or an insert that
  carries one fails at the database (SQLite stores it, and the two would differ);
- a lone surrogate (U+D800..U+DFFF alone, as JSON's "\\ud800" decodes): no UTF-8
  encoder writes one, so a response echoing or reading it back could not be sent;
- nesting without end: Python's json recursion gives up near 1,000 levels.

The middleware (`batchapi.middleware`) applies `bad_text` to the path, the query,
the headers and form fields of every request; the API's JSON parser applies
`check_json` to bodies; the live pages apply `parse_message` to their sockets'
messages. Each walk is iterative, so no input can make it recurse.
"""

import json
import re

# The deepest JSON a body or a message may nest: Batch's own resources nest 5 deep
# (e.g. outputFiles[].destination.container.uploadHeaders[].name); 64 leaves room.
MAX_JSON_DEPTH = 64

# Integer columns (IntegerField) hold 32 bits on every database, and Batch's wire
# types are int32 for every integer property Batchsite takes (priority,
# maxParallelTasks, maxTaskRetryCount, requiredSlots, taskIdRanges).
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# BigIntegerField and the primary keys.
INT64_MAX = 2**63 - 1

_BAD = re.compile("[\x00\ud800-\udfff]")


def bad_text(text: str) -> str | None:
    """Why `text` cannot be taken (a NUL or a lone surrogate), or None when it can."""
    found = _BAD.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000)"
    return f"contains a lone surrogate (U+{ord(found.group()):04X}), which is no character"


def shown(text: str) -> str:
    """`text` with NULs and lone surrogates written as \\uXXXX escapes, safe to echo in any response."""
    return _BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class UnusableJSON(ValueError):
    """JSON that parses, but that Batchsite will not store: says where and why."""

    def __init__(self, where: str, reason: str, *, in_value: bool = False):
        super().__init__(f"{where}: {reason}" if where else reason)
        # in_value: a string value is at fault (a property's value), not the structure.
        self.where, self.reason, self.in_value = where, reason, in_value


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:32]} is too large")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH):
    """Parse JSON as Batchsite takes it, then `check_json` it.

    Refuses NaN and Infinity (not JSON) and numbers too large for a float.
    ValueError (UnusableJSON for what parses but is refused) when it is not.
    """
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # the C parser stops near 1,000 levels: deeper than ever allowed
        raise UnusableJSON("", f"nested more than {max_depth} levels deep") from None
    check_json(value, max_depth=max_depth)
    return value


def check_json(value, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise UnusableJSON for a string (or key) with a NUL or a lone surrogate, or too deep a nesting.

    Iterative, so a value of any depth is checked without recursion.
    """
    stack = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            if reason := bad_text(item):
                raise UnusableJSON(where, reason, in_value=True)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise UnusableJSON(where, f"nested more than {max_depth} levels deep")
            if isinstance(item, list):
                stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
                continue
            for key, v in item.items():
                inner = f"{where}.{key}" if where else str(key)
                if reason := bad_text(key):
                    raise UnusableJSON(shown(inner), "the property name " + reason)
                stack.append((v, inner, depth + 1))


def parse_message(text: str | None) -> dict | None:
    """A live page's socket message as an object, or None for anything else (never an exception)."""
    if not isinstance(text, str):
        return None
    try:
        message = loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def bounded_int(value, *, low: int, high: int) -> int | None:
    """`value` as an int within [low, high] when it is one (or decimal digits of one), else None.

    For untrusted numbers that need no error message: a socket's offsets and row ids.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 20):
            return None
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None
