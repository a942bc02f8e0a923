"""The Decisions page's exchange with Label Studio and the cleaned-dataset download: what an uploaded export would
change (a preview table), and the cached facts the download buttons need."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from coreclean import Analysis
from coreclean.review.exchange import downloads, label_studio
from coreclean.review.log import Decision, ReviewLog

PREVIEW_COLUMNS = ["sample", "current decision", "new decision", "new label", "reviewer"]


@dataclass(frozen=True)
class ImportPreview:
    """An uploaded export, read: ``changes`` are the answers recording would write now."""

    answers: list[label_studio.Answer]
    changes: list[label_studio.Answer]
    skipped: int          # tasks without an answer


def read_upload(analysis: Analysis, data: bytes, file_name: str,
                decided: dict[int, Decision]) -> ImportPreview:
    """Read Label Studio's JSON export ``data`` (uploaded as ``file_name``) against the log's current decisions
    ``decided``; ValueError (one message naming the file and task) when it is not an export of this analysis."""
    answers, skipped = label_studio.parse_export(data, analysis, source=file_name)
    return ImportPreview(answers, label_studio.pending(answers, decided), skipped)


def _label(decision: Decision | None, names: Sequence[str]) -> str:
    if decision is None:
        return "—"
    return (f"mislabeled → {names[decision.new_label]}" if decision.decision == "mislabeled"
            else decision.decision)


def preview_rows(preview: ImportPreview, decided: dict[int, Decision], names: Sequence[str]) -> list[dict]:
    """One row per change: the sample, its current decision, the new decision, the new label (mislabeled only),
    the reviewer (the annotator)."""
    return [dict(zip(PREVIEW_COLUMNS, (a.sample, _label(decided.get(a.sample), names), a.decision,
                                       names[a.new_label] if a.new_label is not None else "", a.reviewer or "")))
            for a in preview.changes]


def record_upload(log: ReviewLog, preview: ImportPreview, file_name: str) -> None:
    """The Record button's callback: record the preview's answers (only those still differing from the log, in one
    transaction), then offer a fresh uploader and say how many were recorded (``ls_recorded``)."""
    written = label_studio.record_decisions(log, preview.answers)
    st.session_state["ls_uploads"] = st.session_state.get("ls_uploads", 0) + 1
    st.session_state["ls_recorded"] = f"Recorded {len(written)} decisions from {file_name}."


@st.cache_data(show_spinner=False, max_entries=8)
def _dataset_bytes(directory: str) -> int:
    return downloads.dataset_bytes(Analysis.load(directory))


def zip_refusal(analysis: Analysis) -> str | None:
    """Why the cleaned dataset is not offered as a ZIP (too large), or ``None``; the size is read once."""
    return downloads.zip_refusal(analysis, _dataset_bytes(str(analysis.directory)))
