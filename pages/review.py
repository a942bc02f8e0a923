import streamlit as st

from coreclean import review
from ui import selection, state, widgets

analysis = state.current()
log = state.current_log()
names = state.labels(analysis)
ORDERS = ["most → least", "least → most"]
st.title("Review")
widgets.notice_invalid("cls", names)
widgets.notice_invalid("order", ORDERS)
top = st.columns([3, 2, 1, 1, 2])
label_name = top[0].selectbox("Class", names, key="cls", bind="query-params")
order = top[1].radio("Order", ORDERS, horizontal=True, key="order", bind="query-params")
rows = top[2].number_input("Rows", 1, 10, 2, key="rows", bind="query-params")
cols = top[3].number_input("Columns", 1, 10, 3, key="cols", bind="query-params")
show_seen = top[4].toggle("Show reviewed", key="seen", bind="query-params",
                          help="Samples decided before this visit are skipped unless this is on.")
label = names.index(label_name)
decided = log.current()
decided_here = st.session_state.setdefault("decided_here", set())  # stay visible while this session works on them
ranked = analysis.ranked(label, descending=order == ORDERS[0])
if not show_seen:
    ranked = review.reviewable(ranked, decided, decided_here)
page = int(rows * cols)
last = max(len(ranked) - 1, 0)
raw = st.query_params.get("pos")
if raw is not None and (not raw.lstrip("-").isdigit() or not 0 <= int(raw) <= last):
    st.warning(f"Link parameter `pos={raw}` is outside 0..{last}; starting at the top.")


def step(delta: int) -> None:
    st.session_state["pos"] = int(min(max(st.session_state.get("pos", 0) + delta, 0), last))


position = st.slider("Position in the ranking", 0, max(last, 1), 0, key="pos", bind="query-params",
                     disabled=last == 0)
nav = st.columns([1, 1, 6])
nav[0].button("◀ Previous", on_click=step, args=(-page,), disabled=position == 0)
nav[1].button("Next ▶", on_click=step, args=(page,), disabled=position + page > last)
start, stop = selection.page_bounds(len(ranked), position, page)
hidden = "" if show_seen else f" ({len(decided)} reviewed samples in the log; reviewed ones are skipped)"
st.caption(f"Showing {start + 1}–{stop} of {len(ranked)} samples labelled **{label_name}**, {order} important."
           + hidden)


def save(index: int) -> None:
    """Write the tile's decision to the log the moment it changes."""
    choice = st.session_state.get(f"decision_{index}")
    decided_here.add(index)
    chosen = st.session_state.get(f"new_{index}")
    new = names.index(chosen) if chosen else analysis.suggested_label(index)
    log.decide(index, int(analysis.y_train[index]), choice, new_label=new, reviewer=state.reviewer())


def controls(index: int) -> None:
    current = decided.get(index)
    st.segmented_control("Decision", list(review.DECISIONS_SHOWN), key=f"decision_{index}",
                         default=current.decision if current else None, on_change=save, args=(index,),
                         label_visibility="collapsed")
    if st.session_state.get(f"decision_{index}") == "mislabeled":
        others = [c for c in range(len(names)) if c != analysis.y_train[index]]
        suggested = current.new_label if current and current.new_label is not None else \
            analysis.suggested_label(index)
        st.selectbox("Correct class", [names[c] for c in others], index=others.index(suggested),
                     key=f"new_{index}", on_change=save, args=(index,))


widgets.image_grid(analysis, ranked[start:stop], columns=cols, footer=controls,
                   caption=lambda i: f"#{i} · label {names[analysis.y_train[i]]} · pred {names[analysis.pred_train[i]]}"
                                     f" · imp {analysis.class_importance[i]:.3f}")
