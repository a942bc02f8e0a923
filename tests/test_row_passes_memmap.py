"""Streamed passes over a memory-mapped embedding release its pages as they go and give the in-memory result."""
import numpy as np

from coreclean.classifier.model import label_statistics
from coreclean.classifier.row_passes import batches, moments
from coreclean.importance.sensitivity import CoresetSensitivity


def test_passes_over_a_memmap_match_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(600, 12)) + np.repeat(rng.normal(size=(3, 12)) * 3, 200, axis=0)).astype(np.float32)
    y = np.repeat(np.arange(3), 200)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = CoresetSensitivity(max_iter=8).fit(mapped, y)
    b = CoresetSensitivity(max_iter=8).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.importance_, b.importance_)
    stats = label_statistics(mapped, y, b.coef_, batch=57)
    np.testing.assert_array_equal(stats["p_label"], label_statistics(X, y, b.coef_, batch=57)["p_label"])
    rows = np.flatnonzero(y != 1)  # a sorted subset, read batch by batch
    blocks = np.concatenate([block for _, block in batches(mapped, rows, batch=33)])
    np.testing.assert_array_equal(blocks, X[rows])
    m = moments(mapped, y, 3, sample_weight=(y != 1).astype(float), batch=50)
    np.testing.assert_allclose(m.mean, X[rows].mean(axis=0), rtol=1e-5, atol=1e-5)
