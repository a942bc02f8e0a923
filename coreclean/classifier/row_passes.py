"""The streamed passes over rows the solver is made of: moments (standardization, Gram, class sums), loss and
gradient, validation errors — float32 work on ``device``, float64 sums, rows read in batches so memory-mapped inputs
are never copied. Every pass returns sums that are additive over any split of the rows, which is what lets
:func:`row_passes_on` hand them to an executor running chunks elsewhere (:mod:`coreclean.classifier.dask_passes`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import numpy as np

from .lazy_torch import torch

BATCH = 32768
# Below this many multiply-adds per batch a second CPU thread costs more than it gives: every small op then
# synchronizes both threads, which on a shared machine (load 7-8 on 2 cores) made a digits fit 6x slower (37 s vs
# 6 s) and a Fashion-MNIST one 89 s vs 15 s.
THREAD_WORK = 2 ** 27


@contextmanager
def threads_for(work: float, device: torch.device, *, threshold: float = THREAD_WORK):
    """Run small CPU work (below ``threshold``; default: multiply-adds per batch) on one torch thread; restore the
    setting afterwards."""
    if device.type != "cpu" or work >= threshold or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Where the streamed passes over rows run: by default here, batch by batch. An executor set with
# row_passes_on() (coreclean.classifier.dask_passes.DaskRowPasses) takes the passes over the arrays it `handles` and runs them
# per chunk of rows on a cluster, reducing the same additive sums.
_ROW_PASSES: ContextVar = ContextVar("coreclean_row_passes", default=None)


@contextmanager
def row_passes_on(executor):
    """Within the block, :func:`moments`, :func:`loss_and_gradient`, :func:`validation_error` (and the leverage
    and label-statistics passes) over arrays ``executor.handles`` run on ``executor``; None: here."""
    token = _ROW_PASSES.set(executor)
    try:
        yield executor
    finally:
        _ROW_PASSES.reset(token)


def remote_passes(X):
    """The executor set by :func:`row_passes_on` when it takes passes over ``X``, else None (run here)."""
    executor = _ROW_PASSES.get()
    return executor if executor is not None and executor.handles(X) else None


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Moments:
    """Additive weighted sums of standardized rows ``z = (x - mean) / scale`` of one fixed reference.

    total : sum of weights.  first : (d,) sum of w z.  second : (d, d) sum of w z z^T, or None (d >= n).
    class_sums : (K, d) per-class sums of w z.  class_weights : (K,) per-class weight.
    mean, scale : (d,) float64, the reference standardization (weighted mean and standard deviation of the
    rows it was computed on; constant features get scale 1).
    """

    total: float
    first: np.ndarray
    second: np.ndarray | None
    class_sums: np.ndarray
    class_weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def __add__(self, other: "Moments") -> "Moments":
        """Moments of the rows of both (disjoint rows, same reference): partial sums of row chunks reduce so."""
        second = None if self.second is None or other.second is None else self.second + other.second
        return replace(self, total=self.total + other.total, first=self.first + other.first, second=second,
                       class_sums=self.class_sums + other.class_sums,
                       class_weights=self.class_weights + other.class_weights)

    def __sub__(self, other: "Moments") -> "Moments":
        """Moments of the rows of ``self`` not in ``other`` (same reference)."""
        second = None if self.second is None or other.second is None else self.second - other.second
        return replace(self, total=self.total - other.total, first=self.first - other.first, second=second,
                       class_sums=self.class_sums - other.class_sums,
                       class_weights=self.class_weights - other.class_weights)

    def covariance(self, ridge: float = 0.0) -> np.ndarray:
        """(d, d) weighted covariance of z, plus ``ridge`` times its mean variance on the diagonal."""
        mu = self.first / self.total
        cov = self.second / self.total - np.outer(mu, mu)
        cov[np.diag_indices_from(cov)] += ridge * max(np.trace(cov) / len(cov), 1e-12)
        return cov


def batches(X, rows: np.ndarray | None, batch: int = BATCH):
    """Yield (positions, float32 block) over ``X[rows]`` (or all of ``X``), ``batch`` rows at a time."""
    from ..data.memmap_pages import release_rows

    n = len(X) if rows is None else len(rows)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        if rows is None:
            yield slice(start, stop), np.asarray(X[start:stop], dtype=np.float32)
            release_rows(X, start, stop)  # a memmap's pages leave the resident set once the batch is used
        else:
            yield rows[start:stop], np.asarray(X[rows[start:stop]], dtype=np.float32)
            if len(rows) and np.all(np.diff(rows[start:stop]) > 0):  # sorted rows: the span they were read from
                release_rows(X, int(rows[start]), int(rows[stop - 1]) + 1)


def standardize(block: np.ndarray, mean: np.ndarray, scale: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, d) float32 tensor ``(block - mean) / scale`` on ``device`` (computed in float64 when needed)."""
    z = (block - mean.astype(np.float32)) / scale.astype(np.float32)
    if not np.isfinite(z).all():  # float32 overflow of huge raw values: redo this block in float64
        z = ((block.astype(np.float64) - mean) / scale).astype(np.float32)
    return torch.from_numpy(z).to(device)


def _tensor(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """A tensor view of a (possibly read-only, memory-mapped) block; never written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(block).to(device)


def centred_sums(X, rows: np.ndarray | None, w: np.ndarray, shift: np.ndarray, device: torch.device,
                 batch: int = BATCH) -> tuple[float, np.ndarray, np.ndarray]:
    """(sum w, (d,) sum w (x - shift), (d,) sum w (x - shift)^2) over ``X[rows]`` in float64: the first pass of
    :func:`moments`, additive over any split of the rows."""
    unit = bool(np.all(w == 1.0))
    shift_t = torch.from_numpy(shift).to(device)
    s0, s1, s2 = 0.0, torch.zeros(len(shift), dtype=torch.float64, device=device), torch.zeros_like(shift_t)
    for where, block in batches(X, rows, batch):
        centred = _tensor(block, device).double() - shift_t  # float64: squares of huge raw values stay finite
        weighted = centred if unit else centred * torch.from_numpy(w[where]).to(device)[:, None]
        s0 += float(w[where].sum())
        s1 += weighted.sum(dim=0)
        s2 += (weighted * centred).sum(dim=0)
    return s0, s1.cpu().numpy(), s2.cpu().numpy()


def mean_scale(shift: np.ndarray, s0: float, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation (d,) from :func:`centred_sums` (constant features get scale 1)."""
    mean_shift = s1 / s0
    var = np.maximum(s2 / s0 - mean_shift ** 2, 0.0)
    return shift + mean_shift, np.where(var > 0, np.sqrt(var), 1.0)


def moments(X, y: np.ndarray, n_classes: int, *, sample_weight: np.ndarray | None = None,
            reference: Moments | None = None, gram: bool = True, device: str | torch.device = "cpu",
            batch: int = BATCH) -> Moments:
    """Moments of the rows of ``X`` (n, d) with positive ``sample_weight`` (default all ones), streamed.

    ``reference`` reuses another computation's mean/scale (so the results can be subtracted from it);
    otherwise a first pass computes them (in float64, shifted by the first row for accuracy). ``gram=False``
    skips the (d, d) matrix (wide data: d >= n).
    """
    remote = remote_passes(X)
    if remote is not None:
        return remote.moments(X, y, n_classes, sample_weight=sample_weight, reference=reference, gram=gram,
                              batch=batch)
    device = resolve_device(device)
    n, d = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    rows = None if sample_weight is None else np.flatnonzero(w > 0)
    unit = bool(np.all(w == 1.0))
    if reference is None:
        shift = np.asarray(X[0 if rows is None else rows[0]], dtype=np.float64)
        mean, scale = mean_scale(shift, *centred_sums(X, rows, w, shift, device, batch))
    else:
        mean, scale = reference.mean, reference.scale
    total, first = 0.0, torch.zeros(d, dtype=torch.float64, device=device)
    second = torch.zeros(d, d, dtype=torch.float64, device=device) if gram else None
    class_sums = torch.zeros(n_classes, d, dtype=torch.float64, device=device)
    y = np.asarray(y)
    for where, block in batches(X, rows, batch):
        z = standardize(block, mean, scale, device)
        wz = z if unit else z * torch.from_numpy(w[where].astype(np.float32)).to(device)[:, None]
        total += float(w[where].sum())
        first += wz.sum(dim=0, dtype=torch.float64)
        if gram:
            second += (wz.T @ z).double()
        labels = torch.from_numpy(y[where].astype(np.int64)).to(device)
        class_sums += torch.zeros(n_classes, d, device=device).index_add_(0, labels, wz).double()  # float32 per batch
    class_weights = np.bincount(y if rows is None else y[rows], weights=w if rows is None else w[rows],
                                minlength=n_classes)
    return Moments(total, first.cpu().numpy(), None if second is None else second.cpu().numpy(),
                   class_sums.cpu().numpy(), class_weights, mean, scale)


class StandardizedRows:
    """``(X[rows] - mean) / scale`` as float32 batches on ``device`` with their labels, streamed from ``X`` on
    every pass, or held in memory after the first when there are at most ``CACHE_FLOATS`` values."""

    CACHE_FLOATS = 2 ** 26

    def __init__(self, X, rows: np.ndarray | None, mean: np.ndarray, scale: np.ndarray, device: torch.device,
                 batch: int = BATCH, y: np.ndarray | None = None):
        self.X, self.rows, self.mean, self.scale, self.device, self.batch = X, rows, mean, scale, device, batch
        self.y = np.zeros(len(X), np.int64) if y is None else y
        count = len(X) if rows is None else len(rows)
        self.cache = [] if count * X.shape[1] <= self.CACHE_FLOATS else None

    def __iter__(self):
        """Yield (positions, z (B, d), labels (B,) int64) on the device."""
        if self.cache:
            yield from self.cache
            return
        for where, block in batches(self.X, self.rows, self.batch):
            labels = torch.from_numpy(np.asarray(self.y[where], dtype=np.int64)).to(self.device)
            item = (where, standardize(block, self.mean, self.scale, self.device), labels)
            if self.cache is not None:
                self.cache.append(item)
            yield item


def logits_of(z: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm(b, z, W)


def loss_and_gradient(rows: StandardizedRows, w: np.ndarray, W: torch.Tensor, b: torch.Tensor):
    """Sum over ``rows`` of ``w_i CE(z_i W + b, y_i)``, and its gradients (d, K), (K,) in float64.

    Per-row losses and residuals ``p - e_y`` are formed before summing (not as differences of large sums), so
    the objective stays accurate to float32 per row near the optimum, where the line search needs it.
    """
    remote = remote_passes(rows.X)
    if remote is not None:
        return remote.loss_and_gradient(rows, w, W, b)
    device = rows.device
    unit = bool(np.all(w[rows.rows] == 1.0) if rows.rows is not None else np.all(w == 1.0))
    loss = 0.0
    gW = torch.zeros(W.shape, dtype=torch.float64, device=device)
    gb = torch.zeros(b.shape, dtype=torch.float64, device=device)
    for where, z, labels in rows:
        logits = logits_of(z, W, b)
        top = logits.max(dim=1, keepdim=True).values
        given = logits.gather(1, labels[:, None])
        norm = logits.sub_(top).exp_().sum(dim=1, keepdim=True)
        loss_rows = norm.log().add_(top).sub_(given)[:, 0]
        residual = logits.div_(norm)  # softmax, reusing the buffer
        residual.scatter_add_(1, labels[:, None], torch.full_like(given, -1.0))  # p - e_y
        if not unit:
            weight = torch.from_numpy(np.asarray(w[where], dtype=np.float32)).to(device)
            loss_rows, residual = loss_rows * weight, residual.mul_(weight[:, None])
        loss += float(loss_rows.sum(dtype=torch.float64))
        gW += (z.T @ residual).double()
        gb += residual.sum(dim=0, dtype=torch.float64)
    return loss, gW, gb


def validation_error(rows: StandardizedRows, W: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of ``rows`` whose argmax is not their label."""
    remote = remote_passes(rows.X)
    if remote is not None:
        return remote.validation_error(rows, W, b)
    wrong = sum(int((logits_of(z, W, b).argmax(dim=1) != labels).sum()) for _, z, labels in rows)
    return wrong / sum(len(labels) for _, _, labels in rows)
