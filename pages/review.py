import streamlit as st

import ui
from coreclean import views

analysis = ui.current()
names = ui.labels(analysis)
st.title("Review")
ui.notice_invalid("cls", names)
ui.notice_invalid("order", ["most → least", "least → most"])
top = st.columns([3, 2, 1, 1])
label_name = top[0].selectbox("Class", names, key="cls", bind="query-params")
order = top[1].radio("Order", ["most → least", "least → most"], horizontal=True, key="order", bind="query-params")
rows = top[2].number_input("Rows", 1, 10, 2, key="rows", bind="query-params")
cols = top[3].number_input("Columns", 1, 10, 3, key="cols", bind="query-params")
label = names.index(label_name)
ranked = analysis.ranked(label, descending=order == "most → least")
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
st.caption(f"Showing {start + 1}–{stop} of {len(ranked)} samples labelled **{label_name}**, {order} important.")
ui.image_grid(analysis, ranked[start:stop], columns=cols,
              caption=lambda i: f"#{i} · label {names[analysis.y_train[i]]} · pred {names[analysis.pred_train[i]]}"
                                f" · imp {analysis.class_importance[i]:.3f}")
