"""Outlier score: how atypical each sample is of the whole dataset (labels are not used).

Two views of the embedding, each turned into a robust z-score (median / MAD) and summed:

* global — Mahalanobis distance from a Gaussian fitted to the *bulk* of the data: mean and covariance are refitted
  on the (1 - trim) most typical rows, so a clump of stray images (e.g. 200 inverted photos, similar to each
  other) cannot pull the fit towards itself or hide in its own high-variance direction. Only rows of typical local
  density may enter the fit (k-th neighbour distance between its 25th and 75th percentiles, ``FIT_DENSITY``): a
  clump of strays is tighter than ordinary rows and an isolated stray sparser, so at 5% strays neither can capture
  the fit (Fashion-MNIST PCA-128, 999 strays in 20k: AP 0.18 -> 0.84; bench/explore.py). Fitted on a random sample
  of at most ``max_fit_rows`` of those rows; then one streamed pass scores every row.
* local — cosine distance to the k-th nearest neighbour (the neighbours are already stored), which catches
  isolated samples between the modes of a multi-modal embedding. Only its positive robust z counts: a row denser
  than usual is no evidence of being typical (a tight clump of 240 strays, 8% of the rows, scored -13.5 robust-z
  units there and dropped out of the top 240 entirely; tests/test_outliers_density.py).

Why not only kNN distance: strays of one kind are each other's neighbours, so their kNN distance is ordinary (on
Fashion-MNIST with 1% injected strays its average precision is ~0.01; measured in bench/explore.py).

When the images are at hand (in-memory pixel sources), a third view is taken from the images themselves:

* orientation — how badly a self-supervised rotation predictor recognizes the image as upright
  (:mod:`coreclean.exploration.orientation`). Rotated strays look ordinary in the embedding (pixel-PCA: average precision
  0.03 for every embedding-based method) but are not recognized as upright.

The embedding views' sum and the orientation score have very different tails (normal images reach 29 robust-z units
in the first, ~6 in the second), so a plain sum lets the embedding's tail drown the orientation view. With the
orientation view each part is first mapped to its *tail surprise* (:func:`tail_surprise`, -log of the estimated
share of rows at least as extreme, in nats) and the score is the larger of the two: a sample is atypical when
either view finds it rare. Without images the score is the tail surprise of the robust-z sum (the same order as
the sum; one unit, nats, for every source).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .cosine import BLOCK_ROWS, check_matrix


def robust_z(score) -> np.ndarray:
    """(score - median) / (1.4826 * MAD), float64; a constant score maps to zeros."""
    score = np.asarray(score, dtype=np.float64)
    median = np.median(score)
    mad = 1.4826 * np.median(np.abs(score - median))
    if not mad > 0:  # over half the rows tie: fall back on the standard deviation, then on zeros
        mad = score.std()
    return (score - median) / mad if mad > 0 else np.zeros_like(score)


def knn_distance(similarities) -> np.ndarray:
    """(n,) float32 cosine distance (1 - similarity) to the k-th (last) neighbour of (n, k) similarities."""
    similarities = np.asarray(similarities)
    if similarities.ndim != 2 or similarities.shape[1] < 1:
        raise ValueError(f"similarities: expected (n, k) from nearest_neighbors, got shape {similarities.shape}.")
    return (1 - similarities[:, -1]).astype(np.float32)


def _whitener(sample: np.ndarray, shrinkage: float) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """(mean (d,) float32, squared_distance) where ``squared_distance(X - mean)`` (b, d) -> (b,) is the squared
    Mahalanobis distance under a covariance shrunk towards its average variance (keeps it finite when a feature is
    constant or d nears the sample size).

    With more features than sample rows (d > m) the covariance has rank < m: it is never formed (d x d would not fit
    in memory for wide features, and its eigh costs d^3); the m x m Gram matrix gives the same eigenvalues and,
    through the rows, the eigenvectors, and the distance off their span is measured at the shrinkage floor."""
    mean = sample.mean(axis=0, dtype=np.float64)
    centered = sample - mean.astype(np.float32)
    rows, d = centered.shape
    if d > rows:
        return mean.astype(np.float32), _wide_distance(centered, shrinkage)
    cov = (centered.T @ centered).astype(np.float64) / max(rows - 1, 1)
    ridge = np.trace(cov) / len(cov) or 1.0
    cov = (1 - shrinkage) * cov + shrinkage * ridge * np.eye(len(cov))
    values, vectors = np.linalg.eigh(cov)
    whiten = (vectors / np.sqrt(np.maximum(values, 1e-12 * ridge))).astype(np.float32)

    def squared_distance(z: np.ndarray) -> np.ndarray:
        white = z @ whiten
        return np.einsum("ij,ij->i", white, white)

    return mean.astype(np.float32), squared_distance


def _wide_distance(centered: np.ndarray, shrinkage: float) -> Callable[[np.ndarray], np.ndarray]:
    """``squared_distance`` of :func:`_whitener` for ``centered`` (m, d) with d > m, in O(m^2 d) time and O(m d)
    memory: covariance C = centered.T @ centered / (m - 1) shares its non-zero eigenvalues with the Gram matrix
    centered @ centered.T / (m - 1), whose eigenvectors u give C's as centered.T @ u / sqrt(value (m - 1))."""
    rows, d = centered.shape
    scale = max(rows - 1, 1)
    gram = (centered @ centered.T).astype(np.float64) / scale
    ridge = np.trace(gram) / d or 1.0
    values, left = np.linalg.eigh(gram)
    kept = values > 1e-9 * max(values.max(), ridge)  # numerically non-zero directions of the span
    basis = ((centered.T.astype(np.float64) @ left[:, kept]) / np.sqrt(values[kept] * scale)).astype(np.float32)
    inside = 1 / ((1 - shrinkage) * values[kept] + shrinkage * ridge)
    floor = shrinkage * ridge  # every direction off the span has variance 0, shrunk to this

    def squared_distance(z: np.ndarray) -> np.ndarray:
        projected = (z @ basis).astype(np.float64)
        along = projected ** 2
        off = np.maximum(np.einsum("ij,ij->i", z, z, dtype=np.float64) - along.sum(axis=1), 0.0)
        return (along @ inside + off / floor).astype(np.float32)

    return squared_distance


# quantiles of the k-th neighbour distance between which a row may enter the Mahalanobis fit (typical local density)
FIT_DENSITY = (0.25, 0.75)


def typical_density(local, band: tuple[float, float] = FIT_DENSITY) -> np.ndarray:
    """(n,) bool: rows whose k-th neighbour distance ``local`` (n,) lies between its ``band`` quantiles."""
    local = np.asarray(local, dtype=np.float64)
    if not 0 <= band[0] < band[1] <= 1:
        raise ValueError(f"band={band!r}: two quantiles 0 <= lo < hi <= 1.")
    lo, hi = np.quantile(local, band)
    return (local >= lo) & (local <= hi)


def mahalanobis_score(X, *, fit_rows=None, trim: float = 0.1, n_iter: int = 2, shrinkage: float = 0.01,
                      max_fit_rows: int = 50_000, block_rows: int = BLOCK_ROWS,
                      random_state: int = 0) -> np.ndarray:
    """(n,) float32 Mahalanobis distance of each row of X (n, d; array or memmap, streamed) from the bulk's
    Gaussian: fitted on a sample, then ``n_iter`` times refitted on the sample rows inside the (1 - trim) quantile.
    ``fit_rows``: optional (n,) bool, the rows the fit may use (e.g. :func:`typical_density`); default all.
    """
    X = check_matrix(X, min_rows=2)
    if not 0 <= trim < 1:
        raise ValueError(f"trim={trim!r}: the fraction of least typical rows left out of the fit, in [0, 1).")
    if not 0 < shrinkage <= 1:
        raise ValueError(f"shrinkage={shrinkage!r}: must be in (0, 1].")
    allowed = np.arange(len(X)) if fit_rows is None else np.flatnonzero(np.asarray(fit_rows, dtype=bool))
    if fit_rows is not None and (np.shape(fit_rows) != (len(X),) or len(allowed) < 2):
        raise ValueError(f"fit_rows: expected {len(X)} booleans (one per row of X) with at least two True, got "
                         f"shape {np.shape(fit_rows)} with {len(allowed)} True.")
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(allowed, min(len(allowed), max_fit_rows), replace=False))
    sample = np.asarray(X[rows], dtype=np.float32)
    if not np.isfinite(sample).all():
        raise ValueError("X: contains NaN or inf; drop or impute those rows first.")
    # Start from the half of the sample nearest the coordinate-wise median (per-feature MAD units), as DetMCD does:
    # a fit on every row lets a clump of strays (2% inverted images) widen the covariance towards itself until its
    # members look closer than typical rows, which in 128-d sit ~sqrt(128) away; the refits then keep them in.
    median = np.median(sample, axis=0)
    spread = np.median(np.abs(sample - median), axis=0)
    spread = np.where(spread > 0, spread, sample.std(axis=0) + 1e-12)
    start = np.einsum("ij,ij->i", *(2 * [(sample - median) / spread]))
    keep = start <= np.quantile(start, 0.5)
    for _ in range(n_iter + 1):
        mean, squared_distance = _whitener(sample[keep], shrinkage)
        dist = squared_distance(sample - mean)
        keep = dist <= np.quantile(dist, 1 - trim)
    out = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), block_rows):
        block = np.asarray(X[start:start + block_rows], dtype=np.float32)
        if not np.isfinite(block).all():
            raise ValueError(f"X: rows {start}..{start + len(block) - 1} contain NaN or inf; drop or impute them.")
        out[start:start + len(block)] = np.sqrt(squared_distance(block - mean))
    return out


def tail_surprise(score, *, lo: float = 0.9, hi: float = 0.99) -> np.ndarray:
    """(n,) float64 -log(estimated share of rows scoring at least as high), in nats: the observed share up to the
    ``lo`` quantile (0 for the lowest row, ln(1 / (1 - lo)) = 2.3 at the 90th percentile), then an exponential tail
    through the ``lo`` and ``hi`` quantiles (ln 100 = 4.6 at the 99th percentile, extrapolated linearly beyond), so
    scores with different tails become comparable while far rows keep their distance.

    The ``hi`` quantile must fall among ordinary rows: when more than 1 - hi of the rows are extreme in this score,
    its tail looks wider than it is and the score weighs less against the other views (its own order is kept).
    """
    score = np.asarray(score, dtype=np.float64)
    if not 0 < lo < hi < 1:
        raise ValueError(f"lo={lo!r}, hi={hi!r}: quantiles with 0 < lo < hi < 1.")
    ordered = np.sort(score)
    at_least = len(score) - np.searchsorted(ordered, score, side="left")  # rows scoring >= each row (itself too)
    body = -np.log(at_least / len(score))
    low, high = np.quantile(ordered, [lo, hi])
    decay = (high - low) / np.log((1 - lo) / (1 - hi))
    if not decay > 0:  # over 1 - lo of the rows tie at the top: nothing stands out in this view
        return np.minimum(body, np.log(1 / (1 - lo)))
    return np.where(score <= low, np.minimum(body, np.log(1 / (1 - lo))),
                    np.log(1 / (1 - lo)) + (score - low) / decay)


def outlier_score(X, similarities, *, orientation=None, trim: float = 0.1, max_fit_rows: int = 50_000,
                  block_rows: int = BLOCK_ROWS, random_state: int = 0) -> np.ndarray:
    """(n,) float32 outlier score, higher = more atypical of the whole dataset.

    Parameters
    ----------
    X : (n, d) embeddings (array or read-only memmap; streamed in ``block_rows`` blocks).
    similarities : (n, k) cosine similarities of each row's neighbours, from ``nearest_neighbors(X)``.
    orientation : optional (n,) score of the images themselves, higher = less upright-looking
        (:func:`coreclean.exploration.orientation.orientation_score`); None when the images are not at hand.
    trim, max_fit_rows, random_state : see :func:`mahalanobis_score` (fitted on rows of typical density,
        :func:`typical_density` of the k-th neighbour distance).

    Returns tail_surprise(robust_z(Mahalanobis distance from the bulk) + max(0, robust_z(cosine distance to the
    k-th neighbour))), and with ``orientation`` the larger of that and tail_surprise(orientation): in nats whichever views
    were used (2.3 at the 90th percentile of a view, 4.6 at its 99th, 6.9 where about 1 row in 1000 would be), so
    the ``outlier`` column of ``rank`` and ``export`` reads the same for every source.
    """
    X = check_matrix(X, min_rows=2)
    local = knn_distance(similarities)
    if len(local) != len(X):
        raise ValueError(f"similarities: {len(local)} rows but X has {len(X)}; pass nearest_neighbors(X)'s output.")
    if orientation is not None:
        orientation = np.asarray(orientation, dtype=np.float64)
        if orientation.shape != (len(X),) or not np.isfinite(orientation).all():
            raise ValueError(f"orientation: expected {len(X)} finite scores (one per row of X), got shape "
                             f"{orientation.shape}; pass orientation_score(images) of the same rows.")
    glob = mahalanobis_score(X, fit_rows=typical_density(local), trim=trim, max_fit_rows=max_fit_rows,
                             block_rows=block_rows, random_state=random_state)
    embedding = tail_surprise(robust_z(glob) + np.maximum(robust_z(local), 0))
    if orientation is None:
        return embedding.astype(np.float32)
    return np.maximum(embedding, tail_surprise(orientation)).astype(np.float32)
