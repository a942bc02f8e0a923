import streamlit as st

from coreclean import tables
from ui import state

analysis = state.current()
meta, names = analysis.meta, state.labels(analysis)
st.title(f"Overview — {meta['name']}")
if meta["backbone"] == "resnet18" and not meta.get("weights"):
    st.warning("This analysis was embedded with a randomly initialised ResNet18 (`--weights none`): its "
               "rankings are not meaningful. Rebuild with ImageNet weights or a weights file.")
cols = st.columns(5)
cols[0].metric("Test accuracy", f"{analysis.accuracy:.2%}")
cols[1].metric("Train samples", f"{meta['n_train']:,}")
cols[2].metric("Test samples", f"{meta['n_test']:,}")
cols[3].metric("Classes", analysis.n_classes)
cols[4].metric("Backbone", f"{meta['backbone']} ({meta['n_features']}-d)")
if meta["skipped"]:
    with st.expander(f"{len(meta['skipped'])} input files were skipped"):
        st.dataframe(tables.skipped_table(meta["skipped"]), hide_index=True)

left, right = st.columns([2, 3])
with left:
    st.subheader("Per-class accuracy")
    st.dataframe(tables.class_table(analysis, names), hide_index=True,
                 column_config={"accuracy": st.column_config.ProgressColumn(min_value=0, max_value=1, format="percent")})
with right:
    st.subheader("Confusion pairs (worst first)")
    st.dataframe(tables.pairs_table(analysis.pairs(), names), hide_index=True,
                 column_config={"rate": st.column_config.NumberColumn(format="%.3f")})
    st.caption("Click a column header to sort. Open **Confusion** to see the samples behind a pair.")
