"""Out-of-sample class probabilities by cross-fitting: every row is scored by a classifier that never saw it.

In-sample probabilities flatter a mislabeled sample (the fit bent toward its label), so every dataset-level count
the audit makes (the confident joint, the noise matrix, the calibration) is taken on out-of-fold probabilities, as
confident learning (Northcutt et al. 2021) prescribes. The classifier is coreclean's own
(:func:`coreclean.classifier.solver.fit_softmax`: standardized, LDA-started, streamed L-BFGS), fitted K times with
the held-out fold given weight 0, so features stay memory-mapped and only row batches are ever in memory.
"""
from __future__ import annotations

import operator
from functools import reduce
from typing import Callable

import numpy as np

from ..classifier.model import predict_proba
from ..classifier.row_passes import moments
from ..classifier.solver import fit_softmax, lda_start, to_raw
from ..data.memmap_pages import release_rows

Progress = Callable[[str, int, int], None]


def fold_ids(y: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """(n,) int fold of every row, stratified: each class is dealt round-robin over the folds in a random order."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        out[members] = (np.arange(len(members)) + rng.integers(folds)) % folds
    return out


def out_of_fold_proba(X, y: np.ndarray, n_classes: int, *, folds: int = 5, C: float = 1.0, seed: int = 0,
                      max_iter: int = 100, max_passes: int | None = None, rows: np.ndarray | None = None,
                      progress: Progress | None = None) -> np.ndarray:
    """Cross-fitted class probabilities.

    Parameters
    ----------
    X : (n, d) features (a memmap is streamed).   y : (n,) int labels in [0, n_classes).
    folds : K >= 2.   C, max_iter, max_passes : as for :func:`~coreclean.classifier.solver.fit_softmax`.
    rows : (m,) rows to use (default all); the others get NaN probabilities.

    Returns
    -------
    proba : (n, n_classes) float32; row i comes from the fit on the folds not holding i.
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    used = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    fold = np.full(n, -1, dtype=np.int64)
    fold[used] = fold_ids(y[used], folds, seed)
    proba = np.full((n, n_classes), np.nan, dtype=np.float32)
    for k in range(folds):
        if progress:
            progress("cross-fit", k, folds)
        weight = (fold >= 0) & (fold != k)
        held = np.flatnonzero(fold == k)
        if not len(held):
            continue
        fit = fit_softmax(X, y, n_classes, C=C, sample_weight=weight.astype(np.float64), max_iter=max_iter,
                          max_passes=max_passes)
        for start in range(0, len(held), 65536):  # held rows in order: memmap reads stay sequential
            block = held[start:start + 65536]
            proba[block] = predict_proba(X[block], fit.coef)
    if progress:
        progress("cross-fit", folds, folds)
    return proba


def lda_fold_coefs(X, y: np.ndarray, n_classes: int, fold: np.ndarray, folds: int, *,
                   progress: Progress | None = None) -> list[np.ndarray]:
    """Per fold k a (d + 1, K) raw-feature coef of linear discriminant analysis fitted on the rows of the other
    folds: the cross-fit of large sets, where ``folds`` softmax fits over every row cost folds x the build's fit.
    The folds' moments take one streamed pass in all (each fold's rows once, one shared standardization) and are
    summed per fit (:class:`~coreclean.classifier.row_passes.Moments` add). fold : (n,) in [0, folds), -1 unused."""
    per_fold, reference = [], None
    for k in range(folds):
        if progress:
            progress("cross-fit", k, folds + 1)
        m = moments(X, y, n_classes, sample_weight=(fold == k).astype(np.float64), reference=reference)
        reference = reference or m
        per_fold.append(m)
    coefs = []
    for k in range(folds):
        m = reduce(operator.add, (per_fold[j] for j in range(folds) if j != k))
        W, b = lda_start(m)
        coefs.append(to_raw(W, b, m.mean, m.scale))
    if progress:
        progress("cross-fit", folds + 1, folds + 1)
    return coefs


def proba_by_fold(X, rows: np.ndarray, fold: np.ndarray, coefs: list[np.ndarray], *, batch: int = 32768
                  ) -> np.ndarray:
    """(len(rows), K) float32: each of ``rows`` (sorted) scored by the coef of its own fold (fitted without it).
    Read in order a block at a time, each block's span of a memmap released after use: scattered reads of a
    memory-mapped file would otherwise map most of it into the resident set (the kernel maps the pages around every
    fault), 2.6 GB at 1.28M x 512."""
    proba = np.empty((len(rows), coefs[0].shape[1]), dtype=np.float32)
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        block = np.asarray(X[chunk], dtype=np.float32)
        release_rows(X, int(chunk[0]), int(chunk[-1]) + 1)
        for k, coef in enumerate(coefs):
            mine = np.flatnonzero(fold[chunk] == k)
            proba[start + mine] = predict_proba(block[mine], coef)
    return proba
