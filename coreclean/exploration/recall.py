"""Search quality of stored neighbour lists: recall@k against exact search, measured on a sample of queries."""
from __future__ import annotations

import numpy as np

from .cosine import check_matrix, exact_search, unit_rows


def recall_at_k(approx_indices, exact_indices) -> float:
    """Mean fraction of each row's exact neighbours (m, k) found among its approximate ones (m, k') ."""
    approx, exact = np.asarray(approx_indices), np.asarray(exact_indices)
    if approx.ndim != 2 or exact.ndim != 2 or len(approx) != len(exact) or exact.shape[1] == 0:
        raise ValueError(f"approx_indices {approx.shape} and exact_indices {exact.shape}: need two (m, k) arrays "
                         "with the same number of rows.")
    hits = (approx[:, :, None] == exact[:, None, :]).any(axis=1)
    return float(hits.mean())


def measure_recall(X, indices, *, queries=None, rows=None, n_samples: int = 1000, mean=None,
                   random_state: int = 0) -> tuple[float, np.ndarray]:
    """Recall@k of stored neighbour ``indices`` (m, k) against exact search, on a random sample of the queries.

    ``queries`` must be the array ``indices`` was computed for (None: X itself, self excluded). ``rows`` picks the
    sampled queries explicitly; ``mean`` (d,): the index's ``mean_`` when it searched centred rows. Returns (recall, sampled rows); cost is n_samples * n * d, streamed over X.
    """
    X = check_matrix(X, min_rows=2)
    indices = np.asarray(indices)
    m = len(X) if queries is None else len(queries)
    if indices.ndim != 2 or len(indices) != m:
        raise ValueError(f"indices: shape {indices.shape} does not match the {m} queries it should describe.")
    if rows is None:
        rng = np.random.default_rng(random_state)
        rows = np.sort(rng.choice(m, min(n_samples, m), replace=False))
    rows = np.asarray(rows, dtype=np.int64)
    source = X if queries is None else check_matrix(queries, "queries", min_rows=1)
    q = unit_rows(source[rows], name="X" if queries is None else "queries", mean=mean)
    exact, _ = exact_search(X, q, indices.shape[1], exclude_ids=rows if queries is None else None, mean=mean)
    return recall_at_k(indices[rows], exact), rows


def index_recall(index, indices, *, n_samples: int = 1000, random_state: int = 0) -> float:
    """Recall@k of ``indices`` (n, k), the neighbours ``index`` (a fitted
    :class:`~coreclean.exploration.neighbors.NeighborIndex`) found for its own rows, against exact search.

    An ivf index is searched exactly in its own unit-norm (and centred) copy of the rows, so X is not read and
    normalized once more (at 1.28M x 512 a 2.6 GB pass); otherwise :func:`measure_recall` on X. Same queries and
    result as ``measure_recall(X, indices, mean=index.mean_)`` up to float32 rounding."""
    if getattr(index, "method_", None) != "ivf":
        return measure_recall(index.X_, indices, n_samples=n_samples, mean=index.mean_,
                              random_state=random_state)[0]
    indices = np.asarray(indices)
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(index.n_rows_, min(n_samples, index.n_rows_), replace=False))
    positions = index.position_[rows]
    exact, _ = exact_search(index.stored_, index.stored_[positions], indices.shape[1], exclude_ids=positions)
    return recall_at_k(indices[rows], index.order_[exact])
