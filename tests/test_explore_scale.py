"""What keeps the exploration stage within time and memory at 1.28M rows, checked on small data: memmap pages
released after a pass, the inverted-file join in bounded query chunks, per-step timings, and a map optimized on a
sample with the rest placed by neighbours."""
import numpy as np
import pytest

import coreclean.exploration.neighbors as neighbors
from coreclean.exploration.neighbors import NeighborIndex
from coreclean.data.memmap_pages import release_rows
from coreclean.exploration.projection import extend_map, place_by_neighbors, project_2d


def clusters(n=2000, d=16, k=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 4
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


def resident() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


@pytest.mark.skipif(not hasattr(__import__("mmap"), "MADV_DONTNEED"), reason="needs madvise")
def test_release_rows_drops_read_pages_and_keeps_data(tmp_path):
    data = np.random.default_rng(0).normal(size=(8192, 512)).astype(np.float32)  # 16 MB
    np.save(tmp_path / "x.npy", data)
    X = np.load(tmp_path / "x.npy", mmap_mode="r")
    before = resident()
    total = float(np.asarray(X).sum())
    read = resident()
    release_rows(X)
    released = resident()
    assert read - before > 12e6 and read - released > 12e6  # the 16 MB came in and went out again
    assert float(np.asarray(X).sum()) == total  # read again from the page cache, unchanged
    release_rows(X[4096:], 0, 100)  # a view: offsets inside the mapping
    np.testing.assert_array_equal(X[4096:4196], data[4096:4196])


def test_release_rows_leaves_other_arrays_alone(tmp_path):
    plain = np.ones((10, 4), np.float32)
    release_rows(plain)  # in memory: nothing to release
    np.save(tmp_path / "w.npy", plain)
    writable = np.load(tmp_path / "w.npy", mmap_mode="r+")
    writable[0] = 7
    release_rows(writable)  # its changes must not be dropped
    assert writable[0, 0] == 7
    cow = np.load(tmp_path / "w.npy", mmap_mode="c")
    cow[1] = 5
    release_rows(cow)  # a private copy-on-write page would be lost: left alone
    assert cow[1, 0] == 5


def test_join_in_query_chunks_equals_one_join(monkeypatch):
    X, _ = clusters()
    Q = X[:300] + 0.01
    index = NeighborIndex(10, method="ivf", n_lists=30, n_probe=4, center=True).fit(X)
    whole, whole_q = index.kneighbors(), index.kneighbors(Q)
    monkeypatch.setattr(neighbors, "JOIN_ROWS", 97)  # uneven chunks, the last one short
    chunked, chunked_q = index.kneighbors(), index.kneighbors(Q)
    for a, b in ((whole, chunked), (whole_q, chunked_q)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert set(index.timings_) == {"mean", "kmeans", "assign", "join"}
    assert all(wall >= 0 and cpu >= 0 for wall, cpu in index.timings_.values())


def test_ivf_on_a_memmap_matches_in_memory(tmp_path):
    X, _ = clusters(1500)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = NeighborIndex(10, method="ivf", n_lists=20, n_probe=4, block_rows=256).fit(mapped).kneighbors()
    b = NeighborIndex(10, method="ivf", n_lists=20, n_probe=4, block_rows=256).fit(X).kneighbors()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-6)


def test_place_by_neighbors_puts_rows_beside_their_cluster():
    X, y = clusters(600, k=3)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    xy = np.eye(3)[y[:300], :2] * 10  # classes 0, 1, 2 at (10, 0), (0, 10), (0, 0)
    placed = place_by_neighbors(unit[:300], xy, unit[300:])
    target = np.eye(3)[y[300:], :2] * 10
    assert np.linalg.norm(placed - target, axis=1).max() < 1.0


def test_map_optimizes_a_sample_and_places_the_rest():
    X, y = clusters(900, k=3)
    must = [5, 899]
    rows, xy = project_2d(X, max_points=600, must_include=must, labels=y, fit_points=200, random_state=0)
    rows2, xy2 = project_2d(X, max_points=600, must_include=must, labels=y, fit_points=200, random_state=0)
    assert len(rows) == 600 and set(must) <= set(rows) and xy.shape == (600, 2) and xy.dtype == np.float32
    np.testing.assert_array_equal(xy, xy2)
    # classes stay apart on the map: each point's nearest other point on the map has its class
    dist = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    assert (y[rows][dist.argmin(1)] == y[rows]).mean() > 0.95
    with pytest.raises(ValueError, match="fit_points"):
        project_2d(X, fit_points=2)


def test_extended_map_keeps_earlier_points_and_places_new_ones_by_their_cluster():
    X, y = clusters(900, k=3)
    earlier = np.arange(0, 800)  # the earlier build's rows; the last 100 were added since
    kept_xy = np.eye(3)[y[earlier], :2] * 10 + np.random.default_rng(0).normal(size=(800, 2))
    rows, xy = extend_map(X, earlier, kept_xy, max_points=1000, must_include=[3, 850], labels=y)
    assert np.array_equal(rows, np.arange(900)) and xy.dtype == np.float32
    # the kept points are where they were, up to the per-axis standardization
    for axis in range(2):
        slope, offset = np.polyfit(kept_xy[:, axis], xy[:800, axis], 1)
        np.testing.assert_allclose(slope * kept_xy[:, axis] + offset, xy[:800, axis], atol=1e-5)
    # each new point sits among its class's kept points
    centre = np.stack([xy[:800][y[:800] == c].mean(0) for c in range(3)])
    assert (np.linalg.norm(xy[800:, None] - centre[None], axis=2).argmin(1) == y[800:]).all()
    # on a map larger than max_points, kept rows are preferred over a random draw
    rows, _ = extend_map(X, earlier[:500], kept_xy[:500], max_points=600, must_include=[850], labels=y)
    assert len(rows) == 600 and set(range(500)) | {850} <= set(rows)
    # too few kept points: no extension (the caller optimizes a new layout)
    assert extend_map(X, earlier[:100], kept_xy[:100], max_points=1000) is None
    with pytest.raises(ValueError, match="kept_rows"):
        extend_map(X, np.array([900]), np.zeros((1, 2)))


def test_index_recall_matches_measure_recall_on_x():
    from coreclean.exploration.recall import index_recall, measure_recall

    X, _ = clusters(3000, d=24, k=30)
    index = NeighborIndex(10, method="ivf", n_lists=40, n_probe=2, center=True).fit(X)
    idx, _ = index.kneighbors()
    fast = index_recall(index, idx, n_samples=300)
    slow, _ = measure_recall(X, idx, n_samples=300, mean=index.mean_)
    assert fast < 1.0 and abs(fast - slow) < 0.005  # only float32 rounding of near ties can differ
    exact = NeighborIndex(10, method="exact", center=True).fit(X[:500])
    assert index_recall(exact, exact.kneighbors()[0], n_samples=50) == 1.0
