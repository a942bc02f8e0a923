"""Why a sample is flagged: the two parts of its importance bound, and the classifier's view of it.

The built-in importance (:mod:`coreclean.importance.sensitivity`) ranks by the bound
``b_i = loss_i + ||p_i - e_{y_i}|| sqrt(h_i / c)`` — a *loss term* (``-log p(label)``: the label disagrees with the
model) plus a *leverage term* (the sample is also an outlier of the feature cloud). Their shares of ``b_i`` say
which of the two put a sample on top. The build stores both terms (``loss_term_train``, ``leverage_term_train``,
computed once by :func:`~coreclean.importance.sensitivity.bound_terms`); :func:`bound_terms_of` reads them, and
recomputes them the same way only for analyses built before they were stored (one streamed ``O(n d^2)`` pass).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .leverage import leverage
from .sensitivity import bound_terms as formula_terms
from ..classifier.model import label_statistics


@dataclass(frozen=True)
class BoundTerms:
    """Per-sample (n,) arrays for every training sample (NaN for rows removed by review, which are not scored).

    loss : ``-log p(label)``.   leverage_term : ``||p - e_y|| sqrt(h / c)``.   p_pred : probability of the
    predicted class (the stored analysis keeps only its argmax).
    """

    loss: np.ndarray
    leverage_term: np.ndarray
    p_pred: np.ndarray

    def bound(self) -> np.ndarray:
        """(n,) ``loss + leverage_term``; the built-in importance is ``bound / (2 sum bound) + 1 / (2 n_kept)``."""
        return self.loss + self.leverage_term


@dataclass(frozen=True)
class Reason:
    """What puts training sample ``index`` where it is in the ranking."""

    index: int
    label: int
    p_label: float
    predicted: int
    p_predicted: float
    loss_share: float  # loss term / bound, in [0, 1]; NaN when the sample is not scored
    leverage_share: float  # 1 - loss_share

    def summary(self, names) -> str:
        """One line for a tile, e.g. ``p(label) 0.03 · pred 8 (0.91) · loss 78% · outlier 22%``."""
        text = f"p(label) {self.p_label:.2f} · pred {names[self.predicted]} ({self.p_predicted:.2f})"
        if np.isfinite(self.loss_share):
            text += f" · loss {self.loss_share:.0%} · outlier {self.leverage_share:.0%}"
        return text


def bound_terms(X: np.ndarray, y: np.ndarray, coef: np.ndarray, removed: np.ndarray | None = None, *,
                leverage_scores: np.ndarray | None = None) -> BoundTerms:
    """Both terms of the importance bound for features ``X`` (n, d) (a memmap is streamed), labels ``y`` (n,) and
    classifier ``coef`` (d + 1, K), with leverage and curvature taken over the rows not ``removed`` ((n,) bool).

    ``leverage_scores`` ((n,), leverage of ``[X, 1]`` over the kept rows) skips the ``O(n d^2)`` part when the
    build stored it.
    """
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    if X.shape[0] != n:
        raise ValueError(f"X has {X.shape[0]} rows but y has {n}; pass the training features and labels together.")
    keep = np.ones(n, dtype=bool) if removed is None else ~np.asarray(removed, dtype=bool)
    if keep.shape != (n,) or not keep.any():
        raise ValueError(f"removed: expected a (n,) = ({n},) boolean mask that keeps at least one row.")
    rows = np.flatnonzero(keep)
    X_kept = X if keep.all() else np.asarray(X[rows], dtype=np.float32)
    stats = label_statistics(X_kept, y[rows], coef)
    if leverage_scores is None:
        h = leverage(X_kept)
    else:
        h = np.asarray(leverage_scores, dtype=np.float64)
        h = h if len(h) == len(rows) else h[rows]
    loss, lev, p_pred = (np.full(n, np.nan) for _ in range(3))
    loss[rows], lev[rows] = formula_terms(stats, h)
    p_pred[rows] = stats["p_pred"]
    return BoundTerms(loss=loss, leverage_term=lev, p_pred=p_pred)


def reasons(indices: np.ndarray, terms: BoundTerms, y: np.ndarray, pred: np.ndarray,
            p_label: np.ndarray) -> list[Reason]:
    """A :class:`Reason` for each of ``indices`` (m,), from ``terms`` and the stored (n,) ``y``, ``pred`` and
    ``p_label`` of the analysis (``Analysis.y_train``, ``pred_train``, ``p_label_train``)."""
    out = []
    for i in np.asarray(indices, dtype=np.int64).tolist():
        loss, lev = float(terms.loss[i]), float(terms.leverage_term[i])
        total = loss + lev
        share = loss / total if np.isfinite(total) and total > 0 else float("nan")
        out.append(Reason(index=i, label=int(y[i]), p_label=float(p_label[i]), predicted=int(pred[i]),
                          p_predicted=float(terms.p_pred[i]), loss_share=share, leverage_share=1.0 - share))
    return out


def bound_terms_of(analysis) -> BoundTerms:
    """The importance bound's terms of an :class:`~coreclean.analysis.reader.Analysis` (original or revision): the
    stored ``loss_term_train`` / ``leverage_term_train`` / ``p_pred_train``, or, for analyses built before those
    were stored, :func:`bound_terms` recomputed (using a stored ``leverage_train`` when there is one)."""
    stored = [analysis.stack(name) for name in ("loss_term_train", "leverage_term_train", "p_pred_train")]
    if all(array is not None for array in stored):
        return BoundTerms(*(np.asarray(array, dtype=np.float64) for array in stored))
    return bound_terms(analysis.x_train, analysis.y_train, analysis.coef, analysis.removed_train,
                       leverage_scores=analysis.stack("leverage_train"))
