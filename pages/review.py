import streamlit as st

from coreclean.review import log as review
from ui import review_grid, selection, state, text_search, widgets

analysis = state.current()
log = state.current_log()
names = state.labels(analysis)
ORDERS = ["most → least", "least → most"]
queues = review_grid.queue_options(analysis, names)
st.title("Review")
if not review_grid.valid_queue(st.query_params.get("cls"), queues, names):
    widgets.notice_invalid("cls", queues)
elif st.query_params.get("cls") not in queues:  # a deep-linked pair beyond the offered ones
    queues.append(st.query_params["cls"])
widgets.notice_invalid("order", ORDERS)
top = st.columns([3, 2, 1, 1, 2])
choice = top[0].selectbox("Class or confusion pair", queues, index=1, key="cls", bind="query-params",
                          help="One class, all classes in one queue, or training samples of one class predicted as "
                               "another (label → predicted).")
order = top[1].radio("Order", ORDERS, horizontal=True, key="order", bind="query-params")
rows = top[2].number_input("Rows", 1, 10, 2, key="rows", bind="query-params")
cols = top[3].number_input("Columns", 1, 10, 3, key="cols", bind="query-params")
show_seen = top[4].toggle("Show reviewed", key="seen", bind="query-params",
                          help="Samples decided before this visit are skipped unless this is on.")
why = top[4].toggle("Why flagged", value=True, key="why", bind="query-params",
                    help="Per tile: probability of its label, the prediction, and the shares of the loss and "
                         "leverage (outlier) terms in its importance.")
issue = review_grid.issue_from_link(analysis)  # ?issue=blurry from the Overview's quality counts
decided = log.current()
decided_here = st.session_state.setdefault("decided_here", set())  # stay visible while this session works on them
ranked, described = review_grid.queue_for(analysis, choice, names, descending=order == ORDERS[0], issue=issue)
query = text_search.query_box(analysis)  # no box for backbones without a text tower
if query:
    ranked, described = text_search.matches(analysis, query), f"closest to “{query}” (all classes)"
if not show_seen:
    ranked = review.reviewable(ranked, decided, decided_here)
page = int(rows * cols)
last = max(len(ranked) - 1, 0)
widgets.link_int("pos", last, default="starting at the top")  # a notice for a bad link; the slider ignores it


def step(delta: int) -> None:
    st.session_state["pos"] = int(min(max(st.session_state.get("pos", 0) + delta, 0), last))


def accept(indices: list[int]) -> None:
    review_grid.accept_page(analysis, log, indices, state.reviewer())
    step(page)


if st.session_state.get("pos", 0) > last:  # the queue shrank (other sessions decided, "Show reviewed" off)
    st.session_state["pos"] = last
position = st.slider("Position in the ranking", 0, max(last, 1), 0, key="pos", bind="query-params",
                     disabled=last == 0)
start, stop = selection.page_bounds(len(ranked), position, page)
shown = [int(i) for i in ranked[start:stop]]
nav = st.columns([1, 1, 3, 3])
nav[0].button("◀ Previous", on_click=step, args=(-page,), disabled=position == 0, shortcut="Left")
nav[1].button("Next ▶", on_click=step, args=(page,), disabled=position + page > last, shortcut="Right")
nav[2].button("Accept page: undecided → ok, next", on_click=accept, args=(shown,), disabled=not shown,
              shortcut="A", type="primary", help="Every tile of this page without a decision becomes 'ok'.")
nav[3].caption("Keys: **1–9** mislabeled on tile 1–9 (again: undo) · **A** accept page · **← →** page")
hidden = "" if show_seen else f" ({len(decided)} reviewed samples in the log; reviewed ones are skipped)"
st.caption(f"Showing {start + 1}–{stop} of {len(ranked)} samples {described}, {order} "
           f"{'severe' if issue else 'important'}." + hidden)
if issue:
    st.button(f"Leave the {issue} queue", on_click=review_grid.leave_issue, help="Back to the class picked above.")
st.caption(review_grid.progress_caption(analysis, decided, choice, names, issue))
review_grid.review_tiles(analysis, log, names, shown, decided, columns=cols, reviewer=state.reviewer(), why=why)
