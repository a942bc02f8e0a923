import pandas as pd
import streamlit as st

import ui

analysis = ui.current()
meta, names = analysis.meta, ui.labels(analysis)
st.title(f"Overview — {meta['name']}")
cols = st.columns(5)
cols[0].metric("Test accuracy", f"{analysis.accuracy:.2%}")
cols[1].metric("Train samples", f"{meta['n_train']:,}")
cols[2].metric("Test samples", f"{meta['n_test']:,}")
cols[3].metric("Classes", analysis.n_classes)
cols[4].metric("Backbone", f"{meta['backbone']} ({meta['n_features']}-d)")
if meta["skipped"]:
    with st.expander(f"{len(meta['skipped'])} input files were skipped"):
        st.dataframe(pd.DataFrame(meta["skipped"], columns=["file", "reason"]), hide_index=True)

left, right = st.columns([2, 3])
with left:
    st.subheader("Per-class accuracy")
    st.dataframe(pd.DataFrame({"class": names, "accuracy": analysis.per_class_accuracy(),
                               "train samples": pd.Series(analysis.y_train).value_counts().reindex(range(len(names)), fill_value=0)}),
                 hide_index=True, column_config={"accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")})
with right:
    st.subheader("Confusion pairs (worst first)")
    pairs = analysis.pairs()
    st.dataframe(pd.DataFrame([{"true": names[p.true], "predicted": names[p.predicted], "rate": p.rate, "count": p.count}
                               for p in pairs], columns=["true", "predicted", "rate", "count"]),
                 hide_index=True, column_config={"rate": st.column_config.NumberColumn(format="%.3f")})
    st.caption("Click a column header to sort. Open **Confusion** to see the samples behind a pair.")
