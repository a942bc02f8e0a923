"""What leaves coreclean: corrections and cleaned labels as CSV / ``.npy`` bytes, ready to download or write, and
the table of every signal per training sample (:func:`issues_table`).

The dataset audit's suggestion (``suggested_label``, ``suggested_name``, ``suggestion_confidence``,
``p_label_wrong``) is handed in by the caller as any object with the audit's per-sample arrays
(:class:`SuggestionArrays`, e.g. :class:`coreclean.audit.audit.Audit`): review/ sits upstream of audit/.
"""
from __future__ import annotations

import csv
import io
from typing import Protocol

import numpy as np
import pandas as pd

from ..data.files import csv_safe
from ..quality.issues import quality_scores
from ..quality.thresholds import table_columns
from . import backup as log_backup
from .log import Decision, ReviewLog, apply_corrections

SUGGESTION_COLUMNS = ("suggested_label", "suggested_name", "suggestion_confidence", "p_label_wrong")


class SuggestionArrays(Protocol):
    """The dataset audit's per-sample arrays over the training set: suggested (n,) int (-1: no suggestion, a
    sample removed by review), confidence (n,) float (probability the suggestion is the true label) and p_wrong
    (n,) float (probability the given label is wrong; NaN where there is no suggestion)."""

    suggested: np.ndarray
    confidence: np.ndarray
    p_wrong: np.ndarray


def suggestion_columns(n: int, classes: list[str], suggestions: SuggestionArrays | None) -> dict[str, object]:
    """The four :data:`SUGGESTION_COLUMNS` for ``n`` training samples: the audit's values, or missing values (empty
    CSV cells) where ``suggestions`` is None or a sample has no suggestion."""
    if suggestions is None:
        return {"suggested_label": pd.array([None] * n, dtype="Int64"),
                "suggested_name": np.full(n, "", dtype=object),
                "suggestion_confidence": np.full(n, np.nan), "p_label_wrong": np.full(n, np.nan)}
    suggested = np.asarray(suggestions.suggested, dtype=np.int64)
    if len(suggested) != n:
        raise ValueError(f"the audit holds {len(suggested)} samples, the analysis {n}; run the audit again.")
    has = suggested >= 0
    names = np.asarray(list(classes) + [""], dtype=object)  # index -1: no suggestion -> ""
    return {"suggested_label": pd.arrays.IntegerArray(suggested, ~has),
            "suggested_name": names[suggested],
            "suggestion_confidence": np.where(has, np.asarray(suggestions.confidence, dtype=np.float64), np.nan),
            "p_label_wrong": np.where(has, np.asarray(suggestions.p_wrong, dtype=np.float64), np.nan)}


def suggestion_cells(index: int, classes: list[str], suggestions: SuggestionArrays | None) -> list[str]:
    """Sample ``index``'s :data:`SUGGESTION_COLUMNS` as CSV cells (probabilities to 6 significant digits, as the
    issues table); four empty cells without a suggestion."""
    if suggestions is None or int(suggestions.suggested[index]) < 0:
        return ["", "", "", ""]
    label = int(suggestions.suggested[index])
    return [str(label), classes[label], f"{float(suggestions.confidence[index]):.6g}",
            f"{float(suggestions.p_wrong[index]):.6g}"]


def corrections_csv(decisions: dict[int, Decision], classes: list[str], ids: list[str] | None = None,
                    suggestions: SuggestionArrays | None = None) -> str:
    """CSV of every non-'ok' decision: index, id (path or index), old/new label and class names, decision,
    reviewer, then the dataset audit's :data:`SUGGESTION_COLUMNS` for the sample (empty without ``suggestions``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "id", "old_label", "new_label", "decision", "old_class", "new_class", "reviewer",
                     *SUGGESTION_COLUMNS])
    for sample in sorted(decisions):
        d = decisions[sample]
        if d.decision == "ok":
            continue
        new = "" if d.new_label is None else d.new_label
        writer.writerow(csv_safe([sample, ids[sample] if ids is not None else sample, d.old_label, new, d.decision,
                                  classes[d.old_label], classes[d.new_label] if d.new_label is not None else "",
                                  d.reviewer or "", *suggestion_cells(sample, classes, suggestions)]))
    return out.getvalue()


def cleaned_labels_npy(y: np.ndarray, decisions: dict[int, Decision]) -> bytes:
    """``y_train.npy`` bytes with corrections applied; removed samples get label -1 (rows stay aligned with x)."""
    labels, keep = apply_corrections(y, decisions)
    labels[~keep] = -1
    buffer = io.BytesIO()
    np.save(buffer, labels, allow_pickle=False)
    return buffer.getvalue()


def cleaned_labels_csv(paths: list[str], y: np.ndarray, decisions: dict[int, Decision], classes: list[str]) -> str:
    """ImageFolder mapping ``path,label,status`` (status keep|remove); image files are never moved."""
    labels, keep = apply_corrections(y, decisions)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["path", "label", "status"])
    for path, label, kept in zip(paths, labels, keep):
        writer.writerow(csv_safe([path, classes[label], "keep" if kept else "remove"]))
    return out.getvalue()


def logged_decisions(analysis) -> dict[int, Decision]:
    """Current decisions of the analysis's review log (shared by its lineage); {} when no log was ever written.
    Read only: nothing is created or written, so an analysis on a read-only mount exports too."""
    root = analysis.root_analysis
    if not (root / "reviews.sqlite").exists() and not log_backup.backups(root / "reviews.sqlite"):
        return {}  # (deleted, with backups left: ReviewLog says so)
    return ReviewLog(root, len(analysis.y_train), analysis.n_classes, read_only=True).current()


def issues_table(analysis, decided: dict[int, Decision] | None = None,
                 thresholds: dict[str, float] | None = None,
                 suggestions: SuggestionArrays | None = None) -> pd.DataFrame:
    """Every signal per training sample, one row each (Datalab ``get_issues()`` style), in index order.

    Columns: index, path (when the source has files), label, label_name, predicted, predicted_name, p_label,
    importance; outlier, duplicate_of and zero_shot when the analysis stores them (``outlier_train`` /
    ``duplicate_of_train`` / ``zero_shot_train``: p(label) by the text tower of a CLIP-style backbone); removed (revisions); ``<issue>_score`` and ``is_<issue>_issue`` for each quality
    issue that applies (:func:`coreclean.quality.thresholds.table_columns`, ``thresholds`` overriding the defaults);
    decision ('' when undecided) and new_label (mislabeled decisions); last the dataset audit's
    :data:`SUGGESTION_COLUMNS` from ``suggestions`` (empty cells without one).
    """
    n = len(analysis.y_train)
    names = np.asarray(analysis.classes, dtype=object)
    columns: dict[str, object] = {"index": np.arange(n)}
    paths = analysis.paths_train
    if paths is not None:
        columns["path"] = np.asarray(paths, dtype=str)
    y, pred = np.asarray(analysis.y_train), np.asarray(analysis.pred_train)
    columns.update(label=y, label_name=names[y], predicted=pred, predicted_name=names[pred],
                   p_label=np.asarray(analysis.p_label_train), importance=np.asarray(analysis.importance))
    for column, stored in (("outlier", "outlier_train"), ("duplicate_of", "duplicate_of_train"),
                           ("zero_shot", "zero_shot_train")):  # zero_shot: backbones with a text tower
        values = analysis.stack(stored)
        if values is not None and len(values) == n:
            columns[column] = np.asarray(values)
    if analysis.is_revision:
        columns["removed"] = np.asarray(analysis.removed_train, dtype=bool)
    scores = quality_scores(analysis)
    if scores is not None and analysis.meta.get("quality"):
        columns.update(table_columns(np.asarray(scores), thresholds, analysis.meta["quality"]))
    decisions, new_labels = [""] * n, [None] * n
    for i, d in (decided or {}).items():
        if 0 <= i < n:
            decisions[i] = d.decision
            new_labels[i] = d.new_label if d.decision == "mislabeled" else None
    columns["decision"] = np.asarray(decisions, dtype=object)
    columns["new_label"] = pd.array(new_labels, dtype="Int64")
    columns.update(suggestion_columns(n, list(analysis.classes), suggestions))
    return pd.DataFrame(columns)


def table_rows(table: pd.DataFrame):
    """The rows of ``table`` as CSV cells: floats to 6 significant digits, missing values empty, text that a
    spreadsheet would run as a formula escaped (:func:`~coreclean.data.files.csv_safe`)."""
    formats = [(lambda v: "" if v != v else f"{v:.6g}") if table[c].dtype.kind == "f" else
               (lambda v: "" if v is pd.NA or v is None else v) for c in table.columns]
    for row in table.itertuples(index=False, name=None):
        yield csv_safe(fmt(value) for fmt, value in zip(formats, row))


def issues_csv(table: pd.DataFrame) -> str:
    """``table`` (from :func:`issues_table`) as CSV text, the same cells the ``export`` command writes."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(list(table.columns))
    writer.writerows(table_rows(table))
    return out.getvalue()
