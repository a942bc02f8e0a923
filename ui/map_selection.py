"""The Map page's selection state machine, as pure functions over the session state: AppTest cannot drag a box on
a chart, unit tests can call these.

The state (``st.session_state`` on the page, any mapping here):

* ``sel`` — the selection as its URL value (``?sel=``: ``box:…``, ``lasso:…``, ``near:INDEX``; ``""`` none);
* ``mpage`` — the grid's page, back to 1 whenever the selection changes;
* ``map_chart_version`` — part of the chart's widget key: a new key drops the selection plotly keeps on the chart;
* ``map_plain`` — the key of the figure the chart shows when that is the plain map (no outline drawn into it),
  else None;
* ``map_shown`` — (selection, plain figure key) when the chart itself shows that selection, drawn by the user on
  that plain figure: the page then shows the plain figure again instead of one with the outline, which would
  re-plot every point (1-2 s for 60k points in software WebGL, bench/map_timing.py) to show the same thing.

The events (:func:`on_select`, :func:`on_clear`) and :func:`resolve` return the updates for the page to apply.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .selection import map_selection_from_event, page_count, parse_map_selection

SEL, PAGE, VERSION, PLAIN, SHOWN = "sel", "mpage", "map_chart_version", "map_plain", "map_shown"
Selection = tuple[str, tuple[float, ...]]


def chart_key(state: Mapping[str, Any]) -> str:
    """The map chart's widget key."""
    return f"map_chart_{state.get(VERSION, 0)}"


def on_select(state: Mapping[str, Any], event: Mapping[str, Any] | None) -> dict[str, Any]:
    """A box or lasso drawn on the map (plotly's selection ``event``) becomes ``sel`` (a deep link reopens it); the
    grid starts at page 1. Drawn on the plain map, the chart already shows it (``map_shown``)."""
    chosen = map_selection_from_event(event)
    plain = state.get(PLAIN)
    return {SEL: chosen, PAGE: 1, SHOWN: (chosen, plain) if plain else None}


def on_clear(state: Mapping[str, Any]) -> dict[str, Any]:
    """"Clear": no selection, page 1, and a new chart key so the chart forgets the box it shows."""
    return {SEL: "", PAGE: 1, VERSION: state.get(VERSION, 0) + 1}


def shown_decisions(colour: str, decisions: Mapping[int, Any]) -> tuple[tuple[int, str], ...]:
    """The review decisions the map paints, as a hashable key of its figure: ((sample, decision), ...) sorted, for
    the ``decision`` colour only (any other colour ignores them, so a decision does not redraw the map)."""
    if colour != "decision":
        return ()
    return tuple(sorted((int(i), getattr(d, "decision", d)) for i, d in decisions.items()))


def figure_key(colour: str, draw: str, decisions: tuple[tuple[int, str], ...]) -> tuple:
    """What the plain map (without a selection) depends on."""
    return colour, draw, hash(decisions)


@dataclass(frozen=True)
class MapView:
    """What one run of the Map page shows for the selection ``chosen``.

    selection : the parsed selection when it names samples (else None: none, malformed, or an unknown index);
    members : the training samples it names, in grid order;
    outline : the box or lasso to draw into the figure, None when there is none or the chart already shows it;
    near : the sample whose nearest neighbours are ringed (a ``near:`` selection), else None;
    warning : what to tell the user about a selection that cannot be shown, else None.
    """

    chosen: str
    selection: Selection | None = None
    members: Sequence[int] = field(default_factory=tuple)
    outline: Selection | None = None
    near: int | None = None
    warning: str | None = None

    @property
    def is_near(self) -> bool:
        return self.near is not None


def resolve(state: Mapping[str, Any], chosen: str | None, figure: tuple,
            select: Callable[[str, tuple[float, ...]], Sequence[int]]) -> tuple[MapView, dict[str, Any]]:
    """The :class:`MapView` of selection ``chosen`` on the plain figure ``figure`` (:func:`figure_key`), and the
    state updates of this run. ``select(kind, numbers)`` lists the samples a parsed selection names and raises
    ValueError for one this dataset cannot show (``near:`` an index it does not have, from another dataset's link)."""
    chosen = chosen or ""
    parsed = parse_map_selection(chosen)
    members: Sequence[int] = ()
    warning = None
    if chosen and parsed is None:
        warning = (f"Selection `{chosen[:80]}` is not box:x0,x1,y0,y1, lasso:x1,y1,x2,y2,… or near:INDEX; drag on "
                   "the map to select.")
    elif parsed:
        try:
            members = select(*parsed)
        except ValueError as err:
            warning, parsed = f"Selection `{chosen[:80]}`: {err}", None
    near = int(parsed[1][0]) if parsed and parsed[0] == "near" else None
    outline = parsed if parsed and near is None else None
    if state.get(SHOWN) == (chosen, figure):
        outline = None  # the chart shows it already
    updates = {PLAIN: figure if outline is None and near is None else None}
    return MapView(chosen, parsed, members, outline, near, warning), updates


def grid_pages(view: MapView, n_rows: int, columns: int) -> tuple[int, int]:
    """(tiles per page, number of pages) of the grid under the map: ``n_rows`` rows of ``columns`` tiles, or one
    page holding a sample and all its neighbours."""
    size = max(len(view.members) if view.is_near else columns * int(n_rows), 1)
    return size, page_count(len(view.members), size)
