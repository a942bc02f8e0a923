"""Apply review decisions, refit the classifier and recompute importance: a new round, stored as a revision.

The classifier is fitted afresh on the corrected labels, exactly as a build would fit it (the old model was fitted
to the very labels being corrected, and since the solver starts from a closed-form LDA fit a warm start would save
little): a round's model and ranking are those of a build on the corrected labels. Softmax couples every class, so
the model is refit globally. The revision is written by the same store as a build (``<analysis>/revisions/<stamp>``,
atomically) and opens with :meth:`Analysis.load`; it keeps every row (removed samples are flagged, not deleted), so
sample indices, and therefore the review log of the original build, stay valid through every round.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..classifier.model import ConfusionPair, confusion_pairs
from ..importance.sensitivity import label_statistics
from ..review.log import Decision, apply_corrections
from . import store
from .params import BuildParams
from .pipeline import evaluate_stage, fit_stage
from .timing import StageClock


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
    importance: str  # the importance backend the round scored with (the build's)


def retrain(analysis, decisions: dict[int, Decision], *,
            progress: Callable[[str, int, int], None] | None = None) -> Revision:
    """Apply ``decisions`` (every current decision of the lineage's review log) to the original labels of
    ``analysis`` (an :class:`~coreclean.analysis.reader.Analysis`, original or revision), refit, store a revision."""
    started = time.perf_counter()
    params = BuildParams.from_meta(analysis.meta, where=f"{analysis.directory}/meta.json")
    original = store.load_array([analysis.root_analysis], "y_train")
    labels, keep = apply_corrections(original, decisions)
    if keep.sum() < 2 or len(np.unique(labels[keep])) < 2:
        raise ValueError("the decisions remove too much: at least two classes must keep samples.")
    x_train = analysis.x_train
    x_kept = x_train if keep.all() else np.asarray(x_train[keep], dtype=np.float32)
    K = analysis.n_classes
    with StageClock(progress) as clock:
        # A fresh fit with the build's own params (C, sample cap, importance backend), not one started from the old
        # model: the round's model and ranking are then exactly those a build on the corrected labels would give.
        fitted = fit_stage(x_kept, labels[keep], K, params, progress=clock)
        evaluated = evaluate_stage(analysis.x_test, analysis.y_test, fitted.coef, K, progress=clock)

    def every_row(kept_values: np.ndarray, fill) -> np.ndarray:  # removed rows keep their place: indices stay valid
        full = np.full(len(labels), fill, dtype=kept_values.dtype)
        full[keep] = kept_values
        return full

    per_sample = {"importance": every_row(fitted.importance, 0.0), "pred_train": every_row(fitted.pred_train, -1),
                  "p_label_train": every_row(fitted.p_label_train, 0.0),
                  "p_pred_train": every_row(fitted.p_pred_train, 0.0),
                  "loss_term_train": every_row(fitted.loss_term_train, np.nan),
                  "leverage_term_train": every_row(fitted.leverage_term_train, np.nan)}
    if not keep.all():  # removed rows still get a prediction for display
        gone = np.flatnonzero(~keep)
        stats = label_statistics(np.asarray(x_train[gone], np.float32), labels[gone], fitted.coef)
        per_sample["pred_train"][gone], per_sample["p_label_train"][gone] = stats["pred"], stats["p_label"]
        per_sample["p_pred_train"][gone] = stats["p_pred"]
    changed = np.flatnonzero((labels != original) | ~keep)
    seconds = time.perf_counter() - started
    parent_round = int((analysis.meta.get("lineage") or {}).get("round", 0))
    meta = {**analysis.meta, "accuracy": evaluated.accuracy, "classifier_fit_samples": fitted.fit_samples,
            "lineage": {"parent": "../..", "round": parent_round + 1, "decisions_applied": len(decisions),
                        "errors_applied": sum(d.decision != "ok" for d in decisions.values()),
                        "relabelled": int((labels != original).sum()), "removed": int((~keep).sum()),
                        "accuracy_before": analysis.accuracy, "seconds": round(seconds, 2)},
            "params": params.to_meta(), "stages": clock.stages_, "build_seconds": round(seconds, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    directory = _new_revision_dir(analysis.directory)
    store.write_analysis(directory, {"y_train": labels, "removed_train": ~keep, "coef": fitted.coef, **per_sample,
                                     "pred_test": evaluated.pred_test, "p_pred_test": evaluated.p_pred_test,
                                     "confusion": evaluated.confusion}, meta)
    changed_classes = sorted({int(c) for c in np.concatenate([original[changed], labels[changed]])})
    return Revision(directory, analysis.accuracy, evaluated.accuracy, analysis.pairs(),
                    confusion_pairs(evaluated.confusion), int((labels != original).sum()), int((~keep).sum()),
                    changed_classes, seconds, params.importance)


def _new_revision_dir(parent: Path) -> Path:
    base = Path(parent) / "revisions" / time.strftime("%Y%m%dT%H%M%S")
    candidate, suffix = base, 0
    while candidate.exists() or store.partial_dir(candidate).exists():
        suffix += 1
        candidate = base.with_name(f"{base.name}-{suffix}")
    return candidate
