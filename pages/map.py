import streamlit as st

from coreclean.analysis import explore_queries as explore
from coreclean.review import log as review
from ui import map_colours, map_figures, map_selection, review_grid, selection, state, text_search, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Map")
if not explore.has_exploration(analysis):
    st.info("This analysis was built before the exploration stage (map, neighbours, duplicates): delete it and "
            "build again to add them.")
    st.stop()
log = state.current_log()
COLUMNS = 4
fields = map_colours.colour_fields(analysis)  # zero_shot only where the backbone has a text tower
widgets.notice_invalid("colour", fields)
widgets.notice_invalid("draw", map_figures.DRAW_MODES)


def take_selection() -> None:
    event = st.session_state[map_selection.chart_key(st.session_state)].selection
    st.session_state.update(map_selection.on_select(st.session_state, event))


def clear_selection() -> None:
    st.session_state.update(map_selection.on_clear(st.session_state))


rows = explore.map_points(analysis)[0]
top = st.columns([2, 2, 4, 1])
colour = top[0].selectbox("Colour by", fields, key="colour", bind="query-params",
                          help="importance is normalized within each class; outlier is the score's percentile; "
                               "zero_shot is p(label) by the backbone's text tower.")
modes = map_figures.DRAW_MODES
draw = top[1].radio("Draw", modes, index=modes.index(map_figures.default_draw(len(rows))), key="draw",
                    bind="query-params", horizontal=True,
                    help="points: WebGL markers with hover; image: the points as one picture, fast past tens of "
                         "thousands of points, no hover. Selections work the same in both.")
chosen = top[2].text_input("Selection", key="sel", bind="query-params", placeholder="drag a box or lasso on the map",
                           help="Set by dragging on the map (box, or lasso from the chart's toolbar); also "
                                "`near:INDEX` for a sample and its nearest neighbours.")
top[3].button("Clear", on_click=clear_selection, disabled=not chosen, help="Forget the selection.")

decided = log.current()
shown_decisions = map_selection.shown_decisions(colour, decided)
view, updates = map_selection.resolve(st.session_state, chosen, map_selection.figure_key(colour, draw, shown_decisions),
                                      lambda kind, values: explore.select_samples(analysis, kind, values))
st.session_state.update(updates)
if view.warning:
    st.warning(view.warning)
st.plotly_chart(map_figures.map_chart(analysis, colour, shown_decisions, draw=draw, outline=view.outline,
                                      near=view.near),
                key=map_selection.chart_key(st.session_state), on_select=take_selection,
                selection_mode=("box", "lasso"), config={"scrollZoom": True, "displaylogo": False})
info = analysis.meta.get("map") or {}
st.caption(f"{info.get('method', 'map').upper()} of the embeddings: {len(rows):,} of {len(analysis.y_train):,} "
           "training samples" + (" (a stratified sample that keeps every flagged one)" if len(rows) < len(
               analysis.y_train) else "") + ". Drag to select; double-click to reset the zoom."
           + (f" {info['kept']['points']:,} points keep their place from the analysis this one added samples to; "
              "the others sit by their nearest neighbours." if info.get("kept") else ""))

query = text_search.query_box(analysis, key="mq")  # no box for backbones without a text tower
if query:
    text_search.results_grid(analysis, log, names, decided, query, columns=COLUMNS, reviewer=state.reviewer(),
                             why=st.query_params.get("why", "True") != "False")
    st.stop()
if not view.selection:
    st.caption("Select samples on the map (box, or lasso from the chart's toolbar) to review them here.")
    review_grid.reasons(analysis, [])  # the why-flagged terms, once per server, while the user looks at the map
    st.stop()
members = view.members
if not len(members):
    st.info("No sample of the map lies inside this selection; draw a larger box or lasso.")
    st.stop()
head = st.columns([3, 1, 1, 2])
head[0].subheader(f"#{members[0]} and its {len(members) - 1} nearest neighbours" if view.is_near else
                  f"{len(members):,} samples in the selection, most important first")
# two rows by default, as on the Review page: each tile is ~14 ms of the browser's redraw after a selection
grid_rows = head[2].number_input("Rows", 1, 10, 2, key="mrows", bind="query-params", disabled=view.is_near,
                                 help="Tiles per page: 4 × rows (a sample's neighbours all show on one page).")
size, pages = map_selection.grid_pages(view, grid_rows, COLUMNS)
page = widgets.page_number(head[1], "Page", pages, key=map_selection.PAGE)
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
