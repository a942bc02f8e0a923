"""Duplicate and outlier signals that must mean the same in any feature space (issue 25 item 6, issue 23 item 8)."""
import numpy as np
import pytest

from coreclean.exploration.duplicates import near_duplicate_groups, neighbor_scale, relative_similarity
from coreclean.exploration.neighbors import NeighborIndex, nearest_neighbors
from coreclean.exploration.outliers import mahalanobis_score, outlier_score
from coreclean.exploration.recall import measure_recall
from coreclean.exploration.stage import feature_signals


def test_constant_offset_makes_no_row_a_duplicate_and_copies_still_count():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    X[10], X[20] = X[3], X[4] + 1e-3 * rng.normal(size=8)
    for shifted in (X, X + 5, 3 * X - 40):   # uncentred cosine called all 200 rows of X + 5 near-duplicates
        dup, outlier = feature_signals(shifted)
        assert list(np.flatnonzero(dup >= 0)) == [3, 4, 10, 20]
        assert dup[10] == 3 and dup[20] == 4 and outlier.shape == (200,)


def test_relative_similarity_reads_the_same_in_tight_and_loose_spaces_and_keeps_big_groups():
    rng = np.random.default_rng(1)
    found = []
    for spread in (0.01, 1.0):   # the same data at two scales around a far-off centre: cosine ranges differ a lot
        X = 100 + spread * rng.normal(size=(1000, 32))
        X[500:515] = X[7] + 1e-3 * spread * rng.normal(size=(15, 32))   # 16 copies of one row: more than k = 10
        X[600] = X[8]
        idx, sim = nearest_neighbors(X, k=10, center=True)
        dup = near_duplicate_groups(idx, relative_similarity(sim), 0.9)
        found.append(np.flatnonzero(dup >= 0))
    assert [list(f) for f in found] == 2 * [[7, 8] + list(range(500, 515)) + [600]]
    scale = neighbor_scale(sim)
    assert scale.shape == (1000,) and (scale > 0).all()
    with pytest.raises(ValueError, match="scale"):
        relative_similarity(sim, scale[:5])


def test_centred_index_matches_search_on_centred_rows():
    rng = np.random.default_rng(2)
    X = np.abs(rng.normal(size=(3000, 16))).astype(np.float32) + 3   # non-negative, like ReLU features
    exact_idx, exact_sim = nearest_neighbors(X - X.mean(axis=0), k=5, method="exact")
    index = NeighborIndex(5, center=True, method="exact").fit(X)
    idx, sim = index.kneighbors()
    assert np.allclose(sim, exact_sim, atol=1e-5) and (idx[:, 0] == exact_idx[:, 0]).mean() > 0.99
    ivf = NeighborIndex(5, center=True, method="ivf", n_lists=20, n_probe=20).fit(X)
    assert measure_recall(X, ivf.kneighbors()[0], n_samples=200, mean=ivf.mean_)[0] > 0.99
    q_idx, _ = index.kneighbors(X[:3] + 1e-4)
    assert list(q_idx[:, 0]) == [0, 1, 2]


def test_a_two_percent_clump_of_strays_does_not_mask_itself():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4000, 64)) * np.linspace(0.2, 2, 64)
    clump = rng.choice(4000, 80, replace=False)   # 2%: fitted on every row, they pulled the covariance to themselves
    X[clump] = 2.5 * rng.normal(size=64) + 0.05 * rng.normal(size=(80, 64))
    top = np.argsort(-mahalanobis_score(X))[:80]
    assert len(set(top) & set(clump)) >= 76
    _, sim = nearest_neighbors(X, k=10, center=True)
    assert len(set(np.argsort(-outlier_score(X, sim))[:80]) & set(clump)) >= 76


def test_projected_distances_match_brute_force_and_the_basis_keeps_the_signal_axes():
    from coreclean.exploration.copy_distance import projected_sq_distances, signal_basis

    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 8)) @ rng.normal(size=(8, 64)) + 1e-3 * rng.normal(size=(600, 64)) + 7
    mean, basis = signal_basis(X)
    assert basis.shape == (64, 8) and np.allclose(basis.T @ basis, np.eye(8), atol=1e-5)
    assert np.allclose(mean, X.mean(axis=0))
    idx, _ = nearest_neighbors(X, k=5, center=True)
    full_mean, full = signal_basis(X, variance=1.0)          # every axis: plain centred squared distances
    brute = ((X[idx] - X[:, None, :]) ** 2).sum(axis=2)
    assert np.allclose(projected_sq_distances(X, idx, full_mean, full, block_rows=7), brute, rtol=1e-3)
    assert np.allclose(projected_sq_distances(X, idx, mean, basis), brute, rtol=1e-2)   # the noise axes hold ~0
    with pytest.raises(ValueError, match="variance"):
        signal_basis(X, variance=0)


def test_space_relative_similarity_has_one_scale_so_a_sparse_region_lets_no_look_alike_through():
    from coreclean.exploration.copy_distance import space_relative_similarity, typical_sq_distance

    rng = np.random.default_rng(5)
    dense = rng.normal(size=(950, 6))
    sparse = 30 + 20 * rng.normal(size=(50, 6))      # 20 times the spread: neighbours far apart
    X = np.vstack([dense, sparse])
    X[960] = X[955] + 0.5 * rng.normal(size=6)        # close for its region, not for the space
    X[10] = X[3] + 1e-3 * rng.normal(size=6)          # a noised copy
    dup, _ = feature_signals(X)
    assert list(np.flatnonzero(dup >= 0)) == [3, 10]
    idx, sim = nearest_neighbors(X, k=10, center=True)
    assert relative_similarity(sim)[960, 0] >= 0.9    # the per-row scale called the sparse pair a duplicate
    assert typical_sq_distance(np.zeros((4, 3))) == 1.0
    assert typical_sq_distance(np.array([[0.0, 2], [4, 5], [6, 9]])) == 5.0   # exact copies left out of the scale
    assert space_relative_similarity(np.array([[0.1, 10.0]]), scale=1.0).tolist() == [[pytest.approx(0.9), -1.0]]


def test_feature_signals_keeps_groups_larger_than_k():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(1000, 32))
    X[500:515] = X[7] + 1e-3 * rng.normal(size=(15, 32))   # 16 copies of one row: more than k = 10
    X[600] = X[8]
    dup, _ = feature_signals(X)
    assert list(np.flatnonzero(dup >= 0)) == [7, 8] + list(range(500, 515)) + [600]
    assert (dup[500:515] == 7).all() and dup[600] == 8


def test_copy_similarities_read_residual_distances_like_the_projection_and_queries_like_rows():
    """When fewer axes fall outside the 99% than inside, the residual is held and the signal distance read from
    the stored centred cosines: the same numbers as projecting on the signal axes (the reference)."""
    from coreclean.exploration.copy_distance import copy_similarities, projected_sq_distances, signal_sq_distances

    rng = np.random.default_rng(7)
    X = (rng.normal(size=(900, 40)) * np.r_[np.full(30, 3.0), np.full(10, 0.01)]) @ np.linalg.qr(
        rng.normal(size=(40, 40)))[0] + 4
    Q = X[:50] + 0.05 * rng.normal(size=(50, 40))
    index = NeighborIndex(10, center=True).fit(X)
    idx, sim = index.kneighbors()
    q_idx, q_sim = index.kneighbors(Q)
    sq, q_sq, info = signal_sq_distances(X, idx, sim, index.mean_, queries=Q, query_indices=q_idx,
                                         query_cosines=q_sim)
    assert info["axes"] == 30 and info["held"] == 10               # the narrower side: 10 residual axes
    mean = index.mean_.astype(np.float64)
    basis = np.linalg.svd(X - mean, full_matrices=False)[2][:30].T.astype(np.float32)
    assert np.allclose(sq, projected_sq_distances(X, idx, mean, basis), rtol=1e-3, atol=1e-3)
    brute = (((X[q_idx] - Q[:, None, :]) @ basis) ** 2).sum(axis=2)
    assert np.allclose(q_sq, brute, rtol=1e-3, atol=1e-3)
    near, q_near, info = copy_similarities(X, idx, sim, index.mean_, queries=Q, query_indices=q_idx,
                                           query_cosines=q_sim)
    read = lambda d2: np.maximum(1 - d2 / info["scale"], -1)     # one scale, the rows', for the queries too
    assert np.allclose(near, read(sq), atol=1e-5) and np.allclose(q_near, read(q_sq), atol=1e-5)
    with pytest.raises(ValueError, match="cosines"):
        signal_sq_distances(X, idx, sim[:, :3], index.mean_)
