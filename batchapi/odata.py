"""$filter and $select, as the Batch service reads them.

$filter is parsed by a grammar (lark), then compiled to a Django Q against a
table of the properties each resource supports. Property names are
case-sensitive, string values are not (Batch compares them without case).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Callable

from django.db.models import Q
from django.utils.dateparse import parse_datetime
from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import LarkError, VisitError

from .errors import invalid_query
from .ids import key_prefix

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | atom
?atom: comparison
     | "startswith" "(" PROPERTY "," value ")" -> startswith
     | "(" or_expr ")"
comparison: PROPERTY OPERATOR value
?value: STRING -> string
      | DATETIME -> datetime
      | NUMBER -> number
      | BOOLEAN -> boolean

_OR.2: /or\b/
_AND.2: /and\b/
_NOT.2: /not\b/
OPERATOR.2: /(eq|ne|gt|ge|lt|le)\b/
BOOLEAN.2: /(true|false)\b/
DATETIME.3: /DateTime'[^']*'/i
PROPERTY: /[A-Za-z_][A-Za-z0-9_]*(\/[A-Za-z_][A-Za-z0-9_]*)*/
STRING: /'([^']|'')*'/
NUMBER: /-?\d+/

%import common.WS
%ignore WS
"""

_parser = Lark(GRAMMAR, parser="lalr")

# A filter's size, bounded: SQLite refuses SQL nested over 1,000 deep (and a chain of
# n ors nests n deep there), and turning the tree into a Q recurses once a level.
MAX_FILTER_TERMS = 256  # comparisons and startswith calls
MAX_FILTER_DEPTH = 32  # and / or / not nested in one another

OPERATORS = {"eq": "exact", "gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}


@dataclass(frozen=True)
class Prop:
    """A filterable property: its column and how a literal becomes a value of it."""

    field: str
    kind: str  # "string" (compared lower-cased), "enum", "int", "datetime", "bool"
    convert: Callable | None = None  # literal -> stored value
    choices: tuple = ()  # for enums: the values that exist

    def value(self, literal, name: str):
        expected = {"string": str, "enum": str, "int": int, "datetime": datetime, "bool": bool}[self.kind]
        if not isinstance(literal, expected) or (expected is int and isinstance(literal, bool)):
            raise ValueError(f"{name} is compared with {self.kind} values")
        if isinstance(literal, str):
            literal = literal.lower()
        if self.choices and literal not in self.choices:
            raise ValueError(f"{literal!r} is not a value of {name} (one of {', '.join(self.choices)})")
        return self.convert(literal) if self.convert else literal


class _ToQ(Transformer):
    def __init__(self, props: dict[str, Prop]):
        super().__init__()
        self.props = props

    def prop(self, token: Token) -> Prop:
        name = str(token)
        if name not in self.props:
            raise ValueError(f"the property {name} is not supported in $filter here")
        return self.props[name]

    def string(self, items):
        return items[0][1:-1].replace("''", "'")

    def number(self, items):
        return int(items[0])

    def boolean(self, items):
        return items[0] == "true"

    def datetime(self, items):
        text = items[0][len("DateTime'"):-1]
        moment = parse_datetime(text)
        if moment is None:
            try:
                moment = parsedate_to_datetime(text)  # RFC 1123
            except (TypeError, ValueError):
                raise ValueError(f"{text!r} is not a date and time") from None
        try:  # in UTC now: 9999-12-31T23:59-01:00 is past the last date the columns hold
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise ValueError(f"{text!r} is out of the range of dates") from None

    def comparison(self, items):
        name, operator, literal = items
        prop = self.prop(name)
        value = prop.value(literal, str(name))
        if operator == "ne":
            return ~Q(**{prop.field: value})
        if operator != "eq" and prop.kind in ("enum", "bool"):
            raise ValueError(f"{name} can only be compared with eq or ne")
        return Q(**{f"{prop.field}__{OPERATORS[str(operator)]}": value})

    @v_args(inline=True)
    def startswith(self, name, literal):
        prop = self.prop(name)
        if prop.kind != "string":
            raise ValueError(f"startswith needs a string property, not {name}")
        return key_prefix(prop.field, prop.value(literal, str(name)))

    def or_expr(self, items):
        q = items[0]
        for item in items[1:]:
            q |= item
        return q

    def and_expr(self, items):
        q = items[0]
        for item in items[1:]:
            q &= item
        return q

    @v_args(inline=True)
    def negation(self, q):
        return ~q


def parse_filter(text: str, props: dict[str, Prop]) -> Q:
    """$filter text to a Q; InvalidQueryParameterValue (400) naming what is wrong."""
    try:
        tree = _parser.parse(text)
        terms, depth = _size(tree)
        if terms > MAX_FILTER_TERMS or depth > MAX_FILTER_DEPTH:
            raise invalid_query("$filter", text, f"the filter is too complex: at most {MAX_FILTER_TERMS} "
                                f"comparisons, nested at most {MAX_FILTER_DEPTH} deep")
        return _ToQ(props).transform(tree)
    except VisitError as exc:
        raise invalid_query("$filter", text, str(exc.orig_exc)) from None
    except LarkError as exc:
        raise invalid_query("$filter", text, f"the filter is not well formed: {_first_line(exc)}") from None


def parse_name_prefix(text: str | None) -> str:
    """A file list's $filter: Batch filters files on startswith(name, '...') only. The prefix
    ("" without a filter), compared as written: file names are case-sensitive."""
    if text is None or not text.strip():
        return ""
    try:
        tree = _parser.parse(text)
    except LarkError as exc:
        raise invalid_query("$filter", text, f"the filter is not well formed: {_first_line(exc)}") from None
    name, value = tree.children if tree.data == "startswith" else (None, None)
    if str(name) != "name" or not isinstance(value, Tree) or value.data != "string":
        raise invalid_query("$filter", text, "files are filtered with startswith(name, 'prefix') only")
    return value.children[0][1:-1].replace("''", "'")


def _size(tree: Tree) -> tuple[int, int]:
    """(comparisons, depth) of a parsed filter, walked without recursion."""
    terms, deepest, stack = 0, 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if node.data in ("comparison", "startswith"):
            terms += 1
        else:
            stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return terms, deepest


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def parse_select(text: str | None, known: set[str], nested: dict[str, set[str]] | None = None) -> list[str] | None:
    """$select as a list of top-level property names; None when absent.

    Nested paths ("executionInfo/exitCode") select within a property (`project`
    cuts the response down); where `nested` knows a property's members, an
    unknown one is refused like an unknown property.
    """
    if text is None or not text.strip():
        return None
    names = [name.strip() for name in text.split(",")]
    for name in names:
        parts = name.split("/")
        if parts[0] not in known or (len(parts) > 1 and parts[0] in (nested or {})
                                     and parts[1] not in nested[parts[0]]) or "" in parts:
            raise invalid_query("$select", text, f"the property {name or '(empty)'} does not exist")
    return list(dict.fromkeys(name.split("/")[0] for name in names))


def parse_expand(text: str | None) -> bool:
    """$expand: Batch expands only `stats`. Whether it was asked for."""
    if text is None or not text.strip():
        return False
    names = {name.strip() for name in text.split(",")}
    if names - {"stats"}:
        raise invalid_query("$expand", text, f"only stats can be expanded, not {sorted(names - {'stats'})[0]}")
    return True


def selection(select_text: str | None, expand_text: str | None, properties: dict,
              nested: dict[str, set[str]]) -> tuple[list[str] | None, bool]:
    """($select's top-level names, whether $expand asks for stats), both checked against a
    resource's `properties` and the members of its structured ones (`nested`)."""
    with_stats = parse_expand(expand_text)
    known = set(properties) | ({"stats"} if with_stats else set())
    return parse_select(select_text, known, nested), with_stats


def project(item: dict, text: str | None) -> dict:
    """Cut nested properties down to the paths $select named ("executionInfo/exitCode").

    A top-level name keeps its whole value; `parse_select` has checked the names.
    """
    if not text or "/" not in text:
        return item
    return _pick(item, [tuple(name.strip().split("/")) for name in text.split(",")])


def _pick(value: dict, paths: list[tuple[str, ...]]) -> dict:
    picked = {}
    for key in dict.fromkeys(path[0] for path in paths):
        if key not in value:
            continue
        deeper = [path[1:] for path in paths if path[0] == key]
        whole = any(not rest for rest in deeper) or not isinstance(value[key], dict)
        picked[key] = value[key] if whole else _pick(value[key], deeper)
    return picked
