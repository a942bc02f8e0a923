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
from .sampling import sampling_probabilities, systematic_sample
from .validation import check_features_labels


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
    pi = sampling_probabilities(est.residual_norm_ * np.sqrt(est.leverage_), m, (d + 1) * K)
    indices = systematic_sample(pi, y, np.random.default_rng(random_state))
    return indices, 1.0 / pi[indices]
