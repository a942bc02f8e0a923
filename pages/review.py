import streamlit as st

import ui
from coreclean import views

analysis = ui.current()
log = ui.current_log()
names = ui.labels(analysis)
st.title("Review")
ui.notice_invalid("cls", names)
ui.notice_invalid("order", ["most → least", "least → most"])
top = st.columns([3, 2, 1, 1, 2])
label_name = top[0].selectbox("Class", names, key="cls", bind="query-params")
order = top[1].radio("Order", ["most → least", "least → most"], horizontal=True, key="order", bind="query-params")
rows = top[2].number_input("Rows", 1, 10, 2, key="rows", bind="query-params")
cols = top[3].number_input("Columns", 1, 10, 3, key="cols", bind="query-params")
show_seen = top[4].toggle("Show reviewed", key="seen", bind="query-params",
                          help="Samples decided before this visit are skipped unless this is on.")
label = names.index(label_name)
decided = log.current()
decided_here = st.session_state.setdefault("decided_here", set())  # stay visible while this session works on them
ranked = analysis.ranked(label, descending=order == "most → least")
if not show_seen:
    ranked = ranked[[i not in decided or i in decided_here for i in ranked]] if len(ranked) else ranked
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
start, stop = views.page_bounds(len(ranked), position, page)
hidden = "" if show_seen else f" ({len(decided)} reviewed samples in the log; reviewed ones are skipped)"
st.caption(f"Showing {start + 1}–{stop} of {len(ranked)} samples labelled **{label_name}**, {order} important."
           + hidden)


def save(index: int) -> None:
    """Write the tile's decision to the log the moment it changes."""
    choice = st.session_state.get(f"decision_{index}")
    old = int(analysis.y_train[index])
    decided_here.add(index)
    if choice is None:
        log.undo(index)
    elif choice == "mislabeled":
        new = names.index(st.session_state.get(f"new_{index}") or names[views.suggested_label(analysis, index)])
        log.record(index, old, "mislabeled", new_label=new, reviewer=ui.reviewer())
    else:
        log.record(index, old, choice, reviewer=ui.reviewer())


def controls(index: int) -> None:
    current = decided.get(index)
    st.segmented_control("Decision", ["ok", "mislabeled", "remove"], key=f"decision_{index}",
                         default=current.decision if current else None, on_change=save, args=(index,),
                         label_visibility="collapsed")
    if st.session_state.get(f"decision_{index}") == "mislabeled":
        others = [c for c in range(len(names)) if c != analysis.y_train[index]]
        suggested = current.new_label if current and current.new_label is not None else \
            views.suggested_label(analysis, index)
        st.selectbox("Correct class", [names[c] for c in others], index=others.index(suggested),
                     key=f"new_{index}", on_change=save, args=(index,))


ui.image_grid(analysis, ranked[start:stop], columns=cols, footer=controls,
              caption=lambda i: f"#{i} · label {names[analysis.y_train[i]]} · pred {names[analysis.pred_train[i]]}"
                                f" · imp {analysis.class_importance[i]:.3f}")
