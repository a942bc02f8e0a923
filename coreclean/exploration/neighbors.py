"""Nearest neighbours on cosine similarity: exact blocked search for small sets, an inverted-file join above that.

Cosine similarity because embeddings (ResNet penultimate features, standardized-pixel PCA) carry "what" in their
direction and "how much" (contrast, activation energy) in their norm; the norm is handled by the outlier score.

Every entry point accepts a read-only ``np.memmap`` and reads it in row blocks, so a 1.28M x 512 set is never
loaded as a second float64 copy. The approximate path ("ivf") keeps one float32 unit-norm copy in memory,
ordered by coarse cluster, and turns the search into one matrix product per cluster (queries probing the cluster x
its members): faiss's own ``IndexIVFFlat`` scans lists one query at a time, which is memory-bound when every
training sample is also a query. The join runs ``JOIN_ROWS`` queries at a time (bounded candidate memory), and a
memmap's pages are released as each block is read (:mod:`coreclean.data.memmap_pages`), so at 1.28M x 512 the
index's unit copy (2.6 GB) is the only large allocation; ``timings_`` says where the search's time went.
"""
from __future__ import annotations

import time

import numpy as np

from ..data.memmap_pages import release_rows
from .cosine import (BLOCK_ROWS, check_k, check_matrix, column_mean, drop_self, exact_search, in_threads, top_k,
                     unit_rows)

EXACT_MAX_WORK = 1e11       # n * n * d at or below which "auto" searches exactly (~2 s on 2 cores)
# queries joined at a time: their candidate lists (rows x n_probe x (k + 1) x 8 bytes, 185 MB for 262,144 rows at
# k = 10) instead of all 1.28M at once (0.9 GB); lists stay large enough for one matrix product each
JOIN_ROWS = 262_144


def default_ivf_params(n_rows: int) -> tuple[int, int]:
    """(n_lists, n_probe) for the inverted-file join: ~2 sqrt(n) lists (at most 2048, and at least 40 rows each so
    k-means has enough points), 8 probed per query (recall@10 measured in bench/explore.py)."""
    n_lists = int(np.clip(min(2 * np.sqrt(n_rows), n_rows // 40), 1, 2048))
    return n_lists, min(8, n_lists)


class NeighborIndex:
    """Cosine k-nearest-neighbour search over the rows of X, built once, queried for X itself and for new rows.

    Parameters
    ----------
    k : neighbours per query.
    method : "exact" (blocked matrix products over X, no copy), "ivf" (approximate: spherical k-means lists,
        each query searched in its ``n_probe`` nearest lists; measure with
        :func:`coreclean.exploration.recall.measure_recall`), or "auto":
        exact when n * n * d <= EXACT_MAX_WORK, else ivf.
    n_lists, n_probe : ivf lists and lists searched per query (default: :func:`default_ivf_params`).
    block_rows : rows of X read and normalized at a time.
    n_jobs : threads (default: all cores).
    center : compare rows after subtracting X's column mean (cosine of centred features). Uncentred cosine
        depends on where the origin happens to be: non-negative (ReLU) features, or any constant offset, make
        every pair look alike (+5 on 8-d features: all 200 of 200 rows "near-duplicates").
    random_state : seed of the k-means sample and initialization.

    Attributes
    ----------
    method_ : "exact" or "ivf".  n_rows_ : n.  mean_ : (d,) float32 column mean subtracted (None uncentred).  n_lists_, n_probe_ : ivf parameters used (None for exact).
    order_ : (n,) int64, rows of X in list order (ivf).  list_offsets_ : (n_lists + 1,) int64 (ivf).
    """

    def __init__(self, k: int = 10, *, method: str = "auto", n_lists: int | None = None,
                 n_probe: int | None = None, block_rows: int = BLOCK_ROWS, n_jobs: int | None = None,
                 center: bool = False, random_state: int = 0):
        self.k = k
        self.center = center
        self.method = method
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.block_rows = block_rows
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X) -> "NeighborIndex":
        """Index X (n, d); for ivf this keeps a float32 unit-norm copy (n * d * 4 bytes) until the index is deleted."""
        import os

        X = check_matrix(X, min_rows=2)
        n, d = X.shape
        check_k(self.k, n, True)
        choices = ("auto", "exact", "ivf")
        if self.method not in choices:
            raise ValueError(f"method={self.method!r}: choose one of {choices}.")
        if not isinstance(self.block_rows, (int, np.integer)) or self.block_rows < 1:
            raise ValueError(f"block_rows={self.block_rows!r}: must be a positive integer.")
        self.n_jobs_ = int(self.n_jobs or os.cpu_count() or 1)
        self.method_ = self.method
        if self.method == "auto":
            self.method_ = "exact" if float(n) * n * d <= EXACT_MAX_WORK else "ivf"
        self.X_, self.n_rows_, self.timings_, self._open = X, n, {}, None
        self._mark("mean")
        self.mean_ = column_mean(X, block_rows=self.block_rows) if self.center else None
        self._mark(None)
        self.n_lists_ = self.n_probe_ = None
        if self.method_ == "ivf":
            self._fit_ivf(X)
        return self

    def _mark(self, stage: str | None) -> None:
        """Close the running entry of ``timings_`` ({stage: (seconds, CPU seconds)}) and open ``stage``."""
        now = (time.perf_counter(), time.process_time())
        if getattr(self, "_open", None) is not None:
            name, (wall, cpu) = self._open
            done = self.timings_.get(name, (0.0, 0.0))
            self.timings_[name] = (round(done[0] + now[0] - wall, 3), round(done[1] + now[1] - cpu, 3))
        self._open = None if stage is None else (stage, now)

    def _fit_ivf(self, X) -> None:
        import faiss

        n, d = X.shape
        default_lists, default_probe = default_ivf_params(n)
        self.n_lists_ = int(self.n_lists or default_lists)
        self.n_probe_ = int(self.n_probe or min(default_probe, self.n_lists_))
        if not 1 <= self.n_probe_ <= self.n_lists_ <= n:
            raise ValueError(f"n_probe={self.n_probe_}, n_lists={self.n_lists_}: need 1 <= n_probe <= n_lists <= "
                             f"n_rows ({n}).")
        self._mark("kmeans")
        rng = np.random.default_rng(self.random_state)
        sample_rows = np.sort(rng.choice(n, min(n, 40 * self.n_lists_), replace=False))
        sample = unit_rows(X[sample_rows], mean=self.mean_)
        release_rows(X)
        kmeans = faiss.Kmeans(d, self.n_lists_, niter=10, spherical=True, seed=self.random_state,
                              max_points_per_centroid=40)
        kmeans.train(sample)
        del sample
        self._mark("assign")
        self.quantizer_ = faiss.IndexFlatIP(d)
        self.quantizer_.add(kmeans.centroids)
        starts = range(0, n, self.block_rows)

        def unit(s):  # the pages just read leave the resident set: the unit copy is what the index keeps
            rows = unit_rows(X[s:s + self.block_rows], offset=s, mean=self.mean_)
            release_rows(X, s, s + self.block_rows)
            return rows
        probes = in_threads(lambda s: self.quantizer_.search(unit(s), self.n_probe_)[1].astype(np.int32), starts,
                             self.n_jobs_)
        self.probes_ = np.concatenate(probes)
        # Each row is stored once, in its nearest list, so candidates from different lists never repeat.
        self.order_ = np.argsort(self.probes_[:, 0], kind="stable")
        self.position_ = np.empty(n, dtype=np.int64)
        self.position_[self.order_] = np.arange(n)
        self.list_offsets_ = np.concatenate([[0], np.cumsum(np.bincount(self.probes_[:, 0],
                                                                        minlength=self.n_lists_))])
        self.stored_ = np.empty((n, d), dtype=np.float32)
        for s in starts:
            self.stored_[self.position_[s:s + self.block_rows]] = unit(s)
        self._mark(None)

    def kneighbors(self, queries=None) -> tuple[np.ndarray, np.ndarray]:
        """(indices (m, k) int64 into X, cosine similarities (m, k) float32), most similar first, for ``queries``
        (m, d) or, when None, for every row of X with itself excluded (m = n)."""
        if not hasattr(self, "method_"):
            raise ValueError("NeighborIndex: call fit(X) before kneighbors().")
        if queries is not None:
            queries = check_matrix(queries, "queries", min_rows=1)
            if queries.shape[1] != self.X_.shape[1]:
                raise ValueError(f"queries: has {queries.shape[1]} features but X has {self.X_.shape[1]}; "
                                 "embed both the same way.")
        k = check_k(self.k, self.n_rows_, queries is None)
        if self.method_ == "exact":
            return self._exact(k, queries)
        return self._ivf(k, queries)

    def _exact(self, k, queries):
        X, b, mean = self.X_, self.block_rows, self.mean_
        if queries is None:
            parts = [exact_search(X, unit_rows(X[s:s + b], offset=s, mean=mean), k, mean=mean, block_rows=b,
                                  exclude_ids=np.arange(s, min(s + b, len(X)))) for s in range(0, len(X), b)]
        else:
            parts = [exact_search(X, unit_rows(queries[s:s + b], name="queries", offset=s, mean=mean), k, mean=mean,
                                  block_rows=b) for s in range(0, len(queries), b)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _ivf(self, k, queries):
        b, n_probe = self.block_rows, self.n_probe_
        self._mark("join")
        if queries is None:
            qvec, qpos, qprobes, want = self.stored_, self.position_, self.probes_, k + 1
        else:
            qvec = np.concatenate([unit_rows(queries[s:s + b], name="queries", offset=s, mean=self.mean_)
                                   for s in range(0, len(queries), b)])
            qpos, want = np.arange(len(qvec)), k
            qprobes = np.concatenate(in_threads(lambda s: self.quantizer_.search(qvec[s:s + b], n_probe)[1],
                                                 range(0, len(qvec), b), self.n_jobs_)).astype(np.int32)
        m = len(qprobes)
        out_idx = np.empty((m, k), dtype=np.int64)
        out_sim = np.empty((m, k), dtype=np.float32)
        for c in range(0, m, JOIN_ROWS):  # bounded candidate memory: a chunk of queries at a time
            cand_sim, cand_idx = self._join(qvec, qpos[c:c + JOIN_ROWS], qprobes[c:c + JOIN_ROWS], want)
            for s in range(0, len(cand_sim), b):
                sim, idx = top_k(cand_sim[s:s + b], cand_idx[s:s + b], want)
                if queries is None:
                    sim, idx = drop_self(sim, idx, np.arange(c + s, c + s + len(sim)))
                out_sim[c + s:c + s + len(sim)], out_idx[c + s:c + s + len(sim)] = sim, idx
            del cand_sim, cand_idx
        short = np.flatnonzero((out_idx < 0).any(axis=1))
        if len(short):  # probed lists held fewer than k rows: search those queries exactly
            vectors = qvec[qpos[short]]
            out_idx[short], out_sim[short] = exact_search(self.X_, vectors, k, block_rows=b, mean=self.mean_,
                                                          exclude_ids=short if queries is None else None)
        self._mark(None)
        return out_idx, out_sim

    def _join(self, qvec, qpos, qprobes, want) -> tuple[np.ndarray, np.ndarray]:
        """Candidates (m, n_probe * want) similarities and row indices (-1: none) of the queries ``qvec[qpos]``
        in their probed lists ``qprobes`` (m, n_probe): one matrix product per list, largest lists first."""
        import faiss

        n, n_probe = self.n_rows_, self.n_probe_
        m = len(qprobes)
        cand_sim = np.full((m, n_probe, want), -np.inf, dtype=np.float32)
        cand_idx = np.full((m, n_probe, want), -1, dtype=np.int32 if n < 2**31 else np.int64)
        flat = qprobes.ravel()
        pairs = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[pairs], np.arange(self.n_lists_ + 1))
        offsets, order, stored = self.list_offsets_, self.order_, self.stored_

        def search_list(c):
            lo, hi = int(offsets[c]), int(offsets[c + 1])
            chosen = pairs[bounds[c]:bounds[c + 1]]
            if hi == lo or len(chosen) == 0:
                return
            q, slot = chosen // n_probe, chosen % n_probe
            width = int(min(want, hi - lo))
            sim, idx = faiss.knn(qvec[qpos[q]], stored[lo:hi], width, metric=faiss.METRIC_INNER_PRODUCT)
            cand_sim[q, slot, :width] = sim   # (q, slot) pairs are distinct, so threads never write the same cell
            cand_idx[q, slot, :width] = order[idx + lo]

        sizes = np.diff(offsets) * np.diff(bounds)
        in_threads(search_list, np.argsort(-sizes, kind="stable"), self.n_jobs_)
        return cand_sim.reshape(m, -1), cand_idx.reshape(m, -1)


def nearest_neighbors(X, *, k: int = 10, queries=None, method: str = "auto", n_lists: int | None = None,
                      n_probe: int | None = None, block_rows: int = BLOCK_ROWS, n_jobs: int | None = None,
                      center: bool = False, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k most cosine-similar rows of ``X`` (n, d; array or read-only memmap) for every row of X (self excluded)
    or for each row of ``queries`` (m, d). One-shot form of ``NeighborIndex(...).fit(X).kneighbors(queries)``
    (see there for the parameters); to search X and queries with one index, use the class.

    Returns (indices (m, k) int64 into X, similarities (m, k) float32 cosine, descending per row); m = n when
    queries is None.
    """
    index = NeighborIndex(k, method=method, n_lists=n_lists, n_probe=n_probe, block_rows=block_rows,
                          n_jobs=n_jobs, center=center, random_state=random_state)
    return index.fit(X).kneighbors(queries)
