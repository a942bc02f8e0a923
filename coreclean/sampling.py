"""Inclusion probabilities and systematic PPS sampling shared by coresets and large-scale fitting."""
from __future__ import annotations

import numpy as np


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
