"""Dataset health from the estimated joint ``Q[given, true]``: overlapping classes, class imbalance, and a 0-1
health score per class and overall.

Health score (documented formula, the same for the report, the JSON and ``--fail-on health<x``):

* per class c: ``health_c = 1 - r_c``, with ``r_c`` the estimated share of the samples labelled c whose true class
  is another (:func:`coreclean.audit.noise.rates_of`); 1 = every label in the class looks right;
* overall: ``health = sum_c share_c * health_c = 1 - r``, the share of labels estimated right (``share_c`` = the
  class's share of the samples), as cleanlab's ``overall_label_health_score``.

Overlapping classes (cleanlab's ``find_overlapping_classes``): the pair (a, b) overlaps by
``Q[a, b] + Q[b, a]`` (joint mass both ways); ``samples = round(n * overlap)``. A pair is suggested for merging when
the overlap is at least ``MERGE_SHARE`` of the smaller class's mass *and* each direction holds at least
``MERGE_BALANCE`` of it: mass one way only is a labelling habit (fix the labels), mass both ways means the data
cannot tell the two apart.

Imbalance: ``imbalance = largest / smallest`` class count; a class is *rare* below ``RARE_SHARE`` of the median
class count and has *too few samples* below ``MIN_SAMPLES`` (too few to learn from or to estimate its noise).
"""
from __future__ import annotations

import numpy as np

MERGE_SHARE = 0.25
MERGE_BALANCE = 0.25
RARE_SHARE = 0.2
MIN_SAMPLES = 30


def overlapping_classes(joint: np.ndarray, n: int, *, top: int = 20, min_samples: int = 1) -> list[dict]:
    """The ``top`` most overlapping class pairs, largest overlap first: dicts with ``a``, ``b`` (a < b),
    ``overlap`` (joint mass both ways), ``a_to_b`` / ``b_to_a`` (mass labelled a but b, and the reverse),
    ``samples`` and ``merge`` (bool). Pairs with fewer than ``min_samples`` samples are left out."""
    K = len(joint)
    both = joint + joint.T
    a, b = np.triu_indices(K, k=1)
    overlap = both[a, b]
    keep = np.round(overlap * n) >= min_samples
    a, b, overlap = a[keep], b[keep], overlap[keep]
    order = np.lexsort((b, a, -overlap))[:top]
    mass = joint.sum(axis=1) + joint.sum(axis=0)  # a class's mass counted given and true, halved below
    out = []
    for i, j, o in zip(a[order], b[order], overlap[order]):
        smaller = min(mass[i], mass[j]) / 2
        balanced = min(joint[i, j], joint[j, i]) >= MERGE_BALANCE * o
        out.append({"a": int(i), "b": int(j), "overlap": float(o), "a_to_b": float(joint[i, j]),
                    "b_to_a": float(joint[j, i]), "samples": int(round(o * n)),
                    "merge": bool(smaller > 0 and o >= MERGE_SHARE * smaller and balanced)})
    return out


def class_balance(counts: np.ndarray) -> dict:
    """``imbalance`` (largest / smallest non-empty count; inf when a class is empty), ``rare`` and ``too_few``
    (class indices), ``median`` count."""
    counts = np.asarray(counts, dtype=np.int64)
    median = float(np.median(counts)) if len(counts) else 0.0
    smallest = counts.min() if len(counts) else 0
    return {"imbalance": float(counts.max() / smallest) if smallest > 0 else float("inf"),
            "median": median,
            "rare": [int(c) for c in np.flatnonzero(counts < RARE_SHARE * median)],
            "too_few": [int(c) for c in np.flatnonzero(counts < MIN_SAMPLES)]}


def health_scores(class_rates: np.ndarray, counts: np.ndarray) -> tuple[float, np.ndarray]:
    """(overall, (K,) per class) health in [0, 1] (see module docstring); a class without samples gets NaN."""
    per_class = np.clip(1.0 - np.asarray(class_rates, dtype=np.float64), 0.0, 1.0)
    counts = np.asarray(counts, dtype=np.float64)
    valid = np.isfinite(per_class) & (counts > 0)
    overall = float((per_class[valid] * counts[valid]).sum() / max(counts[valid].sum(), 1.0))
    return overall, np.where(counts > 0, per_class, np.nan)
