import streamlit as st

from coreclean.build import rounds
from coreclean.review import export
from coreclean.review import log as review
from coreclean.review.exchange import downloads, label_studio
from ui import audit_view, exchange, figures, retraining, review_grid, state, tables

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
undo_cols[1].button("Undo", disabled=target is None, on_click=review_grid.undo_decision, args=(log, target))

st.subheader("Export")
ids = [str(p) for p in analysis.paths_train] if analysis.paths_train is not None else None
exports = st.columns(2)
audit = audit_view.stored_audit(analysis)  # its suggestion goes into the corrections and the Label Studio tasks
exports[0].download_button("Corrections (CSV)", export.corrections_csv(decided, names, ids, audit),
                           file_name=f"{analysis.meta['name']}-corrections.csv", mime="text/csv")
if ids is not None and analysis.meta["kind"] == "files":
    exports[1].download_button("Cleaned labels (CSV mapping)",
                               export.cleaned_labels_csv(ids, analysis.y_train, decided, names),
                               file_name=f"{analysis.meta['name']}-labels.csv", mime="text/csv")
else:
    exports[1].download_button("Cleaned y_train.npy (removed = -1)",
                               export.cleaned_labels_npy(analysis.y_train, decided),
                               file_name="y_train.npy", mime="application/octet-stream")

st.write("**Label Studio** — tasks for a review queue (with coreclean's suggestion pre-selected) and the labeling "
         "config to paste into the project; bring the answers back below.")
studio = st.columns([3, 1, 2, 2], vertical_alignment="bottom")
queue = studio[0].selectbox("Review queue", review_grid.queue_options(analysis, names), key="ls_queue",
                            bind="query-params", help="The queues of the Review page, in its order (most important "
                                                      "first); samples removed by review are left out.")
queued, _ = review_grid.queue_for(analysis, queue, names)
limit = studio[1].number_input("Tasks", 1, max(len(queued), 1), min(100, max(len(queued), 1)), key="ls_limit",
                               help="The top of the queue.")
chosen = queued[:int(limit)]
studio[2].download_button(f"Tasks ({len(chosen)}, JSON)", lambda: downloads.tasks_file(analysis, chosen, audit),
                          file_name=f"{analysis.meta['name']}-tasks.json", mime="application/json",
                          disabled=not len(chosen))
try:
    studio[3].download_button("Labeling config (XML)", label_studio.labeling_config(names),
                              file_name=f"{analysis.meta['name']}-tasks.config.xml", mime="application/xml")
except ValueError as err:
    studio[3].caption(str(err))
zip_refusal = exchange.zip_refusal(analysis)
if zip_refusal is None:
    st.download_button("Cleaned dataset (ZIP)", lambda: downloads.cleaned_zip(analysis, log.current()),
                       file_name=f"{analysis.meta['name']}-cleaned.zip", mime="application/zip",
                       help="The dataset after the decisions: relabelled samples under their new class, removed ones "
                            "left out, and manifest.csv (as `coreclean export --format imagefolder` writes it).")
else:
    st.caption(zip_refusal)

st.subheader("Import annotations")
if message := st.session_state.pop("ls_recorded", None):
    st.success(message)
if state.read_only():
    st.info("Importing annotations is off on a shared dashboard (viewers review sample by sample). The operator "
            "imports with `python -m coreclean import CACHE_DIR --from label-studio EXPORT.json`.")
else:
    upload = st.file_uploader("Label Studio JSON export (Export → JSON) of tasks exported above", type="json",
                              key=f"ls_upload_{st.session_state.get('ls_uploads', 0)}")
    if upload is not None:
        try:
            preview = exchange.read_upload(analysis, upload.getvalue(), upload.name, decided)
        except ValueError as err:
            st.error(f"Nothing recorded: {err}")
        else:
            st.caption(f"{len(preview.answers)} annotated samples: {len(preview.changes)} would change, "
                       f"{len(preview.answers) - len(preview.changes)} already decided so; {preview.skipped} tasks "
                       "without an answer.")
            st.dataframe(exchange.preview_rows(preview, decided, names), hide_index=True)
            st.button(f"Record {len(preview.changes)} decisions", type="primary", disabled=not preview.changes,
                      on_click=exchange.record_upload, args=(log, preview, upload.name))

st.subheader("Apply & retrain")
st.caption("Relabels and drops as marked, refits the classifier on the corrected labels and recomputes importance. The "
           "result is a new cleaning round; every page continues on it, earlier rounds stay selectable in the sidebar "
           "and the review log is shared, so nothing is asked twice.")
refusal = retraining.retrain_refusal(analysis)  # read-only hosting: off unless the operator allows it, bounded
if refusal is not None and not retraining.hosted_retrain_rounds():
    st.info(refusal)
else:
    st.button("Apply & retrain", type="primary", on_click=lambda: retraining.start_retrain(analysis, log.current()),
              disabled=retraining.retrain_running(analysis) or refusal is not None
              or not any(d.decision != "ok" for d in decided.values()),
              help="Runs in the background: other pages stay usable, and this page picks up the new round when done.")
    if refusal is not None and not retraining.retrain_running(analysis):
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
    st.button("Switch back to the previous round", on_click=state.open_round,
              args=(rounds.round_id(analysis.root_analysis, parent.directory),),
              help="Nothing is deleted: every round stays selectable and every decision stays in the log.")

history = rounds.list_rounds(analysis.root_analysis)
if len(history) > 1:
    st.subheader("Rounds")
    table = rounds.rounds_table(history, rounds.worst_pairs(history, names))
    st.dataframe(table, hide_index=True, column_config={"test accuracy": st.column_config.NumberColumn(format="%.4f")})
    st.plotly_chart(figures.rounds_figure(table))

revision, failure = retraining.retrain_outcome(analysis, retrain_slot)  # waits for a running retrain with its bar
if revision is not None:
    state.continue_on_round(rounds.round_id(analysis.root_analysis, revision.directory))
elif failure:
    retrain_slot.error(f"Apply & retrain failed: {failure}")
