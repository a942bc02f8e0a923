"""Leverage scores: how far each row sits from the bulk of the rows in the metric of their Gram matrix.

The leverage of row i of ``[X, 1]`` is the i-th diagonal entry of its hat matrix. It is the label-blind term of the
importance bound (:mod:`coreclean.importance.sensitivity`) and what DataHeroes' cleaning mode ranks by on its own.
"""
from __future__ import annotations

import numpy as np

from ..classifier.lazy_torch import torch
from ..classifier.row_passes import Moments, StandardizedRows, moments, remote_passes, resolve_device


def leverage(X: np.ndarray, *, ridge: float = 1e-6, batch: int = 65536, moments_of_rows: Moments | None = None,
             device: str | torch.device = "cpu") -> np.ndarray:
    """Leverage scores (n,) of ``[X, 1]``: the diagonal of its (ridge-regularized) hat matrix.

    Computed on standardized columns (so invariant to feature scale) from the (d, d) Gram matrix when d < n,
    streaming over row batches (a memmap is never copied); from the (n, n) Gram matrix of the rows when d >= n,
    so memory stays proportional to the input. ``moments_of_rows``: :func:`~coreclean.classifier.row_passes.moments` of ``X``,
    if already computed.
    """
    device = resolve_device(device)
    n, d = X.shape
    if d >= n:
        return _leverage_wide(X, ridge)
    m = moments_of_rows if moments_of_rows is not None else moments(X, np.zeros(n, np.int64), 1, device=device)
    centre = m.first / m.total
    centred_gram = m.second - m.total * np.outer(centre, centre)
    centred_gram[np.diag_indices_from(centred_gram)] += ridge * max(np.trace(centred_gram) / d, 1e-12)
    P = np.linalg.inv(np.linalg.cholesky(centred_gram)).T.astype(np.float32)
    remote = remote_passes(X)
    if remote is not None:  # per chunk of rows on a cluster (coreclean.classifier.row_passes.row_passes_on)
        return remote.map_rows(leverage_rows, X, (), mean=m.mean, scale=m.scale, centre=centre, P=P, n=n,
                               batch=batch, device="auto")  # on a GPU worker, its GPU
    return leverage_rows(X, mean=m.mean, scale=m.scale, centre=centre, P=P, n=n, batch=batch, device=device)


def leverage_rows(X, *, mean: np.ndarray, scale: np.ndarray, centre: np.ndarray, P: np.ndarray, n: int,
                  batch: int = 65536, device: str | torch.device = "cpu") -> np.ndarray:
    """The pass of :func:`leverage` over rows ``X`` (b, d) of an n-row set: ``1/n + |(z - centre) P|^2`` (b,),
    with z standardized by ``mean``/``scale`` and P (d, d) the inverse Cholesky factor of the centred Gram."""
    device = resolve_device(device)
    P = torch.from_numpy(P).to(device)
    shift = torch.from_numpy(centre.astype(np.float32)).to(device)
    out = np.empty(len(X))
    for where, z, _ in StandardizedRows(X, None, mean, scale, device, batch):
        u = (z - shift) @ P  # |u|^2 = (z - mean)' G^-1 (z - mean)
        out[where] = 1.0 / n + (u * u).sum(dim=1, dtype=torch.float64).cpu().numpy()
    return out


def _leverage_wide(X: np.ndarray, ridge: float) -> np.ndarray:
    """Leverage of ``[Z, 1]`` (standardized Z) via the (n, n) kernel: diag(K (K + lambda I)^-1)."""
    Z = np.asarray(X, dtype=np.float64)
    Z = Z - Z.mean(axis=0)
    std = Z.std(axis=0)
    Z /= np.where(std > 0, std, 1.0)
    kernel = Z @ Z.T + 1.0
    values, vectors = np.linalg.eigh(kernel)
    lam = ridge * max(np.trace(kernel) / (X.shape[1] + 1), 1e-12)
    values = np.clip(values, 0.0, None)
    return (vectors ** 2) @ (values / (values + lam))
