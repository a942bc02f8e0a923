"""Apply review decisions, refit the classifier and recompute importance; compare before vs after.

The refit is warm-started from the analysis's classifier, which also replaces the first of the two fits a cold
build does: a handful of corrected labels moves the optimum only a little. Softmax couples every class, so the model
itself is refit globally; what stays local is the display normalization (only classes that gained or lost
samples change). Results are stored as a new revision next to the analysis; the original is never modified.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .importance import CoresetSensitivity
from .model import ConfusionPair, confusion_matrix, confusion_pairs, predict_proba
from .review import Decision, apply_corrections


@dataclass
class Revision:
    directory: Path
    accuracy_before: float
    accuracy_after: float
    pairs_before: list[ConfusionPair]
    pairs_after: list[ConfusionPair]
    relabelled: int
    removed: int
    changed_classes: list[int]
    seconds: float


def retrain(analysis, decisions: dict[int, Decision], *,
            progress: Callable[[str, int, int], None] | None = None) -> Revision:
    """Apply ``decisions`` to ``analysis`` (an :class:`~coreclean.analysis.Analysis`), refit, store a revision."""
    report = progress or (lambda stage, done, total: None)
    started = time.perf_counter()
    labels, keep = apply_corrections(analysis.y_train, decisions)
    changed = np.flatnonzero((labels != analysis.y_train) | ~keep)
    K = analysis.n_classes
    report("refit", 0, 2)
    x_kept = np.asarray(analysis.x_train[keep] if not keep.all() else analysis.x_train, dtype=np.float32)
    # The previous classifier stands in for the first fit: it picks the samples to trim under the corrected labels,
    # and the one refit starts from it.
    est = CoresetSensitivity(C=float(analysis.meta.get("C", 1.0))).fit(
        x_kept, labels[keep], n_classes=K, coef=np.array(analysis.coef))
    report("refit", 1, 2)
    pred_test = predict_proba(analysis.x_test, est.coef_).argmax(axis=1)
    confusion = confusion_matrix(analysis.y_test, pred_test, K)
    importance = np.zeros(len(labels))
    importance[keep] = est.importance_
    revision = analysis.directory / "revisions" / time.strftime("%Y%m%dT%H%M%S")
    suffix = 0
    while revision.exists():
        suffix += 1
        revision = revision.with_name(f"{revision.name.split('-')[0]}-{suffix}")
    revision.mkdir(parents=True)
    for name, value in {"y_train": labels, "keep": keep, "coef": est.coef_, "importance": importance,
                        "pred_test": pred_test, "confusion": confusion}.items():
        np.save(revision / f"{name}.npy", value, allow_pickle=False)
    accuracy = float(np.mean(pred_test == analysis.y_test))
    changed_classes = sorted({int(c) for c in np.concatenate([analysis.y_train[changed], labels[changed]])})
    seconds = time.perf_counter() - started
    (revision / "meta.json").write_text(json.dumps({
        "accuracy": accuracy, "accuracy_before": analysis.accuracy, "relabelled": int((labels != analysis.y_train).sum()),
        "removed": int((~keep).sum()), "decisions": len(decisions), "seconds": round(seconds, 2),
    }, indent=1))
    report("refit", 2, 2)
    return Revision(revision, analysis.accuracy, accuracy, analysis.pairs(), confusion_pairs(confusion),
                    int((labels != analysis.y_train).sum()), int((~keep).sum()), changed_classes, seconds)
