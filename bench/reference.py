"""A reference multinomial logistic regression (plain L-BFGS on every row, scikit-learn's objective): the
baseline benchmarks and tests compare coreclean's solver and coresets with. Not used by the library."""
from __future__ import annotations

import warnings

import numpy as np
import torch


def fit_logreg(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    C: float = 1.0,
    sample_weight: np.ndarray | None = None,
    init: np.ndarray | None = None,
    max_iter: int = 200,
) -> np.ndarray:
    """Fit L2-regularized multinomial logistic regression, scikit-learn's objective:

    ``sum_i w_i * CE(x_i, y_i) + ||W||^2 / (2C)`` (bias unpenalized), solved with L-BFGS in float32.

    Parameters
    ----------
    X : (n, d) float32.   y : (n,) int64 in [0, n_classes).
    sample_weight : (n,) non-negative, default ones.   init : (d + 1, n_classes) warm start.

    Returns
    -------
    coef : (d + 1, n_classes) float32; the last row is the intercept.
    """
    n, d = X.shape
    with warnings.catch_warnings():  # read-only memmaps are fine: the tensor is never written
        warnings.simplefilter("ignore", UserWarning)
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    w = torch.ones(n) if sample_weight is None else torch.from_numpy(np.asarray(sample_weight, np.float32))
    scale = float(w.sum())  # optimize the mean, not the sum: same minimizer, better-conditioned line search
    coef = torch.zeros(d + 1, n_classes) if init is None else torch.from_numpy(np.array(init, np.float32))
    coef.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [coef], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-6, tolerance_change=1e-10,
    )

    def closure():
        opt.zero_grad()
        logits = Xt @ coef[:-1] + coef[-1]
        ce = torch.nn.functional.cross_entropy(logits, yt, reduction="none")
        loss = (ce * w).sum() / scale + (coef[:-1] ** 2).sum() / (2 * C * scale)
        loss.backward()
        return loss

    opt.step(closure)
    return coef.detach().numpy()
