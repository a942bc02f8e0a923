"""The Map page's selection state machine (issue 22): pure functions over the session state, driven here as the page
drives them (AppTest cannot drag a box on a chart)."""
from types import SimpleNamespace

import pytest

from ui import map_selection as ms
from ui.selection import page_count

BOX_EVENT = {"points": [], "box": [{"x": [0.5, -1.0], "y": [2.0, 0.0]}], "lasso": []}
BOX = ("box", (-1.0, 0.5, 0.0, 2.0))
PLAIN = ms.figure_key("label", "points", ())


def select(kind, values):
    """A stand-in for ``explore_queries.select_samples`` on a dataset of 100 samples."""
    if kind == "near":
        if values[0] >= 100:
            raise ValueError(f"index {int(values[0])} is outside 0..99 of the train split.")
        return [int(values[0]), 7, 8]
    return [3, 1, 2]


def rerun(state, chosen=None, figure=PLAIN):
    """One run of the page: resolve the selection in the URL/session and apply the updates, as the page does."""
    view, updates = ms.resolve(state, state.get(ms.SEL, "") if chosen is None else chosen, figure, select)
    state.update(updates)
    return view


def test_no_selection_shows_the_plain_map_and_no_grid():
    state = {}
    view = rerun(state)
    assert (view.selection, view.outline, view.near, view.warning, list(view.members)) == (None, None, None, None, [])
    assert state[ms.PLAIN] == PLAIN  # the chart shows the plain map: a drag on it needs no redraw
    assert ms.chart_key(state) == "map_chart_0"


def test_a_box_dragged_on_the_plain_map_is_not_drawn_again():
    state = {ms.PAGE: 3}
    rerun(state)
    state.update(ms.on_select(state, BOX_EVENT))
    assert state[ms.SEL] == "box:-1,0.5,0,2" and state[ms.PAGE] == 1
    assert state[ms.SHOWN] == (state[ms.SEL], PLAIN)
    view = rerun(state)
    assert view.selection == BOX and list(view.members) == [3, 1, 2]
    assert view.outline is None  # the chart shows the user's box itself: no re-plot of every point
    assert state[ms.PLAIN] == PLAIN
    for _ in range(2):  # a grid page or a tile decision reruns the page: still the plain figure, same chart key
        assert rerun(state).outline is None and ms.chart_key(state) == "map_chart_0"


def test_a_changed_figure_or_a_deep_link_draws_the_outline():
    state = {}
    rerun(state)
    state.update(ms.on_select(state, BOX_EVENT))
    recoloured = ms.figure_key("importance", "points", ())
    view = rerun(state, figure=recoloured)  # a new figure does not carry the chart's box: outline it
    assert view.outline == BOX and state[ms.PLAIN] is None
    state.update(ms.on_select(state, {"box": [{"x": [0, 1], "y": [0, 1]}]}))  # dragged on the outlined figure
    assert state[ms.SHOWN] is None
    assert rerun(state, figure=recoloured).outline == ("box", (0.0, 1.0, 0.0, 1.0))
    linked = {}  # a fresh session opened from a link with ?sel=
    assert rerun(linked, chosen="box:-1,0.5,0,2").outline == BOX and linked[ms.PLAIN] is None


def test_near_rings_the_neighbours_on_one_grid_page():
    state = {}
    view = rerun(state, chosen="near:42")
    assert view.is_near and view.near == 42 and view.outline is None and list(view.members) == [42, 7, 8]
    assert state[ms.PLAIN] is None  # the figure carries the rings
    assert ms.grid_pages(view, n_rows=1, columns=4) == (3, 1)


def test_unusable_selections_warn_and_show_no_grid():
    garbled = rerun({}, chosen="box:1,2")
    assert garbled.selection is None and "is not box:x0,x1,y0,y1" in garbled.warning
    unknown = rerun({}, chosen="near:500")  # a link from a larger dataset
    assert unknown.selection is None and unknown.near is None and "outside 0..99" in unknown.warning
    assert list(unknown.members) == []


def test_clear_forgets_the_selection_and_the_charts_own_box():
    state = {}
    rerun(state)
    state.update(ms.on_select(state, BOX_EVENT))
    rerun(state)
    state[ms.PAGE] = 2
    state.update(ms.on_clear(state))
    assert state[ms.SEL] == "" and state[ms.PAGE] == 1 and ms.chart_key(state) == "map_chart_1"
    assert rerun(state).selection is None
    state.update(ms.on_select(state, {"box": [], "lasso": []}))  # plotly's event when the user deselects
    assert state[ms.SEL] == ""


def test_the_map_redraws_for_decisions_only_when_coloured_by_them():
    decided = {5: SimpleNamespace(decision="ok"), 2: SimpleNamespace(decision="remove")}
    assert ms.shown_decisions("label", decided) == ()
    assert ms.shown_decisions("decision", decided) == ((2, "remove"), (5, "ok"))
    assert ms.shown_decisions("decision", {1: "mislabeled"}) == ((1, "mislabeled"),)
    assert ms.figure_key("label", "image", ()) != ms.figure_key("label", "points", ())
    assert ms.figure_key("decision", "points", ((2, "ok"),)) != ms.figure_key("decision", "points", ((2, "remove"),))


@pytest.mark.parametrize("members, rows, expected", [(range(9), 2, (8, 2)), (range(8), 2, (8, 1)),
                                                     ((), 2, (8, 1)), (range(9), 0, (1, 9))])
def test_grid_pages_of_a_box(members, rows, expected):
    view = ms.MapView("box:0,1,0,1", BOX, tuple(members))
    assert ms.grid_pages(view, n_rows=rows, columns=4) == expected


def test_page_count():
    assert [page_count(n, 4) for n in (0, 1, 4, 5)] == [1, 1, 1, 2] and page_count(3, 0) == 3
