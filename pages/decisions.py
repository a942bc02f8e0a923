import streamlit as st

from coreclean import export, review, tables
from coreclean.retrain import retrain
from ui import state

analysis = state.current()
log = state.current_log()
names = state.labels(analysis)
st.title("Decisions")

decided = log.current()
counts = review.decision_counts(decided)
cols = st.columns(4)
cols[0].metric("Reviewed samples", len(decided))
for col, kind in zip(cols[1:], review.DECISIONS):
    col.metric(kind, counts[kind])

st.subheader("Log")
filters = st.columns(3)
kinds = filters[0].multiselect("Decision", list(review.DECISIONS), key="f_kind", bind="query-params")
classes = filters[1].multiselect("Class (old label)", names, key="f_class", bind="query-params")
show_undone = filters[2].toggle("Include undone", key="f_undone", bind="query-params")
history = log.history(decisions=kinds, old_labels=[names.index(c) for c in classes], include_undone=show_undone)
st.dataframe(tables.log_table(history, names), hide_index=True)

undo_cols = st.columns([2, 1])
target = undo_cols[0].selectbox("Undo the current decision of sample", sorted(decided), index=None,
                                key="undo_target")
if undo_cols[1].button("Undo", disabled=target is None):
    restored = log.undo(target)
    st.toast(f"Undid sample {target}" + (f"; back to '{restored.decision}'" if restored else ""))
    st.rerun()

st.subheader("Export")
ids = [str(p) for p in analysis.paths_train] if analysis.paths_train is not None else None
exports = st.columns(2)
exports[0].download_button("Corrections (CSV)", export.corrections_csv(decided, names, ids),
                           file_name=f"{analysis.meta['name']}-corrections.csv", mime="text/csv")
if ids is not None and analysis.meta["kind"] == "files":
    exports[1].download_button("Cleaned labels (CSV mapping)",
                               export.cleaned_labels_csv(ids, analysis.y_train, decided, names),
                               file_name=f"{analysis.meta['name']}-labels.csv", mime="text/csv")
else:
    exports[1].download_button("Cleaned y_train.npy (removed = -1)",
                               export.cleaned_labels_npy(analysis.y_train, decided),
                               file_name="y_train.npy", mime="application/octet-stream")

st.subheader("Apply & retrain")
st.caption("Relabels and drops as marked, refits the classifier (warm-started) and recomputes importance. "
           "The original analysis is kept; the result is stored as a revision next to it.")
if st.button("Apply & retrain", type="primary", disabled=not any(d.decision != "ok" for d in decided.values())):
    bar = st.progress(0.0, text="Refitting…")
    result = retrain(analysis, decided, progress=lambda s, d, t: bar.progress(d / max(t, 1), text=f"{s} {d}/{t}"))
    bar.empty()
    st.session_state["last_revision"] = (str(analysis.directory), result)
made_from, result = st.session_state.get("last_revision", (None, None))
if result is not None and made_from == str(analysis.directory):
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{result.accuracy_after:.2%}",
                   delta=f"{100 * (result.accuracy_after - result.accuracy_before):+.2f} pp")
    cols[1].metric("Relabelled", result.relabelled)
    cols[2].metric("Removed", result.removed)
    cols[3].metric("Recompute time", f"{result.seconds:.1f} s")
    before, after = st.columns(2)
    before.write("**Worst confusions before**")
    before.dataframe(tables.pairs_table(result.pairs_before, names, limit=15), hide_index=True)
    after.write("**After**")
    after.dataframe(tables.pairs_table(result.pairs_after, names, limit=15), hide_index=True)
