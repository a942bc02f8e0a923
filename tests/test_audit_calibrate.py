"""The per-class isotonic map of out-of-fold probabilities onto the given labels (coreclean.audit.calibrate)."""
import numpy as np

from coreclean.audit.calibrate import MIN_CLASS_ROWS, fit_calibration
from coreclean.audit.suggest import reliability


def _distorted(n: int, n_classes: int, seed: int = 0):
    """Labels drawn from known probabilities, and those probabilities distorted per class: cubed and shifted, so a
    temperature cannot undo it (each column's own monotone map can)."""
    rng = np.random.default_rng(seed)
    truth = rng.dirichlet(np.full(n_classes, 0.4), size=n)
    y = (truth.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    power = 1.0 + np.arange(n_classes) % 3  # 1, 2, 3, ...: a different distortion per class
    seen = truth ** power + 0.02
    return truth, seen / seen.sum(axis=1, keepdims=True), y


def _class_ece(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([reliability(p[:, c], y == c)[0] for c in range(p.shape[1])]))


def test_the_map_calibrates_each_class_and_keeps_its_order():
    truth, seen, y = _distorted(20_000, 4)
    calibration = fit_calibration(seen, y, 4)
    mapped = calibration.transform(seen)
    assert mapped.dtype == np.float32 and np.allclose(mapped.sum(axis=1), 1, atol=1e-5)
    assert calibration.own.all()
    before, after, best = _class_ece(seen, y), _class_ece(mapped, y), _class_ece(truth, y)
    assert before > 0.05 and after < 0.02 and after < before / 3, (before, after, best)
    for c in range(4):  # monotone per class: a higher p(c | x) never maps lower
        order = np.argsort(seen[:, c], kind="stable")
        raw = np.interp(seen[order, c], calibration.x[c], calibration.v[c])
        assert np.all(np.diff(raw) >= 0)


def test_rare_classes_take_the_pooled_map_and_the_fit_is_seeded():
    truth, seen, y = _distorted(3_000, 40, seed=1)  # ~75 rows a class: below MIN_CLASS_ROWS
    counts = np.bincount(y, minlength=40)
    calibration = fit_calibration(seen, y, 40, seed=3)
    assert np.array_equal(calibration.own, counts >= MIN_CLASS_ROWS) and not calibration.own.all()
    rare = np.flatnonzero(~calibration.own)
    assert all(np.array_equal(calibration.x[c], calibration.x[rare[0]]) for c in rare)  # one shared map
    mapped = calibration.transform(seen)
    assert np.isfinite(mapped).all() and np.allclose(mapped.sum(axis=1), 1, atol=1e-5)
    again = fit_calibration(seen, y, 40, seed=3).transform(seen)
    assert np.array_equal(mapped, again)


def test_a_subset_fit_maps_every_row():
    truth, seen, y = _distorted(5_000, 3, seed=2)
    calibration = fit_calibration(seen, y, 3, max_rows=1_000)
    mapped = calibration.transform(seen)
    assert mapped.shape == seen.shape and (mapped > 0).all()
    assert _class_ece(mapped, y) < _class_ece(seen, y)


def test_the_lookup_tables_read_the_maps():
    """The tables behind ``mapped`` agree with linear interpolation of the knots but where a bucket (2**-9 of p
    wide) straddles one of the isotonic fit's jumps."""
    truth, seen, y = _distorted(20_000, 4, seed=4)
    calibration = fit_calibration(seen, y, 4)
    exact = np.stack([np.interp(seen[:, c], calibration.x[c], calibration.v[c]) for c in range(4)], axis=1)
    looked_up = calibration.mapped(seen)
    off = np.abs(looked_up - exact)
    assert off.mean() < 3e-4 and np.median(off) < 1e-6 and (off > 0.01).mean() < 0.01
    edges = calibration.mapped(np.array([[0.0, 1e-9, 1.0, 1.0000001]], dtype=np.float32))
    assert np.isfinite(edges).all()


def test_rows_without_probabilities_are_left_out_of_the_fit():
    truth, seen, y = _distorted(2_000, 3, seed=5)
    holed = seen.copy()
    holed[::4] = np.nan  # rows no fold could score
    kept = np.arange(2_000) % 4 != 0  # every row is read (max_rows > n): the fit is the one on the scored rows
    with_holes, without = fit_calibration(holed, y, 3), fit_calibration(seen[kept], y[kept], 3)
    assert np.array_equal(with_holes.mapped(seen), without.mapped(seen))
    mapped = fit_calibration(holed, y, 3).transform(seen)
    assert np.isfinite(mapped).all()
    nothing = fit_calibration(np.full((5, 3), np.nan, np.float32), np.zeros(5, int), 3)
    assert np.allclose(nothing.mapped(np.array([[0.2, 0.3, 0.5]], np.float32)), [[0.2, 0.3, 0.5]], atol=2e-3)
