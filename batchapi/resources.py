"""The wire shape Batch resources share: each resource's table of properties
(wire name -> (columns it reads, how it renders)) starts from the common part here.

A job and a task keep the same bookkeeping (`jobs.models.StateTracked`, plus a
Batch id and a display name), so they render it the same way; only their `url`
differs. The rows are read duck-typed: this layer imports no model.
"""

from typing import Callable

from .wire import iso

Render = Callable[[object, dict], object]  # (row, context) -> the property's wire value


def tracked_properties(url: Render) -> dict[str, tuple[tuple[str, ...], Render]]:
    """The properties of a resource with an id and a state history, in the wire's order;
    `url` renders the resource's own address."""
    return {
        "id": (("batch_id",), lambda r, ctx: r.batch_id),
        "displayName": (("display_name",), lambda r, ctx: r.display_name or None),
        "url": (("batch_id",), url),
        "eTag": (("last_modified",), lambda r, ctx: r.etag),
        "lastModified": (("last_modified",), lambda r, ctx: iso(r.last_modified)),
        "creationTime": (("creation_time",), lambda r, ctx: iso(r.creation_time)),
        "state": (("state",), lambda r, ctx: r.state),
        "stateTransitionTime": (("state_transition_time",), lambda r, ctx: iso(r.state_transition_time)),
        "previousState": (("previous_state",), lambda r, ctx: r.previous_state or None),
        "previousStateTransitionTime": (("previous_state_transition_time",),
                                        lambda r, ctx: iso(r.previous_state_transition_time)),
    }


def selected_columns(properties: dict, select: list[str] | None) -> set[str]:
    """The columns the selected properties (all, without $select) read."""
    return {col for name in (select or properties) if name in properties for col in properties[name][0]}


def render(properties: dict, row, ctx: dict, select: list[str] | None) -> dict:
    """The selected properties of `row` on the wire (stats, which $expand adds, aside)."""
    return {name: properties[name][1](row, ctx) for name in (select or properties) if name in properties}


def stats_wanted(select: list[str] | None, with_stats: bool) -> bool:
    """Whether the response carries stats: $expand asked, and $select (if any) keeps them."""
    return with_stats and (select is None or "stats" in select)
