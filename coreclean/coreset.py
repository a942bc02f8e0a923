r"""Coresets for logistic regression by sensitivity sampling.

``coreset(X, y, size)`` draws ``size`` samples with probability

.. math:: \pi_i \propto (1-\alpha)\,\frac{g_i}{\sum_j g_j} + \frac{\alpha}{n},
   \qquad g_i = \|p_i - e_{y_i}\|_2 \sqrt{h_i},

the gradient-norm part of the local sensitivity bound in :mod:`coreclean.importance` (with the Kronecker Hessian
approximation it is :math:`\|\nabla\ell_i\|_{H^{-1}}` up to a constant, the A-optimal subsampling probability of
Wang, Zhu & Ma 2018 for logistic regression), mixed with uniform as in Mai, Musco & Rao (2021). Weights are
:math:`1/\pi_i`, so the weighted coreset loss is an unbiased estimate of the full loss.

Importance sampling only pays once the sample is large against the number of parameters ``(d + 1) K``; below that
its variance dominates. ``alpha = clip((d + 1) K / size, min_uniform, 1)`` moves toward uniform for small coresets.
Samples are drawn by systematic PPS sampling over a class-sorted, randomly permuted order: exactly ``size``
distinct samples, implicitly stratified by class.
"""
from __future__ import annotations

import numpy as np

from .importance import CoresetSensitivity
from .validation import check_features_labels


def sampling_probabilities(
    gradient_norm: np.ndarray, size: int, n_params: int, *, min_uniform: float = 0.2
) -> np.ndarray:
    """Inclusion probabilities (n,) in (0, 1] summing to ``size`` for gradient norms (n,)."""
    n = len(gradient_norm)
    alpha = float(np.clip(n_params / size, min_uniform, 1.0))
    total = gradient_norm.sum()
    q = (1 - alpha) * (gradient_norm / total if total > 0 else 1.0 / n) + alpha / n
    pi = size * q
    for _ in range(50):  # cap at 1 and redistribute the excess over the rest
        over = pi > 1
        if not over.any():
            break
        pi[over] = 1.0
        free = ~over
        pi[free] *= (size - over.sum()) / pi[free].sum()
    return np.minimum(pi, 1.0)


def systematic_sample(pi: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic PPS sample (sorted indices) with inclusion probabilities ``pi`` (n,), stratified by class ``y``."""
    order = rng.permutation(len(pi))
    order = order[np.argsort(y[order], kind="stable")]
    cumulative = np.cumsum(pi[order])
    points = rng.random() + np.arange(int(np.floor(cumulative[-1])) + 1)
    position = np.searchsorted(cumulative, points, side="right")
    return np.unique(order[position[position < len(pi)]])


def coreset(X, y, size: int | float, *, random_state: int = 0, C: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample a weighted coreset of ``X`` (n, d), ``y`` (n,).

    size : number of samples, or a fraction in (0, 1).

    Returns
    -------
    indices : (m,) int64 sorted sample indices, m ≈ size.
    weights : (m,) float64 weights ``1/pi``; train with ``sample_weight=weights``.
    """
    X, y = check_features_labels(X, y)
    n, d = X.shape
    m = int(round(size * n)) if isinstance(size, float) and 0 < size < 1 else int(size)
    if not 0 < m <= n:
        raise ValueError(f"size={size}: must be a count in 1..{n} or a fraction in (0, 1).")
    K = int(y.max() + 1)
    est = CoresetSensitivity(C=C, trim=0.0).fit(X, y, n_classes=K)
    residual = est.proba_.astype(np.float64)
    residual[np.arange(n), y] -= 1.0
    gradient_norm = np.linalg.norm(residual, axis=1) * np.sqrt(est.leverage_)
    pi = sampling_probabilities(gradient_norm, m, (d + 1) * K)
    indices = systematic_sample(pi, y, np.random.default_rng(random_state))
    return indices, 1.0 / pi[indices]
