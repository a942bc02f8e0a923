"""Out-of-fold probabilities mapped onto the frequencies of the given labels, before the noise posterior reads them.

The backward correction of :mod:`coreclean.audit.suggest` takes the classifier's ``p(. | x)`` for
``P(given . | x)``, so a wrong shape there becomes a wrong p(wrong label). A net trained on noisy labels puts too
little mass in the tail where flips live (Fashion-MNIST 60k, uniform 10%: rows given p = 0.006 for a class carry it
as their given label 1.1% of the time, the flips' floor) and too much at the top; one temperature moves both the
same way and cannot mend both. Per class an increasing step function fitted by isotonic regression of "labelled c"
on ``p(c | x)`` (Zadrozny & Elkan 2002) mends any monotone distortion, then every row is renormalized.

With the net's dropout-averaged probabilities (:mod:`coreclean.audit.mlp`) the suggestions' expected calibration
error among the top 10% is 0.012-0.041 in the 9 Fashion-MNIST 60k settings (one temperature: 4 of 9 within 0.05;
``bench/audit.py``, docs/benchmarks.md §9).

Monotone per class, so the anchors of :mod:`coreclean.audit.noise` (ranks and quantiles within a class's column)
read the same rows either way; only the posterior uses the map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression

EPS = 1e-7
# a class with fewer rows labelled with it than this in the fit is mapped by the map pooled over every class (its
# own steps would rest on a handful of rows: a 1000-class set sampled to 20,000 rows has ~20 per class)
MIN_CLASS_ROWS = 100
MAX_POOLED_CELLS = 2 ** 21


# The maps are read through tables indexed by the top bits of a probability's float32 pattern (which increase with
# the value): steps of 2**-(23 - SHIFT) relative to p, ~12,000 entries from EPS to 1. np.interp runs a binary search
# per value (~140 ns); the suggestions of a 1.28M-row, 1000-class audit map 147M values (bench/report_scale.py)
SHIFT = 14
_FIRST = int(np.float32(EPS).view(np.int32)) >> SHIFT
_GRID = (np.arange(_FIRST, (int(np.float32(1.0).view(np.int32)) >> SHIFT) + 1, dtype=np.int32) << SHIFT
         | (1 << (SHIFT - 1))).view(np.float32)  # each bucket's middle


@dataclass(frozen=True)
class Calibration:
    """Per class ``c`` the knots ``x[c]`` (increasing) and values ``v[c]`` of the step map from ``p(c | x)`` to the
    frequency of given label ``c`` (linear between knots, constant beyond; read through ``SHIFT``'s tables);
    ``own`` (K,) bool: the class has its own map (else the one pooled over every class)."""

    x: list[np.ndarray]
    v: list[np.ndarray]
    own: np.ndarray

    def __post_init__(self):
        own = np.flatnonzero(self.own)
        sources = own.tolist() + np.flatnonzero(~self.own)[:1].tolist()  # the pooled map once, last
        slot = np.full(len(self.own), len(own), dtype=np.int64)
        slot[own] = np.arange(len(own))
        tables = np.stack([np.interp(_GRID, self.x[c], self.v[c]) for c in sources]).astype(np.float32)
        object.__setattr__(self, "_tables", tables.ravel())
        object.__setattr__(self, "_offsets", slot * len(_GRID))

    def mapped(self, proba: np.ndarray) -> np.ndarray:
        """(m, K) float32: each column of ``proba`` (m, K) through its class's map (not renormalized)."""
        bits = np.maximum(np.asarray(proba, dtype=np.float32), np.float32(EPS)).view(np.int32) >> SHIFT
        index = np.minimum(bits - _FIRST, len(_GRID) - 1).astype(np.int64)
        index += self._offsets
        return self._tables[index]

    def transform(self, proba: np.ndarray) -> np.ndarray:
        """(m, K) float32 rows of ``proba`` (m, K) mapped per class, clipped at ``EPS`` and renormalized."""
        out = self.mapped(proba)
        np.clip(out, EPS, None, out=out)
        return out / out.sum(axis=1, keepdims=True)


def _isotonic(scores: np.ndarray, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, hits)
    return fit.X_thresholds_.astype(np.float32), fit.y_thresholds_.astype(np.float32)


def fit_calibration(proba: np.ndarray, y: np.ndarray, n_classes: int, *, max_rows: int = 100_000,
                    seed: int = 0) -> Calibration:
    """The per-class maps (module docstring) fitted on up to ``max_rows`` rows (a seeded random subset).

    proba : (n, K) out-of-fold probabilities.   y : (n,) given labels in [0, K).
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), min(len(y), max_rows), replace=False))
    p = np.asarray(proba[rows], dtype=np.float32)
    labels = np.asarray(y)[rows]
    scored = np.isfinite(p).all(axis=1)  # a row no fold could score (NaN) says nothing about the map
    p, labels = p[scored], labels[scored]
    if not len(p):
        identity = (np.array([0.0, 1.0], np.float32), np.array([0.0, 1.0], np.float32))
        return Calibration([identity[0]] * n_classes, [identity[1]] * n_classes, np.zeros(n_classes, bool))
    hits = labels[:, None] == np.arange(n_classes)
    own = np.bincount(labels, minlength=n_classes) >= MIN_CLASS_ROWS
    pooled = None
    if not own.all():
        cells = rng.choice(p.size, min(p.size, MAX_POOLED_CELLS), replace=False)
        pooled = _isotonic(p.ravel()[cells], hits.ravel()[cells])
    maps = [_isotonic(p[:, c], hits[:, c]) if own[c] else pooled for c in range(n_classes)]
    return Calibration([m[0] for m in maps], [m[1] for m in maps], own)
