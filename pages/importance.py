import numpy as np
import pandas as pd
import streamlit as st

import ui
from coreclean import views

analysis = ui.current()
names = ui.labels(analysis)
st.title("Importance")
worst = list(dict.fromkeys(names[p.true] for p in analysis.pairs()))[:3] or names[:3]
ui.notice_invalid("hist", ["overlay", "facet"])
chosen = st.multiselect("Classes", names, default=worst, key="classes", bind="query-params")
layout = st.radio("Layout", ["overlay", "facet"], horizontal=True, key="hist", bind="query-params")


def brush_to_range() -> None:
    picked = views.range_from_selection(st.session_state["hist_chart"].selection)
    if picked:
        st.session_state["range"] = (round(picked[0], 2), round(picked[1], 2))


ids = [names.index(c) for c in chosen]
values = {names[c]: analysis.class_importance[analysis.y_train == c] for c in ids}
if values:
    st.plotly_chart(views.importance_histogram(values, facet=layout == "facet"), key="hist_chart",
                    on_select=brush_to_range, selection_mode="box")
low, high = st.slider("Importance range (drag on the chart to brush)", 0.0, 1.0, (0.8, 1.0), step=0.01,
                      key="range", bind="query-params")
mask = np.isin(analysis.y_train, ids) & (analysis.class_importance >= low) & (analysis.class_importance <= high)
rows = np.flatnonzero(mask)
rows = rows[np.argsort(-analysis.class_importance[rows], kind="stable")]
st.write(f"**{len(rows)}** samples in [{low:.2f}, {high:.2f}]" + (" (first 1000 shown)" if len(rows) > 1000 else ""))
rows = rows[:1000]
st.dataframe(pd.DataFrame({"index": rows, "label": [names[analysis.y_train[i]] for i in rows],
                           "predicted": [names[analysis.pred_train[i]] for i in rows],
                           "importance": analysis.class_importance[rows], "p(label)": analysis.p_label_train[rows]}),
             hide_index=True)
