"""Exploration compute layer: neighbours, duplicates, leakage, outliers, 2-D map — on small synthetic data."""
import numpy as np
import pytest

from coreclean.exploration.duplicates import (candidate_vectors, content_hash, exact_duplicate_groups, group_members,
                                  hash_leakage, hash_rows, image_fingerprints, leakage, merge_groups,
                                  near_duplicate_groups, shift_similarity)
from coreclean.exploration.neighbors import NeighborIndex, nearest_neighbors
from coreclean.exploration.recall import measure_recall, recall_at_k
from coreclean.exploration.outliers import knn_distance, outlier_score
from coreclean.exploration.projection import project_2d, sample_rows


def clusters(n=3000, d=32, k=20, seed=0):
    """Unit-ish Gaussian clusters with low intrinsic dimension (like real embeddings), and their labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    basis = rng.normal(size=(k, 6, d))
    y = rng.integers(0, k, n)
    X = centers[y] + np.einsum("ni,nid->nd", rng.normal(size=(n, 6)), basis[y]) + 0.3 * rng.normal(size=(n, d))
    return X.astype(np.float32), y


def brute_force(X, Q=None, k=10):
    A = X / np.linalg.norm(X, axis=1, keepdims=True)
    B = A if Q is None else Q / np.linalg.norm(Q, axis=1, keepdims=True)
    S = B @ A.T
    if Q is None:
        np.fill_diagonal(S, -np.inf)
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(S, idx, 1)


def test_exact_matches_brute_force_and_excludes_self(tmp_path):
    X, _ = clusters(800)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    idx, sim = nearest_neighbors(mm, k=5, method="exact", block_rows=300)   # several blocks of a memmap
    ref_idx, ref_sim = brute_force(X, k=5)
    assert idx.shape == (800, 5) and idx.dtype == np.int64 and sim.dtype == np.float32
    assert not (idx == np.arange(800)[:, None]).any()
    assert recall_at_k(idx, ref_idx) > 0.99
    np.testing.assert_allclose(sim, ref_sim, atol=1e-5)
    assert (np.diff(sim, axis=1) <= 1e-7).all()


def test_ivf_agrees_with_exact_for_train_and_queries():
    data, _ = clusters(4300)
    X, Q = data[:4000], data[4000:]
    index = NeighborIndex(10, method="ivf", n_lists=40, n_probe=8).fit(X)
    idx, sim = index.kneighbors()
    q_idx, _ = index.kneighbors(Q)
    exact, _ = nearest_neighbors(X, k=10, method="exact")
    q_exact, _ = nearest_neighbors(X, k=10, queries=Q, method="exact")
    assert not (idx == np.arange(len(X))[:, None]).any()
    assert recall_at_k(idx, exact) >= 0.95 and recall_at_k(q_idx, q_exact) >= 0.95
    recall, rows = measure_recall(X, idx, n_samples=200)
    assert len(rows) == 200 and abs(recall - recall_at_k(idx[rows], exact[rows])) < 1e-9
    # one probed list of many cannot see most neighbours: the measurement must notice
    coarse, _ = nearest_neighbors(X, k=10, method="ivf", n_lists=200, n_probe=1)
    assert measure_recall(X, coarse, n_samples=200)[0] < recall


def test_self_exclusion_with_exact_copies():
    X, _ = clusters(300)
    X[1] = X[0]
    X[2] = X[0]
    idx, sim = nearest_neighbors(X, k=3, method="exact")
    assert set(idx[0, :2]) == {1, 2} and 0 not in idx[0]
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_exact_and_near_groups_from_injected_copies():
    X, _ = clusters(2000)
    rng = np.random.default_rng(3)
    X[10] = X[5]                                           # exact copy
    X[11] = X[5] * 1.2                                     # brightness-like scaling: same direction
    X[20] = X[7] + 0.01 * rng.normal(size=X.shape[1])      # slightly noised copy
    idx, sim = nearest_neighbors(X, k=10)
    dup = near_duplicate_groups(idx, sim, 0.999)
    assert dup[5] == dup[10] == dup[11] == 5 and dup[7] == dup[20] == 7
    assert (dup >= 0).sum() == 5
    assert [list(g) for g in group_members(dup)] == [[5, 10, 11], [7, 20]]
    pixels = (np.abs(X[:, :16]) * 10).astype(np.uint8)
    exact = exact_duplicate_groups(hash_rows(pixels))
    assert exact[10] == 5 and exact[5] == 5 and exact[11] == -1
    both = merge_groups(exact, near_duplicate_groups(idx, sim, 0.999))
    assert both[11] == 5


def test_pixel_fingerprints_group_shifted_and_brightened_copies():
    rng = np.random.default_rng(4)
    # smooth random blobs on a black background, like small object photos
    yy, xx = np.mgrid[:24, :24]
    centres = rng.uniform(8, 16, (400, 2))
    widths = rng.uniform(2, 5, (400, 2))
    pixels = 255 * np.exp(-((yy - centres[:, :1, None]) / widths[:, :1, None]) ** 2
                          - ((xx - centres[:, 1:, None]) / widths[:, 1:, None]) ** 2)
    # coarse texture, so blobs of similar shape still differ after the fingerprint's blur
    pixels *= np.kron(rng.uniform(0.3, 1, (400, 6, 6)), np.ones((1, 4, 4)))
    pixels = pixels.astype(np.uint8)
    pixels[100] = np.roll(pixels[7], (1, 2), axis=(0, 1))    # shifted copy
    pixels[101] = (pixels[8] * 0.7).astype(np.uint8)          # darker copy
    fp = image_fingerprints(pixels)
    assert fp.shape == (400, 24, 24) and fp.dtype == np.float32
    idx, _ = nearest_neighbors(candidate_vectors(fp), k=5)
    sim = shift_similarity(fp, idx)
    assert sim.shape == (400, 5) and sim.max() <= 1 + 1e-5
    dup = near_duplicate_groups(idx, sim, 0.999)   # smooth synthetic blobs: natural pairs reach 0.998
    assert dup[100] == dup[7] == 7 and dup[101] == dup[8] == 8 and (dup >= 0).sum() == 4
    q_idx, _ = nearest_neighbors(candidate_vectors(fp), k=3, queries=candidate_vectors(fp[[100, 3]]))
    assert shift_similarity(fp, q_idx, queries=fp[[100, 3]])[0].max() > 0.997
    with pytest.raises(ValueError, match="max_shift"):
        shift_similarity(fp, idx, max_shift=12)
    with pytest.raises(ValueError, match="pixels"):
        image_fingerprints(np.zeros((3, 5)))


def test_threshold_change_regroups_from_stored_neighbors_only():
    X, _ = clusters(1000)
    idx, sim = nearest_neighbors(X, k=10)
    strict, loose = near_duplicate_groups(idx, sim, 0.999), near_duplicate_groups(idx, sim, 0.9)
    assert (strict >= 0).sum() < (loose >= 0).sum()
    # grouping is exactly the connected components of the thresholded stored edges
    edges = sim >= 0.9
    for i in np.flatnonzero(edges.any(axis=1))[:50]:
        assert loose[i] >= 0 and (loose[idx[i][edges[i]]] == loose[i]).all()
    assert (loose[loose >= 0] <= np.flatnonzero(loose >= 0)).all()   # first member is the smallest index


def test_leakage_counts_test_copies_of_train():
    data, _ = clusters(1700)
    X, T = data[:1500], data[1500:]
    T[:7] = X[[3, 30, 300, 301, 302, 900, 1400]] + 1e-4
    t_idx, t_sim = nearest_neighbors(X, k=5, queries=T)
    leak = leakage(t_idx, t_sim, 0.999)
    assert (leak >= 0).sum() == 7 and list(leak[:7]) == [3, 30, 300, 301, 302, 900, 1400]
    hashes = np.array([content_hash(r) for r in X])
    assert list(hash_leakage(hashes, np.concatenate([hashes[[4, 4]], [content_hash(T[9])]]))) == [4, 4, -1]


def test_content_hash_is_layout_independent_and_content_sensitive():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert content_hash(a) == content_hash(np.asfortranarray(a)) == content_hash(a.copy())
    assert content_hash(a) != content_hash(a.T) and content_hash(b"x") != content_hash(b"y")


def test_stray_samples_rank_top():
    X, _ = clusters(3000)
    rng = np.random.default_rng(5)
    strays = rng.choice(3000, 30, replace=False)
    # a clump of 20 similar strays outside the data's range (kNN distance alone sees them as ordinary: they are
    # each other's neighbours) and 10 isolated ones in random directions
    X[strays[:20]] = rng.normal(size=X.shape[1]) * 12 + 0.3 * rng.normal(size=(20, X.shape[1]))
    X[strays[20:]] = rng.normal(size=(10, X.shape[1])) * 4
    _, sim = nearest_neighbors(X, k=10)
    score = outlier_score(X, sim)
    assert score.shape == (3000,) and score.dtype == np.float32
    assert len(set(np.argsort(-score)[:30]) & set(strays)) >= 27
    assert len(set(np.argsort(-knn_distance(sim))[:30]) & set(strays)) <= 15


def test_projection_keeps_must_include_and_is_deterministic():
    X, y = clusters(1200, k=5)
    must = [3, 17, 1199]
    rows, xy = project_2d(X, max_points=300, must_include=must, labels=y, random_state=0)
    rows2, xy2 = project_2d(X, max_points=300, must_include=must, labels=y, random_state=0)
    assert rows.dtype == np.int64 and xy.dtype == np.float32 and xy.shape == (300, 2) and len(rows) == 300
    assert set(must) <= set(rows) and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_array_equal(xy, xy2)
    # stratified: each class's share of the sample follows its share of the data
    assert np.abs(np.bincount(y[rows], minlength=5) - np.bincount(y, minlength=5) * 300 / 1200).max() <= len(must) + 1


def test_sample_rows_all_when_small():
    assert list(sample_rows(5, 10)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("call, message", [
    (lambda X: nearest_neighbors(X, k=50), "k=50"),
    (lambda X: nearest_neighbors(X[:, :0]), "column"),
    (lambda X: nearest_neighbors(np.where(np.arange(40)[:, None] == 7, np.nan, X)), "row 7"),
    (lambda X: nearest_neighbors(X, queries=X[:, :3]), "queries"),
    (lambda X: nearest_neighbors(X, method="hnsw"), "method"),
    (lambda X: nearest_neighbors(X.astype(str)), "dtype"),
    (lambda X: near_duplicate_groups(np.zeros((40, 3)), np.zeros((40, 3)), 0.9), "indices"),
    (lambda X: near_duplicate_groups(np.zeros((40, 3), int), np.zeros((40, 3)), 1.5), "threshold"),
    (lambda X: leakage(np.zeros((4, 3), int), np.zeros((4, 2)), 0.9), "test_indices"),
    (lambda X: outlier_score(X, np.zeros((39, 5))), "similarities"),
    (lambda X: project_2d(X, max_points=5, must_include=range(6)), "must_include"),
    (lambda X: project_2d(X, method="pca"), "method"),
    (lambda X: recall_at_k(np.zeros((3, 2)), np.zeros((4, 2))), "same number of rows"),
])
def test_bad_input_raises_value_error_naming_it(call, message):
    X, _ = clusters(40)
    with pytest.raises(ValueError, match=message):
        call(X)
