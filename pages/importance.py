import streamlit as st

from ui import tables
from ui import figures, selection, state, widgets

analysis = state.current()
names = state.labels(analysis)
st.title("Importance")
worst = list(dict.fromkeys(names[p.true] for p in analysis.pairs()))[:3] or names[:3]
widgets.notice_invalid("hist", ["overlay", "facet"])
chosen = st.multiselect("Classes", names, default=worst, key="classes", bind="query-params")
layout = st.radio("Layout", ["overlay", "facet"], horizontal=True, key="hist", bind="query-params")


def brush_to_range() -> None:
    picked = selection.range_from_selection(st.session_state["hist_chart"].selection)
    if picked:
        st.session_state["range"] = (round(picked[0], 2), round(picked[1], 2))


ids = [names.index(c) for c in chosen]
if ids:
    values = {names[c]: analysis.class_importance[analysis.ranked(c)] for c in ids}
    st.plotly_chart(figures.importance_histogram(values, facet=layout == "facet"), key="hist_chart",
                    on_select=brush_to_range, selection_mode="box")
low, high = st.slider("Importance range (drag on the chart to brush)", 0.0, 1.0, (0.8, 1.0), step=0.01,
                      key="range", bind="query-params")
if low > high:  # a hand-edited link; Streamlit keeps the order it was given
    st.warning(f"Link parameter `range` runs backwards ({low:.2f} > {high:.2f}); showing [{high:.2f}, {low:.2f}].")
    low, high = high, low
rows = analysis.samples_in_range(ids, low, high)
st.write(f"**{len(rows)}** samples in [{low:.2f}, {high:.2f}]" + (" (first 1000 shown)" if len(rows) > 1000 else ""))
st.dataframe(tables.sample_table(analysis, rows[:1000], names), hide_index=True)
