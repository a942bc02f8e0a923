"""The outlier score's robust fit uses rows of typical local density only (issue 25 item 6: 5% strays)."""
import numpy as np
import pytest

from coreclean.exploration.neighbors import nearest_neighbors
from coreclean.exploration.outliers import knn_distance, mahalanobis_score, outlier_score, typical_density


def clumped(seed=0, n=3000, d=32, m=240):
    """(X, clump rows): anisotropic Gaussian rows and a tight 8% clump 8 units out along a 3-d subspace."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.5, 2, d)
    clump = rng.choice(n, m, replace=False)
    dirs = np.linalg.qr(rng.normal(size=(d, 3)))[0]
    X[clump] = 8 * dirs.sum(axis=1) / np.sqrt(3) + 0.3 * rng.normal(size=(m, 3)) @ dirs.T \
        + 0.05 * rng.normal(size=(m, d))
    return X, clump


def test_a_tight_eight_percent_clump_cannot_capture_the_fit():
    X, clump = clumped()
    _, sim = nearest_neighbors(X, k=10, center=True)
    top = lambda score: len(set(np.argsort(-score)[:len(clump)]) & set(clump))
    # fitted on any row, the trimmed refits take the clump in and it hides in its own variance
    assert top(mahalanobis_score(X)) <= 50
    assert top(mahalanobis_score(X, fit_rows=typical_density(knn_distance(sim)))) >= 200
    # the clump's kNN distance is far below typical: that must not cancel the global view (it did: 0 of 240)
    assert top(outlier_score(X, sim)) >= 120


def test_fit_rows_alone_decide_the_fit():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 8))
    X[:60] = 50 + rng.normal(size=(60, 8))             # rows left out of the fit may be anything
    mask = np.arange(600) >= 60
    assert np.allclose(mahalanobis_score(X, fit_rows=mask)[60:], mahalanobis_score(X[60:]), rtol=1e-5)
    with pytest.raises(ValueError, match="fit_rows"):
        mahalanobis_score(X, fit_rows=mask[:10])
    with pytest.raises(ValueError, match="fit_rows"):
        mahalanobis_score(X, fit_rows=np.zeros(600, bool))


def test_typical_density_keeps_the_middle_band():
    local = np.arange(100.0)
    kept = typical_density(local)
    assert kept.sum() == 50 and kept[25] and kept[74] and not kept[24] and not kept[75]
    assert typical_density(np.zeros(50)).all()          # ties: every row typical
    with pytest.raises(ValueError, match="band"):
        typical_density(local, band=(0.8, 0.2))
