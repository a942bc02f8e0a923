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
