"""Cosine search's building blocks, shared by the neighbour index, recall checks, the map and text queries: input
validation, unit-norm (optionally centred) row blocks, the column mean, and exact blocked top-k search over a
matrix or read-only memmap read a block at a time (each block's pages released once used,
:mod:`coreclean.data.memmap_pages`)."""
from __future__ import annotations

import numpy as np

from ..data.memmap_pages import release_rows
from ..data.validation import check_matrix

BLOCK_ROWS = 32768          # rows read from X per block (32768 x 512 float32 = 64 MB)


__all__ = ["BLOCK_ROWS", "check_matrix", "check_k", "column_mean", "drop_self", "exact_search", "in_threads",
           "top_k", "unit_rows"]


def unit_rows(block: np.ndarray, *, name: str = "X", offset: int = 0, mean: np.ndarray | None = None) -> np.ndarray:
    """float32 copy of ``block`` (b, d), minus ``mean`` (d,) when given, with each row scaled to unit L2 norm;
    all-zero rows stay zero.

    Raises ValueError naming the first row (``offset`` + position) holding NaN or inf.
    """
    out = np.array(block, dtype=np.float32, order="C", copy=True)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        raise ValueError(f"{name}: row {offset + int(np.argmax(bad))} contains NaN or inf; drop or impute it first.")
    if mean is not None:
        out -= mean
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    out /= np.maximum(norms, 1e-12)[:, None]
    return out


def column_mean(X, *, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """(d,) float32 mean of the rows of X (n, d; array or memmap), summed in float64 over row blocks."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, len(X), block_rows):
        total += np.asarray(X[start:start + block_rows], dtype=np.float64).sum(axis=0)
        release_rows(X, start, start + block_rows)
    if not np.isfinite(total).all():
        raise ValueError("X: contains NaN or inf (or values too large to sum); drop or impute those rows first.")
    return (total / max(len(X), 1)).astype(np.float32)


def check_k(k: int, n_rows: int, exclude_self: bool) -> int:
    limit = n_rows - 1 if exclude_self else n_rows
    if not isinstance(k, (int, np.integer)) or k < 1 or k > limit:
        raise ValueError(f"k={k!r}: must be an integer in 1..{limit} for {n_rows} rows"
                         f"{' (self excluded)' if exclude_self else ''}; lower k.")
    return int(k)


def top_k(sim: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest similarities (descending) of candidate arrays (m, c), c >= k."""
    if sim.shape[1] > k:
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        sim, idx = np.take_along_axis(sim, part, 1), np.take_along_axis(idx, part, 1)
    order = np.argsort(-sim, axis=1, kind="stable")
    return np.take_along_axis(sim, order, 1), np.take_along_axis(idx, order, 1)


def drop_self(sim: np.ndarray, idx: np.ndarray, query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from sorted (m, k + 1) results; where absent (ties among >k exact copies), the
    last entry goes, so every row keeps k neighbours."""
    mask = idx == query_ids[:, None]
    absent = ~mask.any(axis=1)
    mask[absent, -1] = True
    m, width = idx.shape
    return sim[~mask].reshape(m, width - 1), idx[~mask].reshape(m, width - 1)


def exact_search(X, queries: np.ndarray, k: int, *, exclude_ids: np.ndarray | None = None,
                 block_rows: int = BLOCK_ROWS, mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k of unit-norm ``queries`` (m, d) among the rows of ``X`` (n, d), streaming X in blocks.

    ``exclude_ids`` (m,): each query's own row in X, removed from its result. ``mean`` (d,): subtracted from X's
    rows before their cosine (centred search; the queries must be centred the same way). Returns (indices (m, k) int64,
    similarities (m, k) float32), most similar first.
    """
    import faiss

    want = k + (exclude_ids is not None)
    best_sim = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_idx = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(X), block_rows):
        block = unit_rows(X[start:start + block_rows], offset=start, mean=mean)
        release_rows(X, start, start + block_rows)
        sim, idx = faiss.knn(queries, block, int(min(want, len(block))), metric=faiss.METRIC_INNER_PRODUCT)
        best_sim = np.concatenate([best_sim, sim], axis=1)
        best_idx = np.concatenate([best_idx, idx + start], axis=1)
        best_sim, best_idx = top_k(best_sim, best_idx, min(want, best_sim.shape[1]))
    if exclude_ids is not None:
        best_sim, best_idx = drop_self(best_sim, best_idx, np.asarray(exclude_ids))
    return best_idx.astype(np.int64), best_sim.astype(np.float32)


def in_threads(fn, items, n_jobs: int) -> list:
    """Map ``fn`` over ``items`` in ``n_jobs`` threads, each running faiss single-threaded: faiss releases the GIL,
    and OpenMP's spinning worker threads waste whole time slices when the cores are shared."""
    import faiss

    def run(item):
        faiss.omp_set_num_threads(1)
        return fn(item)
    if n_jobs <= 1:
        previous = faiss.omp_get_max_threads()
        try:
            return [run(item) for item in items]
        finally:
            faiss.omp_set_num_threads(previous)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_jobs) as pool:
        return list(pool.map(run, items))
