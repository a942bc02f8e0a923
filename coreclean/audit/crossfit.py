"""Out-of-sample class probabilities by cross-fitting: every row is scored by a classifier that never saw it.

In-sample probabilities flatter a mislabeled sample (the fit bent toward its label), so every dataset-level count
the audit makes (the confident joint, the noise matrix, the calibration) is taken on out-of-fold probabilities, as
confident learning (Northcutt et al. 2021) prescribes. Here: the build's own classifier
(:func:`out_of_fold_proba`, :func:`coreclean.classifier.solver.fit_softmax`: standardized, LDA-started, streamed
L-BFGS), fitted K times with the held-out fold given weight 0, so features stay memory-mapped and only row batches
are ever in memory; and linear discriminant analysis from one pass of per-fold moments (:func:`lda_fold_coefs`) for
sets too large for that. The audit's two-layer net is :mod:`coreclean.audit.mlp`.
"""
from __future__ import annotations

import operator
from functools import reduce
from typing import Callable

import numpy as np

from ..classifier.model import predict_proba
from ..classifier.lazy_torch import torch
from ..classifier.row_passes import (BATCH, Moments, centred_sums, mean_scale, moments, remote_passes,
                                        standardize)
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


def fold_moments(X, y: np.ndarray, n_classes: int, fold: np.ndarray, folds: int, *, batch: int = BATCH
                 ) -> list[Moments]:
    """Per fold k the :class:`~coreclean.classifier.row_passes.Moments` of the rows with ``fold == k`` (-1:
    unused), all in one pass over ``X`` in row order with one shared standardization (:func:`shared_reference`;
    where an executor runs the passes over X, one pass per fold there, standardized as fold 0).
    Row order matters on a memmap: five scattered per-fold passes read the whole file five times (the LDA cross-fit
    of 1.28M x 512 x 1000 classes took 23 s that way, 12 s so)."""
    if remote_passes(X) is not None:  # an executor runs passes over X: one per fold, as it reduces them
        reference = None
        out = []
        for k in range(folds):
            out.append(moments(X, y, n_classes, sample_weight=(fold == k).astype(np.float64), reference=reference))
            reference = reference or out[0]
        return out
    mean, scale = shared_reference(X, np.flatnonzero(fold >= 0))
    d = X.shape[1]
    second = [torch.zeros(d, d, dtype=torch.float64) for _ in range(folds)]
    first = [torch.zeros(d, dtype=torch.float64) for _ in range(folds)]
    class_sums = [torch.zeros(n_classes, d, dtype=torch.float64) for _ in range(folds)]
    for start in range(0, len(X), batch):
        block_fold = fold[start:start + batch]
        used = block_fold >= 0
        z = standardize(np.asarray(X[start:start + batch], dtype=np.float32)[used], mean, scale, torch.device("cpu"))
        release_rows(X, start, start + batch)  # after the read: a memmap's block is a view of its pages
        labels, block_fold = torch.from_numpy(y[start:start + batch][used].astype(np.int64)), block_fold[used]
        for k in range(folds):
            mine = torch.from_numpy(np.flatnonzero(block_fold == k))
            zk = z[mine]
            second[k] += (zk.T @ zk).double()
            first[k] += zk.sum(dim=0, dtype=torch.float64)
            class_sums[k] += torch.zeros(n_classes, d).index_add_(0, labels[mine], zk).double()
    out = []
    for k in range(folds):
        counts = np.bincount(y[fold == k], minlength=n_classes).astype(np.float64)
        out.append(Moments(float(counts.sum()), first[k].numpy(), second[k].numpy(), class_sums[k].numpy(), counts,
                           mean, scale))
    return out


def shared_reference(X, rows: np.ndarray, *, at_most: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(mean, scale) (d,) of an evenly strided subset of ``rows`` (at most ``at_most``): the standardization the
    folds' moments share. Any fixed one gives the same folds' LDA up to its shrinkage target; a subset saves a pass."""
    subset = rows[::max(1, -(-len(rows) // at_most))]
    shift = np.asarray(X[subset[0]], dtype=np.float64)
    # small batches: the kernel maps the pages around every scattered read, a batch's whole span of the file
    return mean_scale(shift, *centred_sums(X, subset, np.ones(len(X)), shift, torch.device("cpu"), batch=2048))


def lda_fold_coefs(X, y: np.ndarray, n_classes: int, fold: np.ndarray, folds: int, *,
                   progress: Progress | None = None) -> list[np.ndarray]:
    """Per fold k a (d + 1, K) raw-feature coef of linear discriminant analysis fitted on the rows of the other
    folds: the cross-fit of large sets, where ``folds`` softmax fits over every row cost folds x the build's fit.
    The folds' moments take one streamed pass (:func:`fold_moments`) and are summed per fit. fold : (n,) in
    [0, folds), -1 unused."""
    if progress:
        progress("cross-fit", 0, 2)
    per_fold = fold_moments(X, y, n_classes, fold, folds)
    if progress:
        progress("cross-fit", 1, 2)
    coefs = []
    for k in range(folds):
        m = reduce(operator.add, (per_fold[j] for j in range(folds) if j != k))
        W, b = lda_start(m)
        coefs.append(to_raw(W, b, m.mean, m.scale))
    if progress:
        progress("cross-fit", 2, 2)
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
