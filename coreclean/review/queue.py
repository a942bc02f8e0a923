"""Review queues: which training samples a review grid shows, and in which order.

A queue is an (m,) int64 array of training indices, most important first. A class's own queue is
:meth:`Analysis.ranked`; the functions here build the others from plain arrays — every class at once (ranked by
importance normalized within its class, the score the dashboard displays), one confusion pair of the training set,
or any selection (a map lasso, a duplicate group) put into importance order. Samples removed by review
(``removed``, (n,) bool) never enter a queue.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrainingPair:
    """Training samples labelled ``true`` that the classifier predicts as ``predicted`` (``count`` of them)."""

    true: int
    predicted: int
    count: int


def by_score(indices: np.ndarray, score: np.ndarray, *, descending: bool = True) -> np.ndarray:
    """``indices`` (m,) sorted by ``score[indices]`` (``score`` (n,)), highest first unless ``descending=False``;
    ties keep the order of ``indices``. Feeds a grid from any selection (map lasso, duplicate group)."""
    indices = np.asarray(indices, dtype=np.int64)
    score = np.asarray(score, dtype=np.float64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(score)):
        raise ValueError(f"indices: values must lie in 0..{len(score) - 1} (training indices of the analysis).")
    key = -score[indices] if descending else score[indices]
    return indices[np.argsort(key, kind="stable")]


def all_classes(class_score: np.ndarray, removed: np.ndarray | None = None, *,
                descending: bool = True) -> np.ndarray:
    """Every training sample not ``removed``, ranked by ``class_score`` (n,) — importance scaled to (0, 1] within
    each class (:attr:`Analysis.class_importance`) — so the top of every class comes first, interleaved."""
    class_score = np.asarray(class_score, dtype=np.float64)
    kept = _kept(removed, len(class_score), "removed")
    return by_score(np.flatnonzero(kept), class_score, descending=descending)


def confusion_pair(y: np.ndarray, pred: np.ndarray, score: np.ndarray, true: int, predicted: int,
                   removed: np.ndarray | None = None, *, descending: bool = True) -> np.ndarray:
    """Training samples labelled ``true`` and predicted ``predicted`` (``y``, ``pred``, ``score`` all (n,)), not
    ``removed``, most important first: the training side of a confusion-matrix cell."""
    y, pred = np.asarray(y), np.asarray(pred)
    if y.shape != pred.shape or len(y) != len(score):
        raise ValueError(f"y {y.shape}, pred {pred.shape} and score ({len(score)},) must have the same length n.")
    members = np.flatnonzero((y == true) & (pred == predicted) & _kept(removed, len(y), "removed"))
    return by_score(members, score, descending=descending)


def training_pairs(y: np.ndarray, pred: np.ndarray, n_classes: int, removed: np.ndarray | None = None, *,
                   limit: int | None = None) -> list[TrainingPair]:
    """Off-diagonal (label, prediction) pairs of the training set with their counts, most frequent first (ties by
    label, then prediction); at most ``limit`` of them. Counted with ``bincount`` so 1000 classes stay cheap."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    if y.shape != pred.shape:
        raise ValueError(f"y {y.shape} and pred {pred.shape} must have the same shape (n,).")
    keep = _kept(removed, len(y), "removed") & (y != pred)
    cells = np.bincount(y[keep] * n_classes + pred[keep], minlength=n_classes * n_classes)
    present = np.flatnonzero(cells)
    present = present[np.argsort(-cells[present], kind="stable")]
    if limit is not None:
        present = present[:limit]
    return [TrainingPair(int(c // n_classes), int(c % n_classes), int(cells[c])) for c in present]


def _kept(removed: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if removed is None:
        return np.ones(n, dtype=bool)
    removed = np.asarray(removed, dtype=bool)
    if removed.shape != (n,):
        raise ValueError(f"{name}: expected a (n,) = ({n},) boolean mask, got shape {removed.shape}.")
    return ~removed
