"""Sensitivity (PPS) sampling: the one coreset sampler, used by :func:`coreclean.importance.coreset.coreset` and by the
estimator's coreset fit (:class:`coreclean.importance.sensitivity.CoresetSensitivity` with an integer ``max_fit_samples``)."""
from __future__ import annotations

import numpy as np


def sensitivity_sample(
    residual_norm: np.ndarray, leverage: np.ndarray, y: np.ndarray, size: int, n_params: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sample of about ``size`` rows, drawn proportionally to the gradient norm mixed with uniform.

    The gradient norm ``g_i = ||p_i - e_{y_i}|| sqrt(h_i)`` is the gradient part of the local sensitivity bound
    (see :mod:`coreclean.importance.coreset`).

    residual_norm : (n,) ``||p_i - e_{y_i}||`` under a fitted model.   leverage : (n,) ``h_i``.
    y : (n,) int labels (the strata).   n_params : parameters of the model the sample will train, ``(d + 1) K``;
    it sets the uniform share.

    Returns
    -------
    indices : (m,) int64, sorted and distinct.   weights : (m,) float64 ``1 / pi``, an unbiased estimate of n.
    """
    gradient_norm = np.asarray(residual_norm, dtype=np.float64) * np.sqrt(np.asarray(leverage, dtype=np.float64))
    pi = sampling_probabilities(gradient_norm, size, n_params)
    indices = systematic_sample(pi, y, rng)
    return indices, 1.0 / pi[indices]


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
