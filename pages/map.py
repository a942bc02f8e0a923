import streamlit as st

from coreclean.analysis import explore_queries as explore
from coreclean.review import log as review
from ui import map_figures, review_grid, selection, state, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Map")
if not explore.has_exploration(analysis):
    st.info("This analysis was built before the exploration stage (map, neighbours, duplicates): delete it and "
            "build again to add them.")
    st.stop()
log = state.current_log()
COLUMNS = 4
widgets.notice_invalid("colour", explore.COLOUR_FIELDS)
widgets.notice_invalid("draw", map_figures.DRAW_MODES)


def take_selection() -> None:
    """A box or lasso drawn on the map becomes ``?sel=`` (a deep link reopens it); the grid starts at page 1."""
    st.session_state["sel"] = selection.map_selection_from_event(st.session_state[chart_key()].selection)
    st.session_state["mpage"] = 1
    # A chart showing the plain map already shows this selection: redrawing the figure with its outline would
    # re-plot every point (1-2 s for 60k points in software WebGL, bench/map_timing.py) to show the same thing.
    plain = st.session_state.get("map_plain")
    st.session_state["map_shown"] = (st.session_state["sel"], plain) if plain else None


def clear_selection() -> None:
    st.session_state["sel"] = ""
    st.session_state["mpage"] = 1
    st.session_state["map_chart_version"] = st.session_state.get("map_chart_version", 0) + 1  # drop its selection


def chart_key() -> str:
    return f"map_chart_{st.session_state.get('map_chart_version', 0)}"


@st.cache_resource(show_spinner=False, max_entries=16)
def plain_map(_analysis, directory: str, colour: str, decisions: tuple[tuple[int, str], ...], draw: str):
    """The map's figure for ``_analysis`` (stored in ``directory``; not hashed), built once per colour field, shown
    decisions (the decision colour only) and draw mode: a rerun for a selection or a grid page reuses it (painting
    60k points into an image took 0.1-0.3 s, colouring WebGL traces 10-45 ms)."""
    rows, xy = explore.map_points(_analysis)
    paint = explore.map_colour(_analysis, colour, rows, dict(decisions))
    return map_figures.map_figure(xy, rows, paint.values, paint.categories, paint.title, draw=draw)


def map_chart(analysis, colour: str, decisions: tuple[tuple[int, str], ...], outline, near: int | None,
              draw: str):
    """The plain map, or a copy of it with the selection outlined and ``near``'s neighbours ringed."""
    plain_figure = plain_map(analysis, str(analysis.directory), colour, decisions, draw)
    if outline is None and near is None:
        return plain_figure
    ringed = explore.map_positions(analysis, explore.select_samples(analysis, "near", (near,))) \
        if near is not None else None
    return map_figures.with_selection(plain_figure, selection=outline, highlight=ringed,
                                      n_points=len(explore.map_points(analysis)[0]), draw=draw)


rows = explore.map_points(analysis)[0]
top = st.columns([2, 2, 4, 1])
colour = top[0].selectbox("Colour by", explore.COLOUR_FIELDS, key="colour", bind="query-params",
                          help="importance is normalized within each class; outlier is the score's percentile.")
modes = map_figures.DRAW_MODES
draw = top[1].radio("Draw", modes, index=modes.index(map_figures.default_draw(len(rows))), key="draw",
                    bind="query-params", horizontal=True,
                    help="points: WebGL markers with hover; image: the points as one picture, fast past tens of "
                         "thousands of points, no hover. Selections work the same in both.")
chosen = top[2].text_input("Selection", key="sel", bind="query-params", placeholder="drag a box or lasso on the map",
                           help="Set by dragging on the map (box, or lasso from the chart's toolbar); also "
                                "`near:INDEX` for a sample and its nearest neighbours.")
top[3].button("Clear", on_click=clear_selection, disabled=not chosen, help="Forget the selection.")
parsed = selection.parse_map_selection(chosen)
members = []
if chosen and parsed is None:
    st.warning(f"Selection `{chosen[:80]}` is not box:x0,x1,y0,y1, lasso:x1,y1,x2,y2,… or near:INDEX; "
               "drag on the map to select.")
elif parsed:
    try:
        members = explore.select_samples(analysis, *parsed)
    except ValueError as err:  # near: an index this dataset does not have (a link from another dataset)
        st.warning(f"Selection `{chosen[:80]}`: {err}")
        parsed = None

decided = log.current()
outline = parsed if parsed and parsed[0] != "near" else None
near = int(parsed[1][0]) if parsed and parsed[0] == "near" else None
shown_decisions = tuple(sorted((i, d.decision) for i, d in decided.items())) if colour == "decision" else ()
plain = (colour, draw, hash(shown_decisions))  # the figure sans selection
if st.session_state.get("map_shown") == (chosen, plain):
    outline = None  # drawn by the chart itself
st.session_state["map_plain"] = plain if outline is None and near is None else None
st.plotly_chart(map_chart(analysis, colour, shown_decisions, outline, near, draw),
                key=chart_key(), on_select=take_selection, selection_mode=("box", "lasso"),
                config={"scrollZoom": True, "displaylogo": False})
info = analysis.meta.get("map") or {}
st.caption(f"{info.get('method', 'map').upper()} of the embeddings: {len(rows):,} of {len(analysis.y_train):,} "
           "training samples" + (" (a stratified sample that keeps every flagged one)" if len(rows) < len(
               analysis.y_train) else "") + ". Drag to select; double-click to reset the zoom.")

if not parsed:
    st.caption("Select samples on the map (box, or lasso from the chart's toolbar) to review them here.")
    review_grid.reasons(analysis, [])  # the why-flagged terms, once per server, while the user looks at the map
    st.stop()
if not len(members):
    st.info("No sample of the map lies inside this selection; draw a larger box or lasso.")
    st.stop()
near_selection = parsed[0] == "near"
head = st.columns([3, 1, 1, 2])
head[0].subheader(f"#{members[0]} and its {len(members) - 1} nearest neighbours" if near_selection else
                  f"{len(members):,} samples in the selection, most important first")
# two rows by default, as on the Review page: each tile is ~14 ms of the browser's redraw after a selection
grid_rows = head[2].number_input("Rows", 1, 10, 2, key="mrows", bind="query-params", disabled=near_selection,
                                 help="Tiles per page: 4 × rows (a sample's neighbours all show on one page).")
size = len(members) if near_selection else COLUMNS * int(grid_rows)
pages = max(1, -(-len(members) // size))
if st.session_state.get("mpage", 1) > pages:  # a smaller selection than the page the URL or session named
    st.session_state["mpage"] = pages
page = head[1].number_input("Page", 1, pages, 1, key="mpage", bind="query-params", disabled=pages == 1)
why = head[3].toggle("Why flagged", value=True, key="why", bind="query-params")
start, stop = selection.page_bounds(len(members), (page - 1) * size, size)
shown = [int(i) for i in members[start:stop]]


def accept(indices: list[int]) -> None:
    review_grid.accept_page(analysis, log, indices, state.reviewer())


counts = review.decision_counts({i: decided[i] for i in map(int, members) if i in decided})
st.caption(f"Showing {start + 1}–{stop} of {len(members):,} · page {page} of {pages} · decided so far: "
           + ", ".join(f"{n} {d}" for d, n in counts.items()))
st.button("Accept page: undecided → ok", on_click=accept, args=(shown,), shortcut="A",
          help="Every tile shown without a decision becomes 'ok'. Keys 1–9 mark tile 1–9 mislabeled.")
review_grid.review_tiles(analysis, log, names, shown, decided, columns=COLUMNS, reviewer=state.reviewer(), why=why)
