"""The dataset audit in the dashboard: the Overview's health summary with the report download, the suggested label
with its confidence on the Review tiles and the Sample page, and the audit's columns in the downloads. The audit is
computed once (``python -m coreclean report``, or the Overview's button as a job of the shared background runner,
:class:`ui.jobs.Builds`) and read from the analysis directory afterwards (coreclean.audit.audit.audit_of)."""
from __future__ import annotations

import logging
import math
from concurrent.futures import Future

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from coreclean import Analysis
from coreclean.audit.audit import Audit, audit_of, scope_line
from coreclean.audit.report_data import report_data
from coreclean.audit.report_html import render_html
from coreclean.build import store
from . import jobs, state
from .widgets import plain

_log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False, max_entries=8)
def _read_audit(directory: str, stamp: int, _analysis: Analysis) -> Audit | None:
    """The audit stored in ``directory`` as written at ``stamp`` (its summary's mtime: a new audit is a new
    entry), read once per server rather than on every rerun of the Review grid."""
    return audit_of(_analysis, cached_only=True)


def _job_key(analysis: Analysis) -> tuple:
    return ("audit", str(analysis.directory))


def _job(analysis: Analysis) -> Future | None:
    """The background runner's audit job for ``analysis`` (any session's), or None when none was started."""
    return jobs.runner().futures.get(_job_key(analysis))  # the runner the builds share


def stored_audit(analysis: Analysis) -> Audit | None:
    """The audit of ``analysis``: the one stored in its directory (a small JSON and three (n,) arrays), else the
    result of a finished background run that could not store it (an unwritable cache); None when not computed."""
    try:
        stamp = (analysis.directory / store.AUDIT / "summary.json").stat().st_mtime_ns
    except OSError:
        stamp = None
    audit = _read_audit(str(analysis.directory), stamp, analysis) if stamp is not None else None
    if audit is None:
        job = _job(analysis)
        if job is not None and job.done() and job.exception() is None:
            audit = job.result()
    return audit


def suggestion(analysis: Analysis, index: int) -> tuple[int, float | None]:
    """(the class to suggest for training sample ``index`` when it is marked mislabeled, the audit's confidence in
    it): the audit's calibrated suggestion where an audit is stored, else the classifier's prediction or runner-up
    (:meth:`Analysis.suggested_label`) with confidence None."""
    audit = stored_audit(analysis)
    if audit is not None and audit.suggested[index] >= 0:
        return int(audit.suggested[index]), float(audit.confidence[index])
    return analysis.suggested_label(index), None


def report_html(analysis: Analysis, audit: Audit) -> str:
    return render_html(analysis, report_data(analysis, audit))


def start_audit(analysis: Analysis) -> None:
    """Button callback: compute and store the audit of ``analysis`` as a job of the shared background runner (a
    callback, so the click survives AppTest's legacy-pages mode and a rerun that follows it)."""
    jobs.runner().start(_job_key(analysis), audit_of, analysis, again=True)


def await_audit(analysis: Analysis, slot: DeltaGenerator | None) -> None:
    """The end of the Overview: while this analysis's audit runs, its progress bar in ``slot`` (from
    :func:`health_summary`; None: nothing runs); when it lands, a rerun shows the summary (or the failure). Another
    click or page interrupts the wait, never the job."""
    job = _job(analysis)
    if slot is None or job is None:
        return
    jobs.follow(_job_key(analysis), job, slot, "Dataset audit")
    st.rerun()


def _failure(job: Future | None) -> str | None:
    """Why the last background audit failed, or None."""
    if job is None or not job.done() or job.exception() is None:
        return None
    error = job.exception()
    if not isinstance(error, (ValueError, OSError)):  # a bug, not bad input: the server log gets the traceback
        _log.error("dataset audit failed", exc_info=error)
    return str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"


def health_summary(analysis: Analysis, names: list[str]) -> DeltaGenerator | None:
    """The Overview's first block: health, estimated wrong labels, the weakest classes, classes to merge, and the
    **Download report** button; without a stored audit, a button that computes it in the background (not in
    read-only mode). Returns the slot of a running audit's progress bar for :func:`await_audit`, else None."""
    st.subheader("Dataset health")
    audit = stored_audit(analysis)
    if audit is None:
        if state.read_only():
            st.info("No dataset audit stored for this analysis. Whoever runs the server: "
                    f"`python -m coreclean report {analysis.directory} --out report.html` computes and stores it.")
            return None
        job = _job(analysis)
        if job is not None and not job.done():
            st.caption("The dataset audit runs in the background: the other pages stay usable, and its summary "
                       "appears here when it lands.")
            return st.empty()
        if failure := _failure(job):
            st.error(f"The dataset audit failed: {failure}")
        st.caption("How many labels are probably wrong, in which classes, and which classes overlap: a 5-fold "
                   "cross-fit of the classifier (about five classifier fits), stored with the analysis.")
        st.button("Run the dataset audit", icon=":material/health_and_safety:", key="run_audit",
                  on_click=start_audit, args=(analysis,),
                  help="Runs in the background, one job at a time with builds and Apply & retrain.")
        return None
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
    if scope := scope_line(s):
        st.caption(scope)
    too_few = s["balance"]["too_few"]
    if too_few:
        st.caption("Too few samples: " + ", ".join(plain(names[c]) for c in too_few[:10]))
    st.download_button("Download report", data=lambda: report_html(analysis, audit), icon=":material/download:",
                       file_name=f"{analysis.meta['name']}-report.html", mime="text/html", key="download_report",
                       help="One self-contained HTML file (opens offline): health, noise matrix, confusion, "
                            "importance, top flagged samples with suggestions, duplicates, quality, rounds — the "
                            "same as `python -m coreclean report`.")
    return None


def suggestion_line(analysis: Analysis, index: int, names: list[str]) -> str | None:
    """The Sample page's line for training sample ``index``: suggested label, its confidence, p(label wrong);
    None without a stored audit."""
    audit = stored_audit(analysis)
    if audit is None or audit.suggested[index] < 0:
        return None
    return (f"Suggested label **{plain(names[int(audit.suggested[index])])}** (confidence "
            f"{float(audit.confidence[index]):.0%}; probability the given label is wrong "
            f"{float(audit.p_wrong[index]):.0%}, dataset audit)")
