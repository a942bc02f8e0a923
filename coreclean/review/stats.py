"""Review progress: how much of each class was reviewed, how many errors were found, and how many are likely left.

An *error* is a sample whose current decision is not ``ok`` (``mislabeled`` or ``remove``). The estimate of the
errors left follows the hit rate of the decisions so far along the importance ranking: each class is cut into
``bins`` equal-size stretches of its ranking; in every stretch the hit rate is errors / reviewed, made non-increasing
down the ranking (pool-adjacent-violators: a more important stretch is never expected to hold fewer errors) and
smoothed with half an error per stretch (the Jeffreys prior, so a handful of ``ok`` decisions does not claim that
nothing is left). The unreviewed samples of a stretch are expected to hold its rate; a stretch nobody reviewed yet
takes the rate of the nearest reviewed stretch above it, so the estimate extrapolates the lowest hit rate reached
so far (the true rate usually keeps falling: read it as "at most about"). A class without any decision uses the
same curve fitted on all classes together, by the per-class normalized importance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PRIOR = 0.5  # Jeffreys: half an error in one pseudo-decision per stretch


@dataclass(frozen=True)
class Progress:
    """Per-class (K,) counts: ``samples``, ``reviewed``, ``errors`` (found) and ``errors_left`` (estimated; NaN
    while nothing at all has been reviewed)."""

    samples: np.ndarray
    reviewed: np.ndarray
    errors: np.ndarray
    errors_left: np.ndarray

    def total(self) -> dict[str, float]:
        """Overall ``samples``, ``reviewed``, ``errors``, ``errors_left`` (the sum over classes)."""
        return {"samples": int(self.samples.sum()), "reviewed": int(self.reviewed.sum()),
                "errors": int(self.errors.sum()), "errors_left": float(self.errors_left.sum())}

    def line(self, label: int | None = None, names: Sequence[str] | None = None) -> str:
        """One sentence for class ``label`` (or overall when ``None``), e.g.
        ``3: 12 / 180 reviewed · 4 errors found · ≈ 9 errors left``."""
        if label is None:
            t, what = self.total(), "All classes"
        else:
            t = {"samples": int(self.samples[label]), "reviewed": int(self.reviewed[label]),
                 "errors": int(self.errors[label]), "errors_left": float(self.errors_left[label])}
            what = names[label] if names is not None else str(label)
        left = "errors left: decide some to estimate" if np.isnan(t["errors_left"]) \
            else f"≈ {t['errors_left']:,.0f} errors left"
        found = f"{t['errors']:,} error{'' if t['errors'] == 1 else 's'} found"
        return f"{what}: {t['reviewed']:,} / {t['samples']:,} reviewed · {found} · {left}"

    def rows(self, names: Sequence[str], *, only_reviewed: bool = False) -> dict[str, list]:
        """Columns for a table: one row per class (only those with decisions if ``only_reviewed``), then ``All``."""
        shown = [k for k in range(len(names)) if not only_reviewed or self.reviewed[k]]
        t = self.total()
        left = [None if np.isnan(v) else round(float(v), 1) for v in self.errors_left[shown]]
        return {"class": [names[k] for k in shown] + ["All"],
                "samples": [int(v) for v in self.samples[shown]] + [t["samples"]],
                "reviewed": [int(v) for v in self.reviewed[shown]] + [t["reviewed"]],
                "errors found": [int(v) for v in self.errors[shown]] + [t["errors"]],
                "hit rate": [_rate(e, r) for e, r in zip(self.errors[shown], self.reviewed[shown])]
                + [_rate(t["errors"], t["reviewed"])],
                "≈ errors left": left + [None if np.isnan(t["errors_left"]) else round(t["errors_left"], 1)]}


def _rate(errors: int, reviewed: int) -> float | None:
    return round(float(errors) / float(reviewed), 3) if reviewed else None


def ranking(score: np.ndarray) -> np.ndarray:
    """(n,) indices by ``score``, highest first, ties in index order: the one sort :func:`progress` needs; callers
    that ask repeatedly about the same analysis may compute it once and pass it as ``order``."""
    return np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")


def hit_rate_curve(score: np.ndarray, reviewed: np.ndarray, error: np.ndarray, *, bins: int = 10,
                   order: np.ndarray | None = None) -> np.ndarray:
    """Expected error rate (n,) of each sample from the decisions along the ranking by ``score`` (n,).

    ``reviewed``, ``error`` : (n,) bool (``error`` implies ``reviewed``). ``order``: :func:`ranking` of ``score``
    if already known. Returns NaN everywhere when nothing was reviewed. See the module docstring for the model.
    """
    score = np.asarray(score, dtype=np.float64)
    reviewed, error = np.asarray(reviewed, dtype=bool), np.asarray(error, dtype=bool)
    n = len(score)
    if reviewed.shape != (n,) or error.shape != (n,):
        raise ValueError(f"reviewed {reviewed.shape} and error {error.shape} must be (n,) = ({n},) like score.")
    if np.any(error & ~reviewed):
        raise ValueError("error: a sample counted as an error must also be marked reviewed.")
    if bins < 1:
        raise ValueError(f"bins={bins}: must be >= 1.")
    if not reviewed.any():
        return np.full(n, np.nan)
    order = ranking(score) if order is None else order
    stretch = np.empty(n, dtype=np.int64)
    stretch[order] = np.arange(n) * min(bins, n) // n
    n_bins = min(bins, n)
    r = np.bincount(stretch, weights=reviewed, minlength=n_bins)
    e = np.bincount(stretch, weights=error, minlength=n_bins)
    rate = _decreasing_rates(r, e)
    return rate[stretch]


def _decreasing_rates(reviewed: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Per stretch (top first): pooled, non-increasing, Jeffreys-smoothed hit rates; unreviewed stretches copy the
    nearest reviewed one above (or below, for stretches above the first reviewed one)."""
    seen = np.flatnonzero(reviewed > 0)
    blocks: list[list[float]] = []  # [errors, reviewed, first, last] over indices into seen
    for j, b in enumerate(seen):
        blocks.append([errors[b] + PRIOR, reviewed[b] + 1.0, j, j])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()  # a lower stretch with a higher rate: pool it with the one above
            blocks[-1][0] += last[0]
            blocks[-1][1] += last[1]
            blocks[-1][3] = last[3]
    fitted = np.empty(len(seen))
    for err, rev, first, last in blocks:
        fitted[int(first):int(last) + 1] = err / rev
    # each stretch takes the nearest reviewed stretch at or above it; those above every reviewed one, the first
    above = np.searchsorted(seen, np.arange(len(reviewed)), side="right") - 1
    return fitted[np.maximum(above, 0)]


def errors_left(score: np.ndarray, reviewed: np.ndarray, error: np.ndarray, *, bins: int = 10) -> float:
    """Expected number of errors among the unreviewed samples (NaN when nothing was reviewed)."""
    rate = hit_rate_curve(score, reviewed, error, bins=bins)
    return float(rate[~np.asarray(reviewed, dtype=bool)].sum()) if np.isfinite(rate).all() else float("nan")


def stretches(labels: np.ndarray, order: np.ndarray, n_classes: int, *, bins: int = 10) -> np.ndarray:
    """(n,) the stretch (0 .. bins-1) of each sample along its class's ranking: equal shares of each class, as
    :func:`hit_rate_curve` cuts one class. ``order`` is :func:`ranking` of the scores; a stable sort of the labels
    in that order groups every class at once, most important first."""
    labels = np.asarray(labels, dtype=np.int64)
    small = labels.astype(np.int16) if n_classes <= np.iinfo(np.int16).max else labels  # int16 sorts by radix
    order = order[np.argsort(small[order], kind="stable")]
    sizes = np.bincount(labels, minlength=n_classes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    size = sizes[labels[order]]
    rank = np.arange(len(order)) - starts[labels[order]]
    out = np.empty(len(order), dtype=np.int64)
    out[order] = rank * np.minimum(bins, size) // size
    return out


def progress(labels: np.ndarray, score: np.ndarray, decided: np.ndarray, decided_error: np.ndarray,
             n_classes: int, *, bins: int = 10, order: np.ndarray | None = None,
             stretch: np.ndarray | None = None) -> Progress:
    """Progress per class.

    labels : (n,) the class each sample is counted under.   score : (n,) importance normalized within its class.
    decided : (r,) indices with a current decision.   decided_error : (r,) bool, that decision is not ``ok``.
    order : (n,) :func:`ranking` of ``score``, if already known (the only full sort).
    stretch : (n,) :func:`stretches` of ``labels`` and ``order``, if already known (the costliest part: a sort of
    the labels; ~0.2 s at 1.28M samples).
    Counts run over (class, stretch) cells, so 1000 classes of a million samples cost no loop over samples.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    decided = np.asarray(decided, dtype=np.int64)
    if decided.shape != np.shape(decided_error):
        raise ValueError(f"decided {decided.shape} and decided_error {np.shape(decided_error)} must match.")
    if decided.size and (decided.min() < 0 or decided.max() >= n):
        raise ValueError(f"decided: sample indices must lie in 0..{n - 1}.")
    if bins < 1:
        raise ValueError(f"bins={bins}: must be >= 1.")
    reviewed = np.zeros(n, dtype=bool)
    error = np.zeros(n, dtype=bool)
    reviewed[decided] = True
    error[decided[np.asarray(decided_error, dtype=bool)]] = True
    order = ranking(score) if order is None else np.asarray(order, dtype=np.int64)
    if order.shape != (n,):
        raise ValueError(f"order: expected the (n,) = ({n},) ranking of score, got shape {order.shape}.")
    if stretch is None:
        stretch = stretches(labels, order, n_classes, bins=bins)
    elif np.shape(stretch) != (n,):
        raise ValueError(f"stretch: expected the (n,) = ({n},) stretches of labels, got shape {np.shape(stretch)}.")
    cell = labels * bins + stretch
    cells = n_classes * bins
    r = np.bincount(cell, weights=reviewed, minlength=cells).reshape(n_classes, bins)
    e = np.bincount(cell, weights=error, minlength=cells).reshape(n_classes, bins)
    todo = np.bincount(cell, weights=~reviewed, minlength=cells).reshape(n_classes, bins)
    left = np.full(n_classes, np.nan)
    if reviewed.any():  # classes without decisions follow the curve of all classes together
        overall = hit_rate_curve(score, reviewed, error, bins=bins, order=order)
        left = np.bincount(labels[~reviewed], weights=overall[~reviewed], minlength=n_classes)
        for k in np.flatnonzero(r.sum(axis=1)):
            size = min(bins, int(r[k].sum() + todo[k].sum()))
            left[k] = float(todo[k, :size] @ _decreasing_rates(r[k, :size], e[k, :size]))
    return Progress(samples=np.bincount(labels, minlength=n_classes),
                    reviewed=np.bincount(labels[reviewed], minlength=n_classes),
                    errors=np.bincount(labels[error], minlength=n_classes), errors_left=left)


def progress_of(analysis, decisions: dict, *, order: np.ndarray | None = None,
                stretch: np.ndarray | None = None) -> Progress:
    """:func:`progress` of an :class:`~coreclean.analysis.reader.Analysis` given its log's current decisions
    (``ReviewLog.current()``): a decided sample counts under the label it was reviewed with (``old_label``).
    ``order``: :func:`ranking` of ``analysis.class_importance``, and ``stretch``: :func:`stretches` of
    ``analysis.y_train`` in that order, when cached by the caller (``stretch`` is used only while every decision was
    made under the sample's current label; otherwise the stretches are recomputed)."""
    labels = np.array(analysis.y_train, dtype=np.int64, copy=True)
    decided = np.fromiter(decisions.keys(), dtype=np.int64, count=len(decisions))
    wrong = np.fromiter((d.decision != "ok" for d in decisions.values()), dtype=bool, count=len(decisions))
    valid = decided < len(labels)  # a log row from a larger analysis of the same name cannot be placed
    decided, wrong = decided[valid], wrong[valid]
    reviewed_as = np.fromiter((decisions[int(i)].old_label for i in decided), dtype=np.int64, count=len(decided))
    if np.any(labels[decided] != reviewed_as):
        labels[decided], stretch = reviewed_as, None
    return progress(labels, analysis.class_importance, decided, wrong, analysis.n_classes, order=order,
                    stretch=stretch)
