"""The dataset audit of one analysis: noise estimate, suggestions, overlap, balance and health, computed once and
cached in the analysis directory through the store (``audit/``), so the dashboard and ``report`` never recompute.

``audit_of(analysis)`` returns an :class:`Audit`: ``summary`` (plain JSON: every dataset-level number) and
per-sample arrays over the training set (``suggested``, ``confidence``, ``p_wrong``; -1 / NaN for samples removed
by review). An analysis directory never changes once written (a retrain writes a new one), so the cache needs no
key beyond the audit's own settings and version.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..build import store
from ..importance.sensitivity import FIT_BUDGET, MIN_PASSES
from .crossfit import fold_ids, lda_fold_coefs, out_of_fold_proba, proba_by_fold
from .health import class_balance, health_scores, overlapping_classes
from .mlp import MLP_WORK, epoch_work, mlp_out_of_fold_proba
from .noise import ANCHOR_SHARE, REFERENCE_QUANTILE, estimate_noise
from .calibrate import fit_calibration
from .suggest import CHOICE_PSEUDO, POSTERIOR_PSEUDO, suggest_from_estimate

AUDIT_VERSION = 6  # 2: ridge on the true-class prior; 3: suggestions' exact ties broken by p*;
# 4: anchors with the reference split (share 0.3), pseudo-counts in the suggestions' matrices; 5: the two-layer net
# cross-fitted on moderate sets, the posterior matched to the estimated rate; 6: the net's probabilities averaged over
# dropout passes, per-class isotonic calibration instead of one temperature
SAMPLE_ARRAYS = ("suggested", "confidence", "p_wrong")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Audit:
    """summary : JSON-ready dict (see :func:`compute_audit`).   suggested : (n,) int64 suggested label (-1: removed
    sample).   confidence : (n,) float32 probability the suggestion is the true label.   p_wrong : (n,) float32
    probability the given label is wrong (NaN: removed)."""

    summary: dict
    suggested: np.ndarray
    confidence: np.ndarray
    p_wrong: np.ndarray


def settings(folds: int = 5, seed: int = 0, bootstrap: int = 200) -> dict:
    return {"version": AUDIT_VERSION, "folds": folds, "seed": seed, "bootstrap": bootstrap,
            "method": "anchors", "anchor_share": ANCHOR_SHARE, "reference_quantile": REFERENCE_QUANTILE,
            "pseudo_counts": [POSTERIOR_PSEUDO, CHOICE_PSEUDO]}


# Cross-fitting every row of a large set costs folds x the build's fit and an (n, K) matrix (1.28M x 1000 classes:
# ~25 min and 5.1 GB). Beyond AUDIT_CELLS out-of-fold probabilities the folds' classifiers are linear discriminant
# analysis (one pass of per-fold moments over every row, :func:`~coreclean.audit.crossfit.lda_fold_coefs`), the
# dataset-level numbers come from a stratified random sample of rows (their bootstrap intervals say how sure a sample
# of that size is), and suggestions are made for the sample and for the TOP_SHARE most important rows of each class,
# the ones a reviewer sees first (bench/report_scale.py measures the 1.28M case).
AUDIT_CELLS = 20_000_000
TOP_SHARE = 0.1


def audit_scope(y: np.ndarray, rows: np.ndarray, importance: np.ndarray, n_classes: int, *, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """(sample, suggested): sorted rows cross-fitted for the noise estimate, and sorted rows that get suggestions.
    Both are ``rows`` while ``len(rows) * n_classes <= AUDIT_CELLS``; beyond, the sample takes the same share
    (``AUDIT_CELLS // n_classes`` rows in all) of every class at random, and the suggested rows add each class's
    ``TOP_SHARE`` highest ``importance``."""
    if len(rows) * n_classes <= AUDIT_CELLS:
        return rows, rows
    rng = np.random.default_rng(seed)
    share = (AUDIT_CELLS // n_classes) / len(rows)
    sample, top = [], []
    order = rows[np.lexsort((-importance[rows], y[rows]))]  # by class, most important first
    bounds = np.searchsorted(y[order], np.arange(n_classes + 1))
    for c in range(n_classes):
        members = order[bounds[c]:bounds[c + 1]]
        if len(members):
            sample.append(rng.choice(members, max(1, int(round(share * len(members)))), replace=False))
            top.append(members[:int(np.ceil(TOP_SHARE * len(members)))])
    sample = np.sort(np.concatenate(sample))
    return sample, np.union1d(sample, np.concatenate(top))


def scope_line(summary: dict) -> str | None:
    """How much of the set a sampled audit read (:func:`audit_scope`), for the Overview and the report; None when
    it read every row."""
    n, sampled = summary["n"], summary.get("sampled", summary["n"])
    if sampled >= n:
        return None
    return (f"A large set: estimated from a stratified random sample of {sampled:,} of the {n:,} samples (the "
            f"intervals account for it), scored by linear discriminant analysis cross-fitted on every sample; "
            f"suggested labels for {summary['suggested']:,} samples: the sample and the {TOP_SHARE:.0%} most "
            f"important of each class.")


CLASSIFIERS = ("mlp", "linear")


def crossfit_classifier(n_rows: int, n_features: int, n_classes: int) -> str:
    """The classifier the audit cross-fits on ``n_rows`` x ``n_features`` (below ``AUDIT_CELLS``): the two-layer net
    (:mod:`coreclean.audit.mlp`) up to ``MLP_WORK`` multiply-adds per epoch, else the build's streamed softmax."""
    return "mlp" if epoch_work(n_rows, n_features, n_classes) <= MLP_WORK else "linear"


def cross_fitted_proba(x, y: np.ndarray, n_classes: int, rows: np.ndarray, *, C: float = 1.0, folds: int = 5,
                       seed: int = 0, classifier: str | None = None, progress: Progress | None = None) -> np.ndarray:
    """(n, K) out-of-fold probabilities (NaN outside ``rows``) of ``classifier`` (default
    :func:`crossfit_classifier`; "linear" gets the build's work cap: large sets a few streamed passes per fold)."""
    classifier = classifier or crossfit_classifier(len(rows), x.shape[1], n_classes)
    if classifier not in CLASSIFIERS:
        raise ValueError(f"classifier {classifier!r}: use one of {CLASSIFIERS}")
    if classifier == "mlp":
        return mlp_out_of_fold_proba(x, y, n_classes, folds=folds, seed=seed, rows=rows, progress=progress)
    per_pass = max(len(rows) * (x.shape[1] + 1) * n_classes, 1)
    passes = None if per_pass * 200 * folds <= FIT_BUDGET else max(MIN_PASSES, FIT_BUDGET // (per_pass * folds))
    return out_of_fold_proba(x, y, n_classes, folds=folds, C=C, seed=seed, rows=rows, max_passes=passes,
                             progress=progress)


def compute_audit(analysis, *, folds: int = 5, seed: int = 0, bootstrap: int = 200,
                  progress: Progress | None = None) -> Audit:
    """Cross-fit a classifier on the analysis's stored features (``x_train``; samples removed by review left out;
    the two-layer net or the build's streamed softmax, :func:`crossfit_classifier`; on large sets LDA, its noise
    estimate from a sample, :func:`audit_scope`), estimate the noise, suggest labels and score the dataset's
    health."""
    y, K = np.asarray(analysis.y_train, dtype=np.int64), analysis.n_classes
    rows = np.flatnonzero(~analysis.removed_train)
    x = analysis.x_train
    sample, scored = audit_scope(y, rows, np.asarray(analysis.importance), K, seed=seed)
    if len(sample) == len(rows):
        classifier = crossfit_classifier(len(rows), x.shape[1], K)
        proba = scored_proba = cross_fitted_proba(x, y, K, rows, C=analysis.params.C, folds=folds, seed=seed,
                                                  classifier=classifier, progress=progress)[rows]
    else:
        classifier = "lda"
        fold = np.full(len(y), -1, np.int64)
        fold[rows] = fold_ids(y[rows], folds, seed)
        coefs = lda_fold_coefs(x, y, K, fold, folds, progress=progress)
        scored_proba = proba_by_fold(x, scored, fold, coefs)
        proba = scored_proba[np.searchsorted(scored, sample)]  # the sample is part of the scored rows
    given = y[sample]
    if progress:
        progress("noise estimate", 0, 1)
    estimate = estimate_noise(proba, given, K, bootstrap=bootstrap, seed=seed)
    calibration = fit_calibration(proba, given, K, seed=seed)
    del proba
    suggested_rows, confidence_rows, wrong_rows = suggest_from_estimate(
        scored_proba, y[scored], estimate, calibration, reference=np.searchsorted(scored, sample))
    del scored_proba
    if progress:
        progress("noise estimate", 1, 1)
    n = len(y)
    suggested = np.full(n, -1, np.int64)
    confidence = np.full(n, np.nan, np.float32)
    p_wrong = np.full(n, np.nan, np.float32)
    suggested[scored], confidence[scored], p_wrong[scored] = suggested_rows, confidence_rows, wrong_rows
    given = y[rows]
    counts = np.bincount(given, minlength=K)
    overall, per_class = health_scores(estimate.class_rates, counts)
    summary = {
        "settings": settings(folds, seed, bootstrap),
        "n": int(len(rows)),
        "sampled": int(len(sample)),
        "classifier": classifier,
        "suggested": int(len(scored)),
        "classes": list(analysis.classes),
        "counts": counts.tolist(),
        "noise_rate": estimate.rate,
        "noise_interval": estimate.rate_interval.tolist(),
        "label_issues": int(round(estimate.rate * len(rows))),
        "class_noise_rates": estimate.class_rates.tolist(),
        "class_noise_intervals": estimate.class_intervals.tolist(),
        "noise_matrix": estimate.noise_matrix.tolist(),
        "joint": estimate.joint.tolist(),
        "calibration": {"method": "isotonic", "classes_own_map": int(calibration.own.sum())},
        "health": overall,
        "class_health": per_class.tolist(),
        "overlap": overlapping_classes(estimate.joint, len(rows)),
        "balance": class_balance(counts),
    }
    return Audit(summary, suggested, confidence, p_wrong)


def audit_of(analysis, *, folds: int = 5, seed: int = 0, bootstrap: int = 200, progress: Progress | None = None,
             cached_only: bool = False) -> Audit | None:
    """The audit of ``analysis``: read from its directory when stored with these settings, else computed and
    stored (where the directory is not writable, e.g. a read-only hosted cache, it is only returned).
    ``cached_only``: return ``None`` instead of computing."""
    stored = store.read_audit(analysis.directory, SAMPLE_ARRAYS)
    if stored is not None and stored[0].get("settings") == settings(folds, seed, bootstrap) \
            and all(len(a) == len(analysis.y_train) for a in stored[1].values()):
        return Audit(stored[0], **stored[1])
    if cached_only:
        return None
    audit = compute_audit(analysis, folds=folds, seed=seed, bootstrap=bootstrap, progress=progress)
    try:
        store.write_audit(analysis.directory, audit.summary,
                          {name: getattr(audit, name) for name in SAMPLE_ARRAYS})
    except OSError:
        pass  # read-only cache: the audit is still returned, just not kept
    return audit
