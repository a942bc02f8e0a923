"""The questions the Map, Sample and Duplicates pages ask of an analysis's exploration arrays.

Every function reads what the build's exploration stage stored (:mod:`coreclean.exploration.stage`: ``map_rows``,
``map_xy``, ``neighbors_*``, ``duplicate_of_train``, ``exact_dup_train``, ``leak_of_test``, ``outlier_train``) and
answers with small numpy arrays; an analysis built before that stage raises ValueError saying to rebuild it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..exploration.duplicates import group_members
from ..exploration.stage import duplicate_groups
from ..classifier.model import predict_proba

SELECTION_KINDS = ("box", "lasso", "near")


def _stored(analysis, name: str) -> np.ndarray:
    array = analysis.stack(name)
    if array is None:
        raise ValueError(f"{analysis.directory}: {name}.npy is missing (built before the exploration stage); "
                         "rebuild it with 'python -m coreclean build'.")
    return array


def has_exploration(analysis) -> bool:
    """Whether ``analysis`` was built with the exploration stage (map, neighbours, duplicates)."""
    return analysis.stack("map_xy") is not None


def map_points(analysis) -> tuple[np.ndarray, np.ndarray]:
    """(rows (p,) int64 training indices, xy (p, 2) float32 map coordinates) of the stored 2-D map; p = n for
    small sets, a stratified sample that keeps every flagged sample for large ones."""
    return np.asarray(_stored(analysis, "map_rows"), dtype=np.int64), np.asarray(_stored(analysis, "map_xy"))


def map_positions(analysis, indices: Sequence[int]) -> np.ndarray:
    """(h, 2) map coordinates of those training ``indices`` that are on the map (a large set maps a sample)."""
    rows, xy = map_points(analysis)
    order = np.argsort(rows, kind="stable")
    wanted = np.asarray(indices, dtype=np.int64)
    pos = np.clip(np.searchsorted(rows[order], wanted), 0, max(len(rows) - 1, 0))
    found = rows[order][pos] == wanted if len(rows) else np.zeros(len(wanted), bool)
    return np.asarray(xy[order[pos[found]]], dtype=np.float32).reshape(-1, 2)


def outlier_percentiles(analysis) -> np.ndarray:
    """(n,) float32 in [0, 1]: each training sample's rank by outlier score, 0 the most ordinary and 1 the most
    unusual (ties in index order); the raw score is heavy-tailed."""
    score = np.asarray(_stored(analysis, "outlier_train"))
    ranks = np.empty(len(score), np.float32)
    ranks[np.argsort(score, kind="stable")] = np.linspace(0, 1, len(score), dtype=np.float32)
    return ranks


def duplicate_of(analysis) -> np.ndarray:
    """(n,) int64: the first member of each training sample's near- or exact-duplicate group (at the build's
    threshold; the sample itself when it is the first), -1 for a sample without duplicates."""
    return np.asarray(_stored(analysis, "duplicate_of_train"), dtype=np.int64)


def _in_display_order(analysis, members: np.ndarray) -> np.ndarray:
    """``members`` most important (within its class) first, ties by index."""
    members = np.asarray(members, dtype=np.int64)
    return members[np.lexsort((members, -analysis.class_importance[members]))]


def samples_in_box(analysis, x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """Training indices of the map points inside the box [x0, x1] x [y0, y1] (either order), most important (per
    class) first."""
    rows, xy = map_points(analysis)
    (x0, x1), (y0, y1) = sorted((float(x0), float(x1))), sorted((float(y0), float(y1)))
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    return _in_display_order(analysis, rows[inside])


def points_in_polygon(points: np.ndarray, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """(p,) bool: which of ``points`` (p, 2) lie inside the polygon with vertices ``xs``, ``ys`` (closed
    implicitly; even-odd rule, as plotly's lasso)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 3:
        raise ValueError(f"xs, ys: need the same number (>= 3) of polygon vertices, got {xs.shape} and {ys.shape}.")
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    inside = np.zeros(len(points), bool)
    box = ((points[:, 0] >= xs.min()) & (points[:, 0] <= xs.max()) & (points[:, 1] >= ys.min())
           & (points[:, 1] <= ys.max()))
    px, py = points[box, 0], points[box, 1]
    hit = np.zeros(len(px), bool)
    for xi, yi, xj, yj in zip(xs, ys, np.roll(xs, 1), np.roll(ys, 1)):
        crosses = (yi > py) != (yj > py)  # edges straddling the point's row; horizontal edges never do
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = (xj - xi) * (py - yi) / (yj - yi) + xi
        hit ^= crosses & (px < x_cross)
    inside[box] = hit
    return inside


def samples_in_polygon(analysis, xs: Sequence[float], ys: Sequence[float]) -> np.ndarray:
    """Training indices of the map points inside the lasso polygon ``xs``, ``ys``, most important first."""
    rows, xy = map_points(analysis)
    return _in_display_order(analysis, rows[points_in_polygon(xy, xs, ys)])


def neighbors_of(analysis, index: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(training indices (k,), cosine similarities (k,)) of the stored nearest neighbours of sample ``index`` of
    ``split`` ('train' | 'test'), most similar first."""
    n = _check_index(analysis, index, split)
    idx, sim = _stored(analysis, f"neighbors_{split}"), _stored(analysis, f"neighbor_sim_{split}")
    if len(idx) != n:
        raise ValueError(f"neighbors_{split}: {len(idx)} rows for {n} samples; rebuild the analysis.")
    return np.asarray(idx[index], dtype=np.int64), np.asarray(sim[index], dtype=np.float32)


def select_samples(analysis, kind: str, values: Sequence[float]) -> np.ndarray:
    """Training indices a map selection names: ``box`` (x0, x1, y0, y1), ``lasso`` (x1, y1, x2, y2, ...) or
    ``near`` (index,): that sample followed by its nearest neighbours."""
    if kind == "box" and len(values) == 4:
        return samples_in_box(analysis, *values)
    if kind == "lasso" and len(values) >= 6 and len(values) % 2 == 0:
        return samples_in_polygon(analysis, values[0::2], values[1::2])
    if kind == "near" and len(values) == 1 and float(values[0]).is_integer():
        index = int(values[0])
        return np.concatenate([[index], neighbors_of(analysis, index)[0]]).astype(np.int64)
    raise ValueError(f"{kind}:{','.join(map(str, values))}: expected box:x0,x1,y0,y1, lasso:x1,y1,x2,y2,x3,y3... "
                     "or near:INDEX.")


def _check_index(analysis, index: int, split: str) -> int:
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'.")
    n = len(analysis.y_train if split == "train" else analysis.y_test)
    if not 0 <= int(index) < n:
        raise ValueError(f"index {index} is outside 0..{n - 1} of the {split} split.")
    return n


def top_classes(analysis, index: int, k: int = 5, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(classes (k,), probabilities (k,)) of the classifier for sample ``index`` of ``split``, most likely first."""
    _check_index(analysis, index, split)
    x = analysis.x_train if split == "train" else analysis.x_test
    proba = predict_proba(np.asarray(x[index:index + 1]), analysis.coef)[0]
    order = np.argsort(-proba, kind="stable")[:max(1, int(k))]
    return order.astype(np.int64), proba[order]


@dataclass(frozen=True)
class SampleSignals:
    """What the exploration stage says about one training sample.

    rank : 1-based position in its class's importance ranking (1 = most important), of ``class_size``.
    outlier_percentile : share of training samples with a lower outlier score, in [0, 1].
    group : the members of its near/exact-duplicate group (ascending; empty when it has none).
    exact_group : the members of its exact-copy group (empty when none).
    """

    rank: int
    class_size: int
    outlier_percentile: float
    group: np.ndarray
    exact_group: np.ndarray


def sample_signals(analysis, index: int) -> SampleSignals:
    """The :class:`SampleSignals` of training sample ``index``."""
    _check_index(analysis, index, "train")
    label = analysis.y_train[index]
    same = analysis.importance[analysis.y_train == label]
    rank = int((same > analysis.importance[index]).sum()) + 1
    score = np.asarray(_stored(analysis, "outlier_train"))
    percentile = float((score < score[index]).mean())
    groups = []
    for name in ("duplicate_of_train", "exact_dup_train"):
        dup = np.asarray(_stored(analysis, name))
        groups.append(np.flatnonzero(dup == dup[index]) if dup[index] >= 0 else np.zeros(0, np.int64))
    return SampleSignals(rank, len(same), percentile, *groups)


def duplicate_group_list(analysis, threshold: float | None = None, exact_only: bool = False) -> list[np.ndarray]:
    """Duplicate groups of the training set as index arrays (ascending, the first member first), largest group
    first: exact copies only, or near and exact ones at cosine ``threshold`` (default: the build's), regrouped
    from the stored neighbours."""
    dup = _stored(analysis, "exact_dup_train") if exact_only else duplicate_groups(analysis, threshold)
    return group_members(np.asarray(dup))


def leak_pairs(analysis) -> tuple[np.ndarray, np.ndarray]:
    """(test indices (m,), their near-duplicate training samples (m,)) for every test sample with a near or exact
    copy in the training set (at the build's threshold), in test index order."""
    leak = np.asarray(_stored(analysis, "leak_of_test"))
    test = np.flatnonzero(leak >= 0)
    return test.astype(np.int64), leak[test].astype(np.int64)


def train_copy_of(analysis, test_index: int) -> int:
    """The training sample test sample ``test_index`` is a near or exact copy of, else -1."""
    _check_index(analysis, test_index, "test")
    return int(_stored(analysis, "leak_of_test")[test_index])


def leak_count(analysis) -> int | None:
    """How many test samples have a near-duplicate in train; ``None`` when built without the exploration stage."""
    leak = analysis.stack("leak_of_test")
    return None if leak is None else int((np.asarray(leak) >= 0).sum())
