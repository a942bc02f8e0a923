r"""Multinomial logistic regression on every row: standardized, whitened, LDA-started, streamed L-BFGS.

The problem solved is scikit-learn's ``LogisticRegression`` on the features as given, up to one common factor:

.. math:: \min_{W, b}\ \sum_i w_i\,\mathrm{CE}(x_i W + b,\ y_i) + \frac{\bar s^2\,\|W\|^2}{2C},

with :math:`\bar s^2` the mean feature variance, so the fit does not depend on a common scale or offset of the
features, nor on a rotation of them (a PCA of an embedding is fit like the embedding). The penalty is the plain
(Euclidean) ridge of the features' own geometry, not a ridge on per-feature standardized ones: standardizing
gives every low-variance direction (a PCA tail, a nearly dead embedding unit) the weight of a dominant one, and
on Fashion-MNIST PCA-128 (20k, 10% uniform flips) that cost 0.013 flip AP (issue 28). Internally the solver
works on standardized features :math:`z = (x - \bar x) / s` for its numerics, where the same penalty reads
:math:`\sum_j (\bar s / s_j)^2 \|W_{z,j}\|^2 / 2C`. It is solved with four devices:

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
   of the lowest is kept, and the run stops early when no iterate beats the start (a warm start: when iterates
   stay worse than the best by more than the noise). On data where the discriminative fit overfits (Gaussian
   classes, ~2.5 rows per parameter) that is the calibrated LDA start; where LDA is misspecified (Fashion-MNIST)
   it is a late L-BFGS iterate. Without a slice, L-BFGS runs to convergence and matches scikit-learn's
   ``LogisticRegression`` on ``x / \bar s``.

Work runs in float32 on ``device`` (``"cuda"`` when available), sums in float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from .lazy_torch import torch
from .row_passes import (BATCH, Moments, StandardizedRows, logits_of, loss_and_gradient, moments, resolve_device,
                         standardize, threads_for, validation_error)

DEFAULT_SHRINKAGE = 1e-2


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


def latest_within_noise(errors: list, count: int) -> int:
    """Index of the last of ``errors`` (rates on ``count`` rows) within one standard error of the lowest: later
    iterates are closer to the logistic-regression optimum, and differences below the noise say nothing."""
    best = min(errors)
    noise = np.sqrt(max(best * (1 - best), 1e-12) / count)
    return max(i for i, e in enumerate(errors) if e <= best + noise)


def stop_early(errors: list, count: int, n_iter_no_change: int, *, warm: bool) -> bool:
    """Whether a run whose start and iterates so far have validation ``errors`` (rates on ``count`` rows) stops.

    From the LDA start: when its first ``n_iter_no_change`` iterates are all worse than it (LDA is the better rule
    there). From a warm start: when the last ``n_iter_no_change`` iterates are all worse than the lowest error by
    more than one standard error (:func:`latest_within_noise`). The first iterates of a warm start wobble toward a
    changed objective (the trimmed refit's), and within the noise of a 2,000-row slice that says nothing:
    Fashion-MNIST 20k, 10% uniform flips, the LDA rule stopped the refit after 3 iterates (flip AP 0.855 on seed
    0; 0.893 run on). Noise-aware patience still stops where iterates get clearly worse: on 10% pair flips it
    kept an earlier refit iterate than running on (flip AP 0.447 vs 0.424, mean of 4 seeds).
    """
    if warm:
        return len(errors) - 1 - latest_within_noise(errors, count) >= n_iter_no_change
    return len(errors) > n_iter_no_change and min(errors[1:]) > errors[0]


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
    """Fit L2-regularized multinomial logistic regression on ``X`` (n, d) (see module docstring for the penalty).

    y : (n,) int64 in [0, n_classes).  sample_weight : (n,) >= 0; rows of weight 0 are skipped.
    init : raw-feature coef (d + 1, K) to start from instead of LDA.
    max_passes : cap on streamed evaluations (each one pass over the rows); 0 returns the start itself.
    validation_rows : rows left out of the fit. Of the start and the iterates, the last one whose validation error
        is within one standard error of the lowest is returned (:func:`latest_within_noise`); the run stops when
        ``patience`` iterations follow the returned one, or as :func:`stop_early` says: from the LDA start when the
        first ``n_iter_no_change`` iterates are all worse than it, from ``init`` when the last ``n_iter_no_change``
        are all clearly worse than the best.
        Errors, not the loss, decide: validation labels are noisy too, and a loss rewards confidence (a trimmed
        loss chose an iterate 1.3 points less accurate than the LDA start on the anisotropic ImageNet-scale set;
        the plain one stopped Fashion-MNIST fits early).
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
        # The ridge of the raw features' geometry in z coordinates, in units of the mean variance (module docstring).
        penalty = (np.mean(scale ** 2) / scale ** 2)[:, None]
        as_tensor = lambda a: torch.from_numpy(np.asarray(a, np.float32)).to(device)  # noqa: E731
        if init is not None:
            W, b = from_raw(init, mean, scale)
        elif m.second is not None:
            W, b = lda_start(m)
            t = fit_temperature(X, y, fit_rows, mean, scale, as_tensor(W), as_tensor(b), device)
            W, b = W * t, b * t
        else:
            W, b = np.zeros((d, n_classes)), np.zeros(n_classes)
        # Whitened coordinates: W = P V with P P^T = (cov + penalty / (C n curvature))^-1, and the intercept taken at
        # the mean row. The penalty term (curvature 1/4, the most a class's softmax has) keeps a ridge that outweighs
        # the data on low-variance features from slowing L-BFGS (61 -> 365 iterations on test_solver's blobs
        # without it, 66 with it); at 1.28M rows it adds at most 6e-6 to a unit-diagonal covariance, i.e. nothing.
        P = None if m.second is None else np.linalg.inv(np.linalg.cholesky(
            m.covariance(ridge=1e-6) + np.diag(penalty[:, 0]) / (C * total / 4))).T
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
            gW, gb = gW.cpu().numpy() / total + penalty * W / (C * total), gb.cpu().numpy() / total
            gV = gW - np.outer(centre, gb)
            gV = gV if P is None else P.T @ gV
            value = (loss / total + float((penalty * W * W).sum()) / (2 * C * total),
                     np.concatenate([gV.ravel(), gb]))
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
                if stop_early(errors, held_out_rows, n_iter_no_change, warm=init is not None):
                    raise StopIteration  # later iterates overfit
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
