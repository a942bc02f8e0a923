import streamlit as st

from coreclean.review import export
from coreclean.review import log as review
from coreclean.build import rounds
from ui import tables
from ui import figures, review_grid, state

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

progress = review_grid.progress_of(analysis, decided)
st.caption(f"Progress — {progress.line(None)}. Errors left are estimated from the hit rate of the decisions so far "
           "along the importance ranking (the lowest rate reached is carried down: read it as “at most about”).")
st.table(progress.rows(names, only_reviewed=True))

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
st.caption("Relabels and drops as marked, refits the classifier on the corrected labels and recomputes importance. The "
           "result is a new cleaning round; every page continues on it, earlier rounds stay selectable in the sidebar "
           "and the review log is shared, so nothing is asked twice.")
refusal = state.retrain_refusal(analysis)  # read-only hosting: off unless the operator allows it, bounded
if refusal is not None and not state.hosted_retrain_rounds():
    st.info(refusal)
else:
    st.button("Apply & retrain", type="primary", on_click=lambda: state.start_retrain(analysis, log.current()),
              disabled=state.retrain_running(analysis) or refusal is not None
              or not any(d.decision != "ok" for d in decided.values()),
              help="Runs in the background: other pages stay usable, and this page picks up the new round when done.")
    if refusal is not None and not state.retrain_running(analysis):
        st.caption(refusal)
retrain_slot = st.empty()  # its progress bar, filled at the end of the page once everything else is shown
if analysis.is_revision:
    parent = state.parent(analysis)
    lineage = analysis.meta["lineage"]
    st.write(f"**This round** (round {lineage['round']}) against the one it was retrained from:")
    cols = st.columns(4)
    cols[0].metric("Test accuracy", f"{analysis.accuracy:.2%}",
                   delta=f"{100 * (analysis.accuracy - parent.accuracy):+.2f} pp")
    cols[1].metric("Relabelled", lineage["relabelled"])
    cols[2].metric("Removed", lineage["removed"])
    cols[3].metric("Recompute time", f"{lineage['seconds']:.1f} s")
    before, after = st.columns(2)
    before.write("**Worst confusions before**")
    before.dataframe(tables.pairs_table(parent.pairs(), names, limit=15), hide_index=True)
    after.write("**After**")
    after.dataframe(tables.pairs_table(analysis.pairs(), names, limit=15), hide_index=True)
    if st.button("Switch back to the previous round", help="Nothing is deleted: every round stays selectable and "
                                                           "every decision stays in the log."):
        state.continue_on_round(rounds.round_id(analysis.root_analysis, parent.directory))

history = rounds.list_rounds(analysis.root_analysis)
if len(history) > 1:
    st.subheader("Rounds")
    table = rounds.rounds_table(history, rounds.worst_pairs(history, names))
    st.dataframe(table, hide_index=True, column_config={"test accuracy": st.column_config.NumberColumn(format="%.4f")})
    st.plotly_chart(figures.rounds_figure(table))

revision, failure = state.retrain_outcome(analysis, retrain_slot)  # waits for a running retrain with its bar
if revision is not None:
    state.continue_on_round(rounds.round_id(analysis.root_analysis, revision.directory))
elif failure:
    retrain_slot.error(f"Apply & retrain failed: {failure}")
