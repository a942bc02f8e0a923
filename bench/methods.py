"""The detectors compared by bench/detection.py. Each returns a score (n,): higher = more likely mislabeled."""
from __future__ import annotations

import numpy as np

from coreclean import importance


def ours(X, y):
    return importance(X, y)


def cv_probabilities(X, y, folds: int = 5, seed: int = 0):
    """Out-of-fold logistic-regression probabilities, as cleanlab recommends."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict, StratifiedKFold

    return cross_val_predict(LogisticRegression(max_iter=1000), X, y, method="predict_proba",
                             cv=StratifiedKFold(folds, shuffle=True, random_state=seed))


def cleanlab_scores(y, probs, method: str):
    from cleanlab.rank import get_label_quality_scores

    return 1.0 - get_label_quality_scores(y, probs, method=method)


def cleanlab_find_issues(y, probs):
    """find_label_issues ranked by self-confidence; unflagged samples score 0 (below every flagged one)."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    score = np.zeros(len(y))
    score[ranked] = np.linspace(1.0, 0.5, num=len(ranked)) if len(ranked) else []
    return score


def class_leverage(X, y):
    """DataHeroes-style label-blind score: per class, squared row norms of Q from QR of [X_c, 1]."""
    score = np.zeros(len(y))
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        block = np.hstack([np.asarray(X[members], np.float64), np.ones((len(members), 1))])
        q, _ = np.linalg.qr(block)
        score[members] = np.einsum("ij,ij->i", q, q)
    return score


def knn_disagreement(X, y, k: int = 10):
    """SimiFeat-style: fraction of the k nearest neighbours (excluding self) whose label differs."""
    from sklearn.neighbors import NearestNeighbors

    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    return (y[neighbours[:, 1:]] != y[:, None]).mean(axis=1)


def random_order(X, y, seed: int = 0):
    # A separate stream: bench.common.inject_noise draws its flips from default_rng(seed) too.
    return np.random.default_rng([seed, 7919]).random(len(y))


def old_coreset_fit(X, y, n_classes: int, *, C: float = 1.0, trim: float = 0.15, budget: float = 2e10,
                    max_iter: int = 50, seed: int = 0, mark=lambda stage: None) -> dict:
    """The estimator as it was before issue 13 (commit 2f90509), rebuilt from its parts for side-by-side runs:
    float64 leverage of raw [X, 1]; a pilot L-BFGS fit (raw features) on a uniform quarter of a coreset whose size
    is set by a budget of ``budget`` multiply-adds per pass; a gradient-norm sensitivity coreset; an L-BFGS fit
    (at most ``max_iter`` iterations), a trimmed refit on the coreset, statistics for every row.
    ``mark(stage)`` is called as each stage starts. Returns coef, importance and the coreset rows."""
    from coreclean.importance.sensitivity import _lowest, label_statistics
    from bench.reference import fit_logreg
    from coreclean.importance.sampling import sensitivity_sample

    n, d = X.shape
    K = n_classes
    mark("leverage")
    gram = np.zeros((d + 1, d + 1))
    for start in range(0, n, 65536):
        block = np.hstack([np.asarray(X[start:start + 65536], np.float64), np.ones((min(65536, n - start), 1))])
        gram += block.T @ block
    gram[np.diag_indices_from(gram)] += 1e-6 * max(1.0, np.trace(gram) / (d + 1))
    chol = np.linalg.cholesky(gram)
    lev = np.empty(n)
    for start in range(0, n, 65536):
        block = np.hstack([np.asarray(X[start:start + 65536], np.float64), np.ones((min(65536, n - start), 1))])
        solved = np.linalg.solve(chol, block.T)
        lev[start:start + 65536] = np.einsum("ij,ij->j", solved, solved)
    m = int(min(200_000, max(20 * K, budget // ((d + 1) * K))))
    rng = np.random.default_rng(seed)
    rows, weight = np.arange(n), None
    if n > m:
        mark("pilot + coreset")
        pilot = np.sort(rng.choice(n, max(m // 4, 2 * K), replace=False))
        pilot_coef = fit_logreg(np.asarray(X[pilot], np.float32), y[pilot], K, C=C,
                                sample_weight=np.full(len(pilot), n / len(pilot), np.float32), max_iter=max_iter)
        residual = label_statistics(X, y, pilot_coef)["residual_norm"]
        rows, weight = sensitivity_sample(residual, lev, y, m, (d + 1) * K, rng)
        weight = weight.astype(np.float32)
    mark("plain fit")
    max_iter = max_iter if n > m else 100  # the old estimator ran 100 iterations when it fit every row
    X_fit, y_fit = np.asarray(X[rows], np.float32), y[rows]
    coef = fit_logreg(X_fit, y_fit, K, C=C, sample_weight=weight, max_iter=max_iter)
    mark("refit")
    drop = _lowest(label_statistics(X_fit, y_fit, coef)["p_label"], trim)
    kept = (~drop).astype(np.float32) * (1.0 if weight is None else weight)
    coef = fit_logreg(X_fit, y_fit, K, C=C, sample_weight=kept, init=coef, max_iter=max_iter)
    mark("statistics")
    stats = label_statistics(X, y, coef)
    loss = -np.log(np.clip(stats["p_label"], 1e-12, None))
    bound = loss + stats["residual_norm"] * np.sqrt(lev / (float(stats["curvature"].mean()) + 1e-12))
    return {"coef": coef, "importance": 0.5 * bound / bound.sum() + 0.5 / n, "fit_rows": len(rows)}
