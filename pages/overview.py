import streamlit as st

from coreclean.analysis import explore_queries
from coreclean.build.reuse import describe as describe_reuse
from coreclean.review import export
from coreclean.quality import issues
from coreclean.quality import thresholds as quality
from ui import tables
from ui import audit_view, explore_grid, state

analysis = state.current()
meta, params, names = analysis.meta, analysis.params, state.labels(analysis)
st.title(f"Overview — {meta['name']}")
if params.backbone == "resnet18" and not params.weights:
    st.warning("This analysis was embedded with a randomly initialised ResNet18 (`--weights none`): its "
               "rankings are not meaningful. Rebuild with ImageNet weights or a weights file.")
audit_slot = audit_view.health_summary(analysis, names)  # a running audit's progress bar goes here
st.subheader("Dataset")
cols = st.columns(5)
cols[0].metric("Test accuracy", f"{analysis.accuracy:.2%}")
cols[1].metric("Train samples", f"{meta['n_train']:,}")
cols[2].metric("Test samples", f"{meta['n_test']:,}")
cols[3].metric("Classes", analysis.n_classes)
cols[4].metric("Backbone", f"{params.backbone} ({meta['n_features']}-d)")
leaks = explore_queries.leak_count(analysis)
if leaks is not None:
    row = st.columns([2, 3], vertical_alignment="center")
    row[0].metric("Test samples with a near-duplicate in train", f"{leaks:,}",
                  help="Near or exact copies of training samples in the test set (train/test leakage).")
    row[1].page_link("pages/duplicates.py", label="Duplicates and leaks", icon=":material/content_copy:",
                     query_params=explore_grid.link_params())
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

st.subheader("Image-quality issues")
issue_names = issues.applicable_issues(analysis)
thresholds = {}
if issue_names:
    with st.expander("Thresholds: a sample is flagged when its score (0 fine … 1 worst) is above"):
        for cell, name in zip(st.columns(len(issue_names)), issue_names):
            thresholds[name] = cell.number_input(name, 0.0, 1.0, quality.ISSUES[name].threshold, 0.01,
                                                 key=issues.PARAM_PREFIX + name, bind="query-params")
    counts = issues.issue_counts(analysis, thresholds)
    st.dataframe(counts, hide_index=True, column_config={
        "share": st.column_config.NumberColumn(format="percent"),
        "description": st.column_config.TextColumn(width="large")})
    links = st.columns(len(issue_names))
    for cell, row in zip(links, counts.itertuples()):
        cell.page_link("pages/review.py", label=f"Review {row.flagged} {row.issue}", icon=":material/photo_library:",
                       query_params={**st.query_params.to_dict(), "issue": row.issue}, disabled=row.flagged == 0)
    st.caption("Training samples only (removed ones left out). Each link opens the flagged samples in the Review "
               "grid, most severe first.")
else:
    st.caption("This analysis has no image-quality scores (precomputed embeddings without images, or built before "
               "quality scoring: delete it and build again to add them).")
st.download_button(
    "Download every signal per training sample (CSV)", file_name=f"{meta['name']}-issues.csv", mime="text/csv",
    data=lambda: export.issues_csv(export.issues_table(analysis, export.logged_decisions(analysis), thresholds,
                                                       suggestions=audit_view.stored_audit(analysis))),
    help="One row per training sample: label, prediction, importance, quality scores and flags (these thresholds), "
         "the current review decision and the dataset audit's suggestion (when computed) — the same table as "
         "`python -m coreclean export`.")
with st.expander("How this analysis was built"):
    st.write(", ".join(f"{name} = `{value}`" for name, value in vars(params).items()))
    if meta.get("stages"):
        st.dataframe(tables.stages_table(meta["stages"]), hide_index=True)
        st.caption(f"{meta.get('build_seconds', 0):.1f} s in all. Peak memory is this process's resident size "
                   "while the stage ran; CPU seconds count all its threads.")
    else:
        st.caption("Built before stage timings were recorded.")
    if meta.get("reused"):
        st.caption(f"Incremental build: {describe_reuse(meta['reused'], analysis.directory.parent)} (unchanged "
                   "images only; everything after the embedding was computed on every sample).")
audit_view.await_audit(analysis, audit_slot)  # last: the rest of the page is shown while it runs
