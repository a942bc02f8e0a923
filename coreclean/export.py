"""What leaves coreclean: corrections and cleaned labels as CSV / ``.npy`` bytes, ready to download or write."""
from __future__ import annotations

import csv
import io

import numpy as np

from .review import Decision, apply_corrections


def corrections_csv(decisions: dict[int, Decision], classes: list[str], ids: list[str] | None = None) -> str:
    """CSV of every non-'ok' decision: index, id (path or index), old/new label and class names, decision."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "id", "old_label", "new_label", "decision", "old_class", "new_class", "reviewer"])
    for sample in sorted(decisions):
        d = decisions[sample]
        if d.decision == "ok":
            continue
        new = "" if d.new_label is None else d.new_label
        writer.writerow([sample, ids[sample] if ids is not None else sample, d.old_label, new, d.decision,
                         classes[d.old_label], classes[d.new_label] if d.new_label is not None else "",
                         d.reviewer or ""])
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
        writer.writerow([path, classes[label], "keep" if kept else "remove"])
    return out.getvalue()
