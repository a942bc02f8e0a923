"""Per-sample statistics and predictions under a fitted classifier ``coef`` (the solver is
:mod:`coreclean.classifier.solver`), confusion matrices and pairs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lazy_torch import torch
from ..data.memmap_pages import release_rows
from .row_passes import remote_passes, resolve_device


def label_statistics(X: np.ndarray, y: np.ndarray, coef: np.ndarray, *, batch: int = 16384,
                     device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Per-sample statistics under ``coef`` (d + 1, K), streamed over row batches (never an (n, K) matrix).

    Returns (n,) arrays: ``p_label`` (probability of the given label), ``pred`` (argmax class), ``p_pred`` (its
    probability), ``residual_norm`` (``||p - e_y||``) and ``curvature`` (``1 - ||p||^2``).
    """
    remote = remote_passes(X)
    if remote is not None:  # per chunk of rows on a cluster (coreclean.classifier.row_passes.row_passes_on)
        return remote.map_rows(label_statistics, X, (y,), coef=coef, batch=batch, device="auto")  # a GPU worker's GPU
    device = resolve_device(device)
    n = len(y)
    out = {name: np.empty(n) for name in ("p_label", "p_pred", "residual_norm", "curvature")}
    out["pred"] = np.empty(n, dtype=np.int64)
    W = torch.from_numpy(np.asarray(coef[:-1], np.float32)).to(device)
    b = torch.from_numpy(np.asarray(coef[-1], np.float32)).to(device)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        block = torch.from_numpy(np.array(X[start:stop], dtype=np.float32)).to(device)
        release_rows(X, start, stop)  # copied: a memmap's pages leave the resident set
        proba = torch.softmax(torch.addmm(b, block, W), dim=1)
        labels = torch.from_numpy(np.asarray(y[start:stop], dtype=np.int64)).to(device)
        p_label = proba.gather(1, labels[:, None])[:, 0].double()
        squares = (proba * proba).sum(dim=1, dtype=torch.float64)
        top = proba.max(dim=1)
        out["p_label"][start:stop] = p_label.cpu().numpy()
        out["pred"][start:stop] = top.indices.cpu().numpy()
        out["p_pred"][start:stop] = top.values.cpu().numpy()
        out["residual_norm"][start:stop] = (squares - 2 * p_label + 1.0).clamp(min=0).sqrt().cpu().numpy()
        out["curvature"][start:stop] = (1.0 - squares).cpu().numpy()
    return out


def predict_proba(X: np.ndarray, coef: np.ndarray, *, batch: int = 65536) -> np.ndarray:
    """Class probabilities (n, K) float32 for features (n, d) under ``coef`` (d + 1, K); batched for memmaps."""
    out = np.empty((len(X), coef.shape[1]), dtype=np.float32)
    for start in range(0, len(X), batch):
        z = np.asarray(X[start:start + batch], dtype=np.float32) @ coef[:-1] + coef[-1]
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        out[start:start + batch] = z / z.sum(axis=1, keepdims=True)
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (K, K): rows are true classes, columns predicted classes."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def normalize_confusion(counts: np.ndarray) -> np.ndarray:
    """Row-normalized confusion (each true class sums to 1; empty rows stay 0)."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)


@dataclass(frozen=True)
class ConfusionPair:
    true: int
    predicted: int
    rate: float
    count: int


def confusion_pairs(counts: np.ndarray) -> list[ConfusionPair]:
    """All off-diagonal (true, predicted) pairs with at least one sample, worst first.

    Ranked by the true-class-normalized rate, then by count; the diagonal is excluded.
    """
    rates = normalize_confusion(counts)
    true, pred = np.nonzero(counts)
    keep = true != pred
    true, pred = true[keep], pred[keep]
    order = np.lexsort((-counts[true, pred], -rates[true, pred]))
    return [ConfusionPair(int(t), int(p), float(rates[t, p]), int(counts[t, p])) for t, p in zip(true[order], pred[order])]
