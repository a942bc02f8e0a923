"""How near a copy each centred-cosine neighbour is: the one rule for embedding near-duplicates and train/test leakage
in the build (:func:`coreclean.exploration.stage.explore_stage`) and in ``rank --features``
(:func:`coreclean.exploration.stage.feature_signals`), both through :func:`copy_similarities`.

A pair's similarity is 1 - (its squared distance on the principal axes holding 99% of the centred variance) / (the
space's typical nearest-neighbour squared distance): 0.9 = ten times closer than a typical nearest pair of this
space. One scale for the whole space, not one per row: how far a copy lands from its source is set by the copying
(noise, re-encoding), not by how crowded its region is, and the per-row scale of
:func:`coreclean.exploration.duplicates.relative_similarity` (the rule before) let natural look-alikes in sparse
regions pass; the last 1% of the variance is where copying noise dominates (standardized near-constant border
pixels). Held-out check in docs/benchmarks.md §6.

Cost at 1.28M x 512 (memory-mapped): the neighbour lists give the pairs; one pass over the rows holds a float32
projection on the *narrower* side of the split — the r signal axes, or the d - r residual axes when those are
fewer, since ||P(xi - xj)||^2 = ||xi - xj||^2 - ||R(xi - xj)||^2 and ||xi - xj||^2 = |ci|^2 + |cj|^2 - 2 |ci| |cj|
cos_ij follows from the centred norms and the stored centred cosines (float32: error ~1e-6 |c|^2, far below the
0.1 x typical squared distance a copy must reach). Measured against the alternatives in docs/benchmarks.md §6.
"""
from __future__ import annotations

import numpy as np

from ..data.memmap_pages import release_rows

# share of the centred features' variance kept: the directions carrying the last 1% are where copying noise
# dominates (standardized near-constant border pixels blow a sigma-8 noised copy's noise up; held-out check,
# docs/benchmarks.md: noised copies found in standardized pixels 0.80 -> 1.00)
SIGNAL_VARIANCE = 0.99
SAMPLE_VALUES = 20_000_000   # rows x features of the SVD sample (160 MB in float64)
BLOCK_ROWS = 65536           # rows read (and released) at a time in the projection pass
PAIR_ROWS = 4096             # rows whose (k, width) neighbour differences are formed at a time
# a full squared distance from cosines below this share of the pair's squared norms is float32 rounding of the
# stored cosine: read as 0 (an exact copy), as the projection of two identical rows would give
COSINE_RESOLUTION = 1e-6


def principal_axes(X, *, mean=None, sample_rows: int = 5000, seed: int = 0,
                   block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (d,) float64, axes (q, d) float64, energy (q,)): the column mean of X (n, d) (computed in blocks
    unless given, e.g. the neighbour index's) and the principal axes of the centred rows with their squared
    singular values, from an SVD of at most ``sample_rows`` rows and ``SAMPLE_VALUES`` values (a memmap is read
    only at the sampled rows). q = min(sampled rows, d): every axis when the sample spans d."""
    n, d = X.shape
    if mean is None:
        mean = np.zeros(d)
        for s in range(0, n, block_rows):
            mean += np.asarray(X[s:s + block_rows], dtype=np.float64).sum(axis=0)
            release_rows(X, s, s + block_rows)
        mean /= max(n, 1)
    mean = np.asarray(mean, dtype=np.float64)
    size = min(n, sample_rows, max(2, SAMPLE_VALUES // max(d, 1)))
    rows = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    sample = np.asarray(X[rows], dtype=np.float64) - mean
    release_rows(X)
    # one BLAS thread: OpenBLAS's LAPACK threads spin on shared cores (5000 x 512: 18 CPU s on two busy cores,
    # 0.5 s on one thread); the SVD is small next to the projection pass
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        _, values, axes = np.linalg.svd(sample, full_matrices=False)
    return mean, axes, values ** 2


def _check_variance(variance: float) -> float:
    if not 0 < variance <= 1:
        raise ValueError(f"variance={variance!r}: a share of the variance in (0, 1], e.g. 0.99.")
    return float(variance)


def _signal_rank(energy: np.ndarray, variance: float) -> int:
    """Fewest leading axes holding ``variance`` of ``energy``'s total (1 when there is none)."""
    total = energy.sum()
    if not total > 0:
        return 1
    return int(min(np.searchsorted(np.cumsum(energy) / total, variance) + 1, len(energy)))


def signal_basis(X, *, variance: float = SIGNAL_VARIANCE, sample_rows: int = 5000, seed: int = 0,
                 block_rows: int = BLOCK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,) float64, basis (d, r) float32): the column mean of X (n, d) and the fewest principal axes of the
    centred rows holding ``variance`` of their variance (:func:`principal_axes`)."""
    variance = _check_variance(variance)
    mean, axes, energy = principal_axes(X, sample_rows=sample_rows, seed=seed, block_rows=block_rows)
    return mean, np.ascontiguousarray(axes[:_signal_rank(energy, variance)].T, dtype=np.float32)


def projected_sq_distances(X, indices, mean, basis, *, block_rows: int = PAIR_ROWS) -> np.ndarray:
    """(n, k) float32 squared Euclidean distance between each row of X (n, d) and each of its neighbours
    ``indices`` (n, k), both centred by ``mean`` and projected on ``basis`` (d, r) (:func:`signal_basis`). Holds
    one (n, r) float32 projection: the plain reference :func:`signal_sq_distances` is checked against."""
    indices = _check_pairs(indices, len(X))
    projected, _ = _project(X, np.asarray(mean, dtype=np.float32), np.asarray(basis, dtype=np.float32))
    return _pair_sq(projected, projected, indices, block_rows=block_rows)


def _check_pairs(indices, n_queries: int, cosines=None) -> np.ndarray:
    indices = np.asarray(indices)
    if indices.ndim != 2 or len(indices) != n_queries or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices: expected one (k,) integer row of neighbours per row, {n_queries} rows, got "
                         f"{indices.dtype} {indices.shape}.")
    if cosines is not None and np.shape(cosines) != indices.shape:
        raise ValueError(f"cosines {np.shape(cosines)}: expected the neighbour search's similarities, shaped like "
                         f"indices {indices.shape}.")
    return indices.astype(np.int64, copy=False)


def _project(Z, mean32: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of Z (n, d) centred and projected on basis (d, w), float32; their squared centred norms (n,) float64),
    in one pass of row blocks (a memmap's pages released as read). Centred in float32 like the neighbour search's
    unit rows, so the norms match the stored cosines."""
    n = len(Z)
    held = np.empty((n, basis.shape[1]), dtype=np.float32)
    norms = np.empty(n, dtype=np.float64)
    for s in range(0, n, BLOCK_ROWS):
        centred = np.asarray(Z[s:s + BLOCK_ROWS], dtype=np.float32) - mean32
        release_rows(Z, s, s + BLOCK_ROWS)
        held[s:s + BLOCK_ROWS] = centred @ basis
        norms[s:s + BLOCK_ROWS] = np.einsum("ij,ij->i", centred, centred, dtype=np.float64)
    return held, norms


def _pair_sq(held_q: np.ndarray, held_x: np.ndarray, indices: np.ndarray, *, block_rows: int = PAIR_ROWS,
             norms_q=None, norms_x=None, cosines=None) -> np.ndarray:
    """(m, k) float32 squared distances between held query rows and their neighbours' held rows; with norms and
    cosines given, held rows are residual projections and the result is the full squared distance less theirs."""
    out = np.empty(indices.shape, dtype=np.float32)
    for s in range(0, len(indices), block_rows):
        idx = indices[s:s + block_rows]
        diff = held_x[idx] - held_q[s:s + block_rows, None, :]
        part = np.einsum("bkw,bkw->bk", diff, diff, dtype=np.float64)
        if cosines is not None:
            nq, nx = norms_q[s:s + block_rows, None], norms_x[idx]
            cos = np.asarray(cosines[s:s + block_rows], dtype=np.float64)
            full = nq + nx - 2 * np.sqrt(nq * nx) * cos
            part = np.where(full <= COSINE_RESOLUTION * (nq + nx), 0.0, np.maximum(full - part, 0.0))
        out[s:s + block_rows] = part
    return out


def signal_sq_distances(X, indices, cosines, mean, *, queries=None, query_indices=None, query_cosines=None,
                        variance: float = SIGNAL_VARIANCE) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Squared distances on the axes holding ``variance`` of the centred variance of X (n, d; array or memmap).

    indices, cosines (n, k): each row's neighbours among X and their centred cosine similarities, from
    ``NeighborIndex(k, center=True)``; ``mean`` (d,): the column mean that search centred by (its ``mean_``).
    queries (m, d), query_indices, query_cosines (m, k): optional other rows (a test set) and their neighbours in X,
    searched by the same index; they are projected on X's axes.
    Returns ((n, k) float32, (m, k) float32 or None, info: ``axes`` r, ``of`` d, ``held`` columns held per row).
    """
    variance = _check_variance(variance)
    indices = _check_pairs(indices, len(X), cosines)
    mean32 = np.asarray(mean, dtype=np.float32)
    _, axes, energy = principal_axes(X, mean=mean32)
    r, d = _signal_rank(energy, variance), X.shape[1]
    residual = len(axes) == d and d - r < r   # the residual is known only when the sample spans every axis
    basis = np.ascontiguousarray((axes[r:] if residual else axes[:r]).T, dtype=np.float32)
    held, norms = _project(X, mean32, basis)
    extra = dict(norms_q=norms, norms_x=norms, cosines=cosines) if residual else {}
    sq = _pair_sq(held, held, indices, **extra)
    q_sq = None
    if queries is not None:
        q_idx = _check_pairs(query_indices, len(queries), query_cosines)
        q_held, q_norms = _project(queries, mean32, basis)
        extra = dict(norms_q=q_norms, norms_x=norms, cosines=query_cosines) if residual else {}
        q_sq = _pair_sq(q_held, held, q_idx, **extra)
    return sq, q_sq, {"axes": r, "of": d, "held": int(basis.shape[1])}


def typical_sq_distance(sq_distances) -> float:
    """The space's typical nearest-neighbour squared distance: the median over rows of each row's smallest
    ``sq_distances`` (n, k), leaving out rows whose nearest is an exact copy (0); 1.0 when every row has one."""
    nearest = np.asarray(sq_distances, dtype=np.float64).min(axis=1) if np.size(sq_distances) else np.zeros(0)
    nearest = nearest[nearest > 0]
    return float(np.median(nearest)) if len(nearest) else 1.0


def space_relative_similarity(sq_distances, scale: float | None = None) -> np.ndarray:
    """(n, k) float32 1 - (squared distance to each neighbour) / (the space's typical nearest-neighbour squared
    distance, :func:`typical_sq_distance`, or ``scale``), at least -1 (see the module docstring). A constant offset
    or rescaling of the features changes nothing."""
    sq = np.asarray(sq_distances, dtype=np.float64)
    scale = typical_sq_distance(sq) if scale is None else float(scale)
    if not scale > 0:
        raise ValueError(f"scale={scale!r}: a positive squared distance.")
    return np.maximum(1 - sq / scale, -1).astype(np.float32)


def copy_similarities(X, indices, cosines, mean, *, queries=None, query_indices=None,
                      query_cosines=None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """The near-copy similarity of every neighbour pair (the module's rule; threshold 0.9 = ten times closer than a
    typical nearest pair). Arguments as :func:`signal_sq_distances`; query rows (a test set) are judged on X's axes
    against X's scale, so a leak reads like a copy inside X. Returns ((n, k) float32, (m, k) float32 or None,
    info: ``axes``, ``of``, ``held``, ``variance``, ``scale`` — the typical squared distance used)."""
    sq, q_sq, info = signal_sq_distances(X, indices, cosines, mean, queries=queries, query_indices=query_indices,
                                         query_cosines=query_cosines)
    scale = typical_sq_distance(sq)
    q_sim = None if q_sq is None else space_relative_similarity(q_sq, scale)
    return space_relative_similarity(sq, scale), q_sim, {**info, "variance": SIGNAL_VARIANCE, "scale": scale}
