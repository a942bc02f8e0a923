"""2-D map of the embeddings (UMAP, or openTSNE on request) over a class-stratified sample that keeps flagged rows.

UMAP is the default because it was ~3x faster than openTSNE on Fashion-MNIST 60k x 128 on 2 cores for a similar
label separation (bench/explore.py --compare-maps prints both). Its k-nearest-neighbour graph comes from
:func:`coreclean.exploration.neighbors.nearest_neighbors` (cosine, the same metric as the rest of the exploration) rather than
from UMAP's own NN-descent, and it starts from a PCA layout: both faster than the defaults and deterministic for a
given ``random_state`` (UMAP then optimizes on one thread).
"""
from __future__ import annotations

import numpy as np

from .cosine import check_matrix, unit_rows
from .neighbors import NeighborIndex, nearest_neighbors

METHODS = ("umap", "tsne")


def sample_rows(n: int, max_points: int, *, labels=None, must_include=None, random_state: int = 0) -> np.ndarray:
    """Sorted (m,) int64 rows, m = min(n, max_points): every ``must_include`` row, the rest drawn at random per class
    of ``labels`` (n,) in proportion to class size (largest remainder), or uniformly when labels is None."""
    if not isinstance(max_points, (int, np.integer)) or max_points < 2:
        raise ValueError(f"max_points={max_points!r}: must be an integer >= 2.")
    must = np.unique(np.asarray([] if must_include is None else must_include, dtype=np.int64))
    if len(must) and (must[0] < 0 or must[-1] >= n):
        raise ValueError(f"must_include: rows must be in 0..{n - 1}; got {must[0] if must[0] < 0 else must[-1]}.")
    if len(must) > max_points:
        raise ValueError(f"must_include: {len(must)} rows exceed max_points={max_points}; raise max_points or "
                         "pass fewer flagged rows.")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    pool = np.setdiff1d(np.arange(n, dtype=np.int64), must, assume_unique=True)
    budget = max_points - len(must)
    if labels is None:
        return np.sort(np.concatenate([must, rng.choice(pool, budget, replace=False)]))
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},) like X's rows, got {labels.shape}.")
    classes, inverse, counts = np.unique(labels[pool], return_inverse=True, return_counts=True)
    exact = counts * budget / len(pool)
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[:budget - quota.sum()]] += 1
    picked = [rng.choice(pool[inverse == c], quota[c], replace=False) for c in range(len(classes)) if quota[c]]
    return np.sort(np.concatenate([must, *picked]))


def _umap_with_cached_kernels():
    """The ``umap`` module, its graph kernels compiled once per machine instead of once per process: umap-learn 0.5
    declares ``smooth_knn_dist`` and ``compute_membership_strengths`` as parallel numba functions without
    ``cache=True``, and compiling them took ~9 of the ~10 s a 500-point map took in a fresh process (1.0 s once
    cached; a digits build 16.1 -> 11.3 s). The same Python functions with the same options, cached where numba keeps
    umap's other compiled functions; skipped if a umap version no longer has them or no cache folder is writable."""
    import umap
    import umap.umap_ as umap_module

    if not getattr(umap_module, "_coreclean_cached", False):
        for name in ("smooth_knn_dist", "compute_membership_strengths"):
            kernel = getattr(umap_module, name, None)
            if hasattr(kernel, "py_func") and not kernel.targetoptions.get("cache"):
                import numba

                options = {k: v for k, v in kernel.targetoptions.items() if k in ("parallel", "fastmath")}
                try:
                    cached = numba.njit(cache=True, locals=kernel.locals, **options)(kernel.py_func)
                except RuntimeError:  # numba found no writable cache folder: keep compiling per process
                    continue
                setattr(umap_module, name, cached)
        umap_module._coreclean_cached = True
    return umap


def _umap(points: np.ndarray, n_neighbors: int, n_epochs: int | None, random_state: int) -> np.ndarray:
    import warnings

    umap = _umap_with_cached_kernels()

    k = min(n_neighbors, len(points)) - 1
    idx, sim = nearest_neighbors(points, k=k, random_state=random_state)
    # UMAP's own kNN format: each row starts with the point itself at distance 0.
    idx = np.hstack([np.arange(len(points))[:, None], idx])
    dist = np.hstack([np.zeros((len(points), 1), np.float32), np.maximum(1 - sim, 0)])
    model = umap.UMAP(n_neighbors=k + 1, metric="cosine", precomputed_knn=(idx, dist, None), init="pca",
                      n_epochs=n_epochs, random_state=random_state, n_jobs=1)
    with warnings.catch_warnings():  # "no NNDescent index, transform unavailable": we never transform new points
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return model.fit_transform(points)


def _tsne(points: np.ndarray, n_epochs: int | None, random_state: int) -> np.ndarray:
    from openTSNE import TSNE

    tsne = TSNE(metric="cosine", n_iter=n_epochs or 500, random_state=random_state, n_jobs=-1, verbose=False)
    return np.asarray(tsne.fit(points))


def place_by_neighbors(fitted: np.ndarray, xy: np.ndarray, rest: np.ndarray, *, k: int = 10,
                       random_state: int = 0) -> np.ndarray:
    """(r, 2) positions of unit rows ``rest`` (r, d): the similarity-weighted mean position ``xy`` (m, 2) of their
    ``k`` most cosine-similar rows of ``fitted`` (m, d), the points the map was optimized on."""
    k = min(k, len(fitted) - 1)  # the index counts a fitted row as its own neighbour
    idx, sim = NeighborIndex(k, random_state=random_state).fit(fitted).kneighbors(rest)
    weight = np.maximum(sim, 0) + 1e-6
    return np.einsum("rk,rkc->rc", weight, xy[idx]) / weight.sum(axis=1, keepdims=True)


def extend_map(X, kept_rows: np.ndarray, kept_xy: np.ndarray, *, max_points: int = 100_000, must_include=None,
               labels=None, min_kept: float = 0.5, random_state: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The map of X with the points of an earlier map kept where they were, or ``None`` when too few are left.

    For a rebuild that adds samples: ``kept_rows`` (p,) are rows of X that were on the earlier map with the same
    features, ``kept_xy`` (p, 2) their positions there. The map's rows are chosen as by :func:`project_2d` (kept
    rows first after ``must_include``); when at least ``min_kept`` of them have a kept position, the layout is not
    optimized again: every other point is placed at the similarity-weighted mean position of its 10 most similar
    kept points (:func:`place_by_neighbors`, as on sets larger than the optimized layout), so nothing a user has
    already seen moves except by the per-axis standardization. Returns ``(rows, xy)`` as :func:`project_2d` does.
    """
    X = check_matrix(X, min_rows=3)
    kept_rows = np.asarray(kept_rows, dtype=np.int64)
    kept_xy = np.asarray(kept_xy, dtype=np.float64)
    if kept_xy.shape != (len(kept_rows), 2) or (len(kept_rows) and (kept_rows.min() < 0 or kept_rows.max() >= len(X))):
        raise ValueError(f"kept_rows (p,) must be rows of X (0..{len(X) - 1}) and kept_xy (p, 2) their positions; "
                         f"got {kept_rows.shape} and {kept_xy.shape}.")
    must = np.unique(np.asarray([] if must_include is None else must_include, dtype=np.int64))
    room = max(max_points - len(must), 0)
    prefer = np.setdiff1d(kept_rows, must)[:room]  # kept rows fill the map before any drawn at random
    rows = sample_rows(len(X), max_points, labels=labels, must_include=np.union1d(must, prefer),
                       random_state=random_state)
    order = np.argsort(kept_rows, kind="stable")
    at = np.searchsorted(kept_rows[order], rows).clip(max=max(len(kept_rows) - 1, 0))
    has = np.zeros(len(rows), bool) if not len(kept_rows) else kept_rows[order][at] == rows
    if has.sum() < max(min_kept * len(rows), 3):
        return None
    points = _unit_points(X, rows)
    xy = np.empty((len(rows), 2), dtype=np.float64)
    xy[has] = kept_xy[order][at[has]]
    if not has.all():
        xy[~has] = place_by_neighbors(points[has], xy[has], points[~has], random_state=random_state)
    return rows, _standardized(xy)


def project_2d(X, *, max_points: int = 100_000, must_include=None, labels=None, method: str = "umap",
               n_neighbors: int = 15, n_epochs: int | None = 100, fit_points: int | None = None,
               random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D coordinates for X's rows, or for a sample of them when n > max_points.

    Parameters
    ----------
    X : (n, d) embeddings (array or read-only memmap; only the sampled rows are read).
    max_points : largest map; above it a sample (see :func:`sample_rows`), stratified by ``labels`` (n,) if given.
    must_include : rows that are always on the map (e.g. flagged outliers, duplicates, likely mislabels).
    method : "umap" (default) or "tsne" (openTSNE, slower).
    n_neighbors, n_epochs : UMAP graph size and optimization epochs (100: on Fashion-MNIST 60k, half the time of
        UMAP's default 200 for a 10-NN label accuracy on the map of 0.798 vs 0.801; None: UMAP's default);
        for tsne, n_epochs is the number of iterations after early exaggeration (None: 500).
    fit_points : when the map has more points, the layout is optimized on a stratified sample of this many of them
        (flagged rows not preferred) and the others are placed at the similarity-weighted mean position of
        their 10 most similar optimized points (:func:`place_by_neighbors`); None optimizes every point.
    random_state : same inputs and seed give the same map.

    Returns
    -------
    rows : (m,) int64 sorted row numbers of X on the map.
    xy : (m, 2) float32 coordinates, standardized to zero mean and unit variance per axis.
    """
    X = check_matrix(X, min_rows=3)
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 2:
        raise ValueError(f"n_neighbors={n_neighbors!r}: must be an integer >= 2.")
    rows = sample_rows(len(X), max_points, labels=labels, must_include=must_include, random_state=random_state)
    points = _unit_points(X, rows)
    if fit_points is not None and not (isinstance(fit_points, (int, np.integer)) and fit_points >= 3):
        raise ValueError(f"fit_points={fit_points!r}: must be None or an integer >= 3.")
    fit = np.arange(len(rows))
    if fit_points is not None and len(rows) > fit_points:  # optimize a sample, place the rest by their neighbours
        # stratified like the map, flagged rows not preferred: a layout of mostly outliers would misplace the bulk
        fit = sample_rows(len(rows), fit_points, labels=None if labels is None else np.asarray(labels)[rows],
                          random_state=random_state)
    optimize = _umap if method == "umap" else lambda p, _k, e, r: _tsne(p, e, r)
    xy = np.empty((len(rows), 2), dtype=np.float64)
    xy[fit] = optimize(points[fit], n_neighbors, n_epochs, random_state)
    if len(fit) < len(rows):
        rest = np.setdiff1d(np.arange(len(rows)), fit, assume_unique=True)
        xy[rest] = place_by_neighbors(points[fit], xy[fit], points[rest], random_state=random_state)
    return rows, _standardized(xy)


def _unit_points(X, rows: np.ndarray) -> np.ndarray:
    """X's ``rows`` as unit rows, read 65,536 at a time (a memmap is never read whole)."""
    return np.concatenate([unit_rows(X[rows[s:s + 65536]], name="X (map sample)", offset=s)
                           for s in range(0, len(rows), 65536)])


def _standardized(xy: np.ndarray) -> np.ndarray:
    """(m, 2) float32: zero mean and unit variance per axis."""
    return ((xy - xy.mean(axis=0)) / np.maximum(xy.std(axis=0), 1e-12)).astype(np.float32)
