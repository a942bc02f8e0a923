r"""Multinomial logistic regression on every row: standardized, whitened, LDA-started, streamed L-BFGS.

The problem solved is scikit-learn's, on standardized features :math:`z = (x - \bar x) / s`:

.. math:: \min_{W, b}\ \sum_i w_i\,\mathrm{CE}(z_i W + b,\ y_i) + \frac{\|W\|^2}{2C},

so the fit does not depend on the scale (or offset) of any feature. It is solved with four devices:

1. **Moments in two streamed passes** (:func:`moments`): weighted mean and scale, then the Gram matrix and
   class sums of ``z``. They are additive, so the moments of a subset (a validation slice, trimmed rows) are subtracted
   instead of recomputed; the estimator reuses the same Gram for the leverage scores.
2. **A closed-form start**: linear discriminant analysis (class means under the pooled, slightly shrunk
   covariance), its logits rescaled by one temperature fitted on a subset. For Gaussian classes with a shared
   covariance this is already the Bayes-optimal rule up to estimation error.
3. **Whitened coordinates**: L-BFGS runs on :math:`V` with :math:`W = P V`, :math:`P P^\top = \Sigma_z^{-1}`, so
   correlated, unevenly scaled features do not slow it (this is preconditioning with the inverse Gram; the
   objective is unchanged). Each function evaluation streams over the rows in batches, so memory-mapped inputs
   are never copied; the number of evaluations can be capped (``max_passes``).
4. **Early stopping on a validation slice** (optional): the last iterate whose validation error is within noise
   of the lowest is kept, and the run stops early when no iterate beats the start. On data where the discriminative fit overfits
   (Gaussian classes, ~2.5 rows per parameter) that is the calibrated LDA start; where LDA is misspecified
   (Fashion-MNIST) it is a late L-BFGS iterate. Without a slice, L-BFGS runs to convergence and matches
   scikit-learn's ``LogisticRegression`` on standardized features.

Work runs in float32 on ``device`` (``"cuda"`` when available), sums in float64.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.optimize import minimize, minimize_scalar

BATCH = 32768
DEFAULT_SHRINKAGE = 1e-2
# Below this many multiply-adds per batch a second CPU thread costs more than it gives: every small op then
# synchronizes both threads, which on a shared machine (load 7-8 on 2 cores) made a digits fit 6x slower (37 s vs
# 6 s) and a Fashion-MNIST one 89 s vs 15 s.
THREAD_WORK = 2 ** 27


@contextmanager
def threads_for(work: float, device: torch.device):
    """Run small CPU work (multiply-adds per batch) on one torch thread; restore the setting afterwards."""
    if device.type != "cpu" or work >= THREAD_WORK or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# Where the streamed passes over rows run: by default here, batch by batch. An executor set with
# row_passes_on() (coreclean.dask_passes.DaskRowPasses) takes the passes over the arrays it `handles` and runs them
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
    n = len(X) if rows is None else len(rows)
    for start in range(0, n, batch):
        stop = min(start + batch, n)
        if rows is None:
            yield slice(start, stop), np.asarray(X[start:stop], dtype=np.float32)
        else:
            yield rows[start:stop], np.asarray(X[rows[start:stop]], dtype=np.float32)


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


def lda_start(m: Moments, *, shrinkage: float = DEFAULT_SHRINKAGE) -> tuple[np.ndarray, np.ndarray]:
    """Linear discriminant analysis in z coordinates: (W (d, K), b (K,)) float64.

    Pooled within-class covariance, shrunk toward its mean variance by ``shrinkage``; classes without weight get
    the overall mean and a negligible prior.
    """
    present = m.class_weights > 0
    means = np.where(present[:, None], m.class_sums / np.where(present, m.class_weights, 1.0)[:, None],
                     m.first / m.total)
    within = m.second - (m.class_sums[present].T / m.class_weights[present]) @ m.class_sums[present]
    within /= max(m.total - present.sum(), 1.0)
    within[np.diag_indices_from(within)] += shrinkage * max(np.trace(within) / len(within), 1e-12)
    W = np.linalg.solve(within, means.T)
    prior = np.log(np.where(present, m.class_weights / m.total, 1e-12))
    return W, prior - 0.5 * np.einsum("kd,dk->k", means, W)


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


def latest_within_noise(errors: list, count: int) -> int:
    """Index of the last of ``errors`` (rates on ``count`` rows) within one standard error of the lowest: later
    iterates are closer to the logistic-regression optimum, and differences below the noise say nothing."""
    best = min(errors)
    noise = np.sqrt(max(best * (1 - best), 1e-12) / count)
    return max(i for i, e in enumerate(errors) if e <= best + noise)


def fit_temperature(X, y, rows, mean, scale, W, b, device, *, max_rows: int = 20000, seed: int = 0) -> float:
    """The factor t minimizing the mean cross-entropy of ``t (z W + b)`` on up to ``max_rows`` of ``rows``."""
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(rows, min(len(rows), max_rows), replace=False))
    z = standardize(np.asarray(X[sub], dtype=np.float32), mean, scale, device)
    logits = logits_of(z, W, b)
    labels = torch.from_numpy(np.asarray(y[sub], dtype=np.int64)).to(device)
    loss = lambda log_t: float(torch.nn.functional.cross_entropy(logits * float(np.exp(log_t)), labels))  # noqa
    return float(np.exp(minimize_scalar(loss, bounds=(-7.0, 3.0), method="bounded",
                                        options={"xatol": 1e-3}).x))


def to_raw(W: np.ndarray, b: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """coef (d + 1, K) float32 acting on raw features, from (W, b) acting on ``(x - mean) / scale``."""
    W_raw = W / scale[:, None]
    return np.vstack([W_raw, b - mean @ W_raw]).astype(np.float32)


def from_raw(coef: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) float64 acting on ``(x - mean) / scale`` from a raw-feature coef (d + 1, K)."""
    W_raw, b_raw = np.asarray(coef[:-1], np.float64), np.asarray(coef[-1], np.float64)
    return W_raw * scale[:, None], b_raw + mean @ W_raw


@dataclass(frozen=True)
class SoftmaxFit:
    """Result of :func:`fit_softmax`. coef : (d + 1, K) float32 on raw features (last row: intercept).
    n_iter / n_passes : L-BFGS iterations and streamed function evaluations. validation : error rate on the
    validation slice of the start and of each iterate (empty without a slice); chosen : the index returned."""

    coef: np.ndarray
    n_iter: int
    n_passes: int
    validation: list
    chosen: int


def fit_softmax(X, y: np.ndarray, n_classes: int, *, C: float = 1.0, sample_weight: np.ndarray | None = None,
                init: np.ndarray | None = None, max_iter: int = 100, max_passes: int | None = None,
                validation_rows: np.ndarray | None = None, n_iter_no_change: int = 3,
                patience: int | None = None, tol: float = 1e-4,
                moments_of_fit: Moments | None = None, device: str | torch.device = "cpu",
                batch: int = BATCH) -> SoftmaxFit:
    """Fit L2-regularized multinomial logistic regression on standardized ``X`` (n, d) (see module docstring).

    y : (n,) int64 in [0, n_classes).  sample_weight : (n,) >= 0; rows of weight 0 are skipped.
    init : raw-feature coef (d + 1, K) to start from instead of LDA.
    max_passes : cap on streamed evaluations (each one pass over the rows); 0 returns the start itself.
    validation_rows : rows left out of the fit. Of the start and the iterates, the last one whose validation error
        is within one standard error of the lowest is returned (:func:`latest_within_noise`); the run stops when
        the first ``n_iter_no_change`` iterates are all worse than the start (LDA is the better rule there), or
        ``patience`` iterations after the returned one. Errors, not the loss, decide: validation labels are
        noisy too, and a loss rewards confidence (a trimmed loss chose an iterate 1.3 points less accurate than
        the LDA start on the anisotropic ImageNet-scale set; the plain one stopped Fashion-MNIST fits early).
    tol : stop when the largest gradient component (whitened coordinates) falls below ``tol`` times its value
        at the start (scikit-learn's ``tol`` is absolute, but gradients shrink as 1/K here).
    moments_of_fit : :func:`moments` of exactly the fitted rows and weights, if already known.
    """
    device = resolve_device(device)
    n, d = X.shape
    with threads_for(min(batch, n) * (d + 1) * n_classes, device):
        w = np.ones(n) if sample_weight is None else np.array(sample_weight, dtype=np.float64)
        if validation_rows is not None and len(validation_rows):
            w[validation_rows] = 0.0
        else:
            validation_rows = None
        rows = None if (w > 0).all() else np.flatnonzero(w > 0)
        fit_rows = np.arange(n) if rows is None else rows
        m = moments_of_fit or moments(X, y, n_classes, sample_weight=None if rows is None else w,
                                      gram=d < len(fit_rows), device=device, batch=batch)
        mean, scale, total = m.mean, m.scale, m.total
        as_tensor = lambda a: torch.from_numpy(np.asarray(a, np.float32)).to(device)  # noqa: E731
        if init is not None:
            W, b = from_raw(init, mean, scale)
        elif m.second is not None:
            W, b = lda_start(m)
            t = fit_temperature(X, y, fit_rows, mean, scale, as_tensor(W), as_tensor(b), device)
            W, b = W * t, b * t
        else:
            W, b = np.zeros((d, n_classes)), np.zeros(n_classes)
        # Whitened coordinates: W = P V with P P^T = cov^-1, and the intercept taken at the mean row.
        P = None if m.second is None else np.linalg.inv(np.linalg.cholesky(m.covariance(ridge=1e-6))).T
        centre = m.first / total
        V = W if P is None else np.linalg.solve(P, W)
        stream = StandardizedRows(X, rows, mean, scale, device, batch, y)
        held_out = None if validation_rows is None else StandardizedRows(X, validation_rows, mean, scale, device,
                                                                         batch, y)
        held_out_rows = 0 if validation_rows is None else len(validation_rows)
        theta0 = np.concatenate([V.ravel(), b + centre @ W])

        def unpack(theta):
            V = theta[: d * n_classes].reshape(d, n_classes)
            W = V if P is None else P @ V
            return W, theta[d * n_classes:] - centre @ W

        last = {}

        def objective(theta):  # memoized: scipy's first call repeats the start, which we evaluate for the tolerance
            if last and np.array_equal(theta, last["theta"]):
                return last["value"]
            W, b = unpack(theta)
            loss, gW, gb = loss_and_gradient(stream, w, as_tensor(W), as_tensor(b))
            gW, gb = gW.cpu().numpy() / total + W / (C * total), gb.cpu().numpy() / total
            gV = gW - np.outer(centre, gb)
            gV = gV if P is None else P.T @ gV
            value = (loss / total + float((W * W).sum()) / (2 * C * total), np.concatenate([gV.ravel(), gb]))
            last.update(theta=theta.copy(), value=value)
            return value

        history = []  # (validation error, theta) of the start and each iterate
        if validation_rows is not None:
            def score(theta) -> float:
                W, b = unpack(theta)
                return validation_error(held_out, as_tensor(W), as_tensor(b))

            history.append((score(theta0), theta0))

            def callback(intermediate_result):
                history.append((score(intermediate_result.x), intermediate_result.x.copy()))
                errors = [e for e, _ in history]
                if len(errors) > n_iter_no_change and min(errors[1:]) > errors[0]:
                    raise StopIteration  # the start stays best: the discriminative fit overfits here
                if patience is not None and len(errors) - 1 - latest_within_noise(errors, held_out_rows) >= patience:
                    raise StopIteration
        else:
            callback = None
        if max_passes == 0:  # the start is the fit (a tight budget spends its passes elsewhere)
            return SoftmaxFit(to_raw(W, b, mean, scale), 0, 0, [v for v, _ in history], 0)
        gtol = tol * float(np.abs(objective(theta0)[1]).max())
        result = minimize(objective, theta0, jac=True, method="L-BFGS-B", callback=callback,
                          options={"maxiter": max_iter, "ftol": 64 * np.finfo(float).eps,
                                   # scipy stops once evaluations exceed maxfun, i.e. after maxfun + 1
                                   "maxfun": max(1, max_passes - 1) if max_passes else 15000,
                                   "gtol": gtol, "maxls": 50})
        if history:
            chosen = latest_within_noise([e for e, _ in history], held_out_rows)
            theta = history[chosen][1]
        else:
            chosen, theta = 0, result.x
        W, b = unpack(theta)
        return SoftmaxFit(to_raw(W, b, mean, scale), int(result.nit), int(result.nfev),
                          [v for v, _ in history], chosen)
