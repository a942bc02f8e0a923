"""The dataset audit in the dashboard: the Overview's health summary with the report download, and the Sample
page's suggested label. The audit is computed once (``python -m coreclean report`` or the button here) and read
from the analysis directory afterwards (coreclean.audit.audit.audit_of)."""
from __future__ import annotations

import math

import streamlit as st

from coreclean import Analysis
from coreclean.audit.audit import Audit, audit_of
from coreclean.audit.report_data import report_data
from coreclean.audit.report_html import render_html
from ui import state
from ui.widgets import plain


def stored_audit(analysis: Analysis) -> Audit | None:
    """The audit stored with ``analysis`` (None when not computed yet); a small JSON and three (n,) arrays."""
    return audit_of(analysis, cached_only=True)


def report_html(analysis: Analysis, audit: Audit) -> str:
    return render_html(analysis, report_data(analysis, audit))


def _run_audit(analysis: Analysis) -> None:
    bar = st.progress(0.0, text="cross-fitting the classifier")

    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=stage)

    audit_of(analysis, progress=progress)
    bar.empty()


def health_summary(analysis: Analysis, names: list[str]) -> None:
    """The Overview's first block: health, estimated wrong labels, the weakest classes, classes to merge, and the
    **Download report** button; without a stored audit, a button that computes it (not in read-only mode)."""
    st.subheader("Dataset health")
    audit = stored_audit(analysis)
    if audit is None:
        if state.read_only():
            st.info("No dataset audit stored for this analysis. Whoever runs the server: "
                    f"`python -m coreclean report {analysis.directory} --out report.html` computes and stores it.")
            return
        st.caption("How many labels are probably wrong, in which classes, and which classes overlap: a 5-fold "
                   "cross-fit of the classifier (about five classifier fits), stored with the analysis.")
        if st.button("Run the dataset audit", icon=":material/health_and_safety:", key="run_audit"):
            _run_audit(analysis)
            st.rerun()
        return
    s = audit.summary
    low, high = s["noise_interval"]
    cols = st.columns(4)
    cols[0].metric("Health", f"{s['health']:.3f}", help="Share of labels estimated right (1 - estimated noise rate); "
                   "per class: 1 - that class's estimated share of wrong labels (coreclean/audit/health.py).")
    cols[1].metric("Estimated wrong labels", f"{s['noise_rate']:.1%}",
                   help=f"{s['label_issues']:,} samples; 95% bootstrap interval {low:.1%} - {high:.1%}.")
    health = [(h, c) for c, h in enumerate(s["class_health"]) if h is not None and math.isfinite(h)]
    if health:
        worst, c = min(health)
        cols[2].metric("Weakest class", names[c], f"health {worst:.3f}", delta_color="off")
    merges = [p for p in s["overlap"] if p["merge"]]
    cols[3].metric("Classes to merge?", len(merges),
                   help="Class pairs the data cannot tell apart (joint mass both ways).")
    if merges:
        st.caption("Merge? " + ", ".join(f"{plain(names[p['a']])} / {plain(names[p['b']])} ({p['samples']:,} samples)"
                                         for p in merges[:5]))
    too_few = s["balance"]["too_few"]
    if too_few:
        st.caption("Too few samples: " + ", ".join(plain(names[c]) for c in too_few[:10]))
    st.download_button("Download report", data=lambda: report_html(analysis, audit), icon=":material/download:",
                       file_name=f"{analysis.meta['name']}-report.html", mime="text/html", key="download_report",
                       help="One self-contained HTML file (opens offline): health, noise matrix, confusion, "
                            "importance, top flagged samples with suggestions, duplicates, quality, rounds — the "
                            "same as `python -m coreclean report`.")


def suggestion_line(analysis: Analysis, index: int, names: list[str]) -> str | None:
    """The Sample page's line for training sample ``index``: suggested label, its confidence, p(label wrong);
    None without a stored audit."""
    audit = stored_audit(analysis)
    if audit is None or audit.suggested[index] < 0:
        return None
    return (f"Suggested label **{plain(names[int(audit.suggested[index])])}** (confidence "
            f"{float(audit.confidence[index]):.0%}; probability the given label is wrong "
            f"{float(audit.p_wrong[index]):.0%}, dataset audit)")
