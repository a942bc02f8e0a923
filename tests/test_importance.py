import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import average_precision_score

from coreclean import CoresetSensitivity, coreset, importance, normalize_per_class
from bench.reference import fit_logreg
from coreclean.classifier.model import confusion_matrix, confusion_pairs, predict_proba


@pytest.fixture(scope="module")
def noisy_digits():
    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(0)) / (X.std(0) + 1e-3)).astype(np.float32)
    rng = np.random.default_rng(1)
    flipped = rng.random(len(y)) < 0.1
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    return X, y, noisy, flipped


def test_importance_shape_and_normalization(noisy_digits):
    X, _, noisy, _ = noisy_digits
    scores = importance(X, noisy)
    assert scores.shape == (len(noisy),)
    assert np.all(scores > 0)
    assert np.isclose(scores.sum(), 1.0)


def test_importance_finds_flipped_labels_better_than_leverage(noisy_digits):
    X, _, noisy, flipped = noisy_digits
    est = CoresetSensitivity().fit(X, noisy)
    ours = average_precision_score(flipped, est.importance_)
    blind = average_precision_score(flipped, est.leverage_)
    assert ours > 0.8, ours
    assert ours > blind + 0.4, (ours, blind)


def test_importance_is_label_aware(noisy_digits):
    X, clean, noisy, flipped = noisy_digits
    with_noise = importance(X, noisy)
    without = importance(X, clean)
    assert with_noise[flipped].mean() > 3 * without[flipped].mean()


def test_robust_refit_improves_ranking(noisy_digits):
    X, _, noisy, flipped = noisy_digits
    plain = CoresetSensitivity(trim=0.0).fit(X, noisy).importance_
    robust = CoresetSensitivity().fit(X, noisy).importance_
    assert average_precision_score(flipped, robust) >= average_precision_score(flipped, plain) - 0.01


def test_normalize_per_class_maps_each_class_to_unit_max():
    scores = np.array([1.0, 2.0, 4.0, 0.5, 0.25])
    y = np.array([0, 0, 1, 1, 1])
    out = normalize_per_class(scores, y)
    np.testing.assert_allclose(out, [0.5, 1.0, 1.0, 0.125, 0.0625])


def test_coreset_indices_weights_and_fidelity(noisy_digits):
    X, y, _, _ = noisy_digits
    idx, w = coreset(X, y, 0.3, random_state=3)
    assert idx.dtype.kind == "i" and np.all(np.diff(idx) > 0)
    assert abs(len(idx) - round(0.3 * len(y))) <= 1
    assert np.all(w >= 1.0)
    assert abs(w.sum() - len(y)) / len(y) < 0.2  # unbiased estimate of n
    assert set(np.unique(y[idx])) == set(range(10))
    coef = fit_logreg(X[idx], y[idx], 10, sample_weight=w)
    assert (predict_proba(X, coef).argmax(1) == y).mean() > 0.9


def test_coreset_rejects_bad_size(noisy_digits):
    X, y, _, _ = noisy_digits
    with pytest.raises(ValueError, match="size"):
        coreset(X, y, 0)
    with pytest.raises(ValueError, match="size"):
        coreset(X, y, len(y) + 1)


def test_confusion_pairs_ranks_all_off_diagonal():
    counts = confusion_matrix(np.array([0, 0, 0, 1, 1, 2, 2, 2]), np.array([0, 1, 2, 0, 1, 2, 2, 0]), 3)
    pairs = confusion_pairs(counts)
    assert [(p.true, p.predicted) for p in pairs] == [(1, 0), (0, 1), (0, 2), (2, 0)]
    assert pairs[0].rate == 0.5 and pairs[0].count == 1


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((3, 2)), np.zeros(4, int), "3 rows but y has 4"),
        (np.array([[np.nan, 1], [1, 1], [2, 2], [3, 3]]), np.array([0, 0, 1, 1]), "NaN or inf.*row 0"),
        (np.array([[np.inf, 1], [1, 1], [2, 2], [3, 3]]), np.array([0, 0, 1, 1]), "NaN or inf"),
        (np.ones((4, 2)), np.array([0, 0, 0, 1]), r"class\(es\) \[1\] have a single sample"),
        (np.ones((4, 2)), np.zeros(4, int), "only 1 class"),
        (np.ones((4, 2)), np.array(["a", "b", "a", "b"]), "not an integer label type"),
        (np.ones((4, 2)), np.array([0.5, 1, 0, 1]), "must be integers"),
        (np.array([["a", "b"]] * 4), np.array([0, 1, 0, 1]), "not real numeric"),
        (np.ones(4), np.array([0, 1, 0, 1]), "2-D"),
        (np.ones((4, 2)), np.array([0, 1, 0, 1], dtype=object), "Python objects"),
    ],
)
def test_bad_inputs_are_named(X, y, message):
    with pytest.raises(ValueError, match=message):
        importance(X, y)


def test_small_coresets_are_weighted_class_medoids(noisy_digits):
    X, y, _, _ = noisy_digits
    idx, w = coreset(X, y, 100, random_state=0)  # 100 <= (64 + 1) * 10 / 2: the medoid regime
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert w.sum() == len(y)  # cluster sizes partition every class
    assert np.bincount(y[idx], minlength=10).min() >= 9
    coef = fit_logreg(X[idx], y[idx], 10, sample_weight=w)
    assert (predict_proba(X, coef).argmax(1) == y).mean() > 0.85


def test_init_only_assigns_and_fit_validates_parameters(noisy_digits):
    X, _, noisy, _ = noisy_digits
    est = CoresetSensitivity(trim=2.0, C=-1)  # scikit-learn convention: constructing never raises
    assert est.trim == 2.0 and est.C == -1
    for params, message in [({"trim": 2.0}, "trim=2.0"), ({"C": -1}, "C=-1"), ({"C": float("nan")}, "C=nan"),
                            ({"max_iter": 0}, "max_iter=0"), ({"max_fit_samples": "all"}, "max_fit_samples='all'"),
                            ({"random_state": "x"}, "random_state='x'")]:
        with pytest.raises(ValueError, match=message):
            CoresetSensitivity(**params).fit(X, noisy)


def test_fit_rejects_wrong_n_classes_and_coef_shapes(noisy_digits):
    X, _, noisy, _ = noisy_digits
    with pytest.raises(ValueError, match="label 9 at row 19 is not below n_classes=5"):
        CoresetSensitivity().fit(X, noisy, n_classes=5)
    with pytest.raises(ValueError, match=r"coef: expected .*\(65, 10\)"):
        CoresetSensitivity().fit(X, noisy, coef=np.zeros((64, 10)))
    with pytest.raises(ValueError, match="init: expected finite"):
        CoresetSensitivity().fit(X, noisy, init=np.full((65, 10), np.nan))


def test_coreset_validates_arrays_once(noisy_digits, monkeypatch):
    from importlib import import_module

    from coreclean.data.validation import check_features_labels

    coreset_module = import_module("coreclean.importance.coreset")  # the package re-exports a function of that name
    importance_module = import_module("coreclean.importance.sensitivity")

    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return check_features_labels(*args, **kwargs)

    monkeypatch.setattr(coreset_module, "check_features_labels", counting)
    monkeypatch.setattr(importance_module, "check_features_labels", counting)
    X, y, _, _ = noisy_digits
    coreset(X, y, 0.3)
    assert len(calls) == 1


def test_coreset_and_coreset_fit_draw_with_the_one_sampler(noisy_digits):
    from coreclean.importance.sampling import sensitivity_sample

    X, y, _, _ = noisy_digits
    est = CoresetSensitivity(trim=0.0).fit(X, y)
    rows, weights = sensitivity_sample(est.residual_norm_, est.leverage_, y, 500, 65 * 10, np.random.default_rng(4))
    idx, w = coreset(X, y, 500, random_state=4)
    np.testing.assert_array_equal(idx, rows)
    np.testing.assert_allclose(w, weights)
    fit_on_coreset = CoresetSensitivity(max_fit_samples=700).fit(X, y)
    assert abs(len(fit_on_coreset.fit_indices_) - 700) <= 1 and np.all(np.diff(fit_on_coreset.fit_indices_) > 0)
    assert set(np.unique(y[fit_on_coreset.fit_indices_])) == set(range(10))


@pytest.mark.parametrize("factor", [1e6, 1e10, 1e30])
def test_importance_is_invariant_to_feature_scale(noisy_digits, factor):
    X, _, noisy, _ = noisy_digits
    reference = CoresetSensitivity().fit(X, noisy)
    with np.errstate(all="raise"):
        scaled = CoresetSensitivity().fit(X * np.float32(factor), noisy)
    assert (scaled.stats_["pred"] == reference.stats_["pred"]).mean() > 0.99
    # Same optimum up to the solver's tolerance (X * factor rounds differently in float32): same ranking.
    assert np.corrcoef(np.argsort(np.argsort(scaled.importance_)),
                       np.argsort(np.argsort(reference.importance_)))[0, 1] > 0.999
    top = len(noisy) // 10
    shared = np.intersect1d(np.argsort(-scaled.importance_)[:top], np.argsort(-reference.importance_)[:top])
    assert len(shared) >= 0.95 * top


@pytest.mark.parametrize("label", [10 ** 9, 1e9])
def test_huge_label_fails_fast_with_a_clear_message(label):
    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    y = y.astype(type(label))
    y[7] = label
    with pytest.raises(ValueError, match=r"y: label 1000000000 at row 7 is not below the number of samples \(40\)"):
        importance(X, y)


def test_wide_features_use_memory_proportional_to_the_input():
    import tracemalloc

    from coreclean.importance.leverage import leverage

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 15000)).astype(np.float32)  # 3 MB; a (d, d) Gram would be 1.8 GB
    y = np.arange(50) % 2
    tracemalloc.start()
    scores = leverage(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6, peak
    assert np.all((scores > 0) & (scores <= 1 + 1e-9))
    est = CoresetSensitivity().fit(X, y)
    assert np.all(np.isfinite(est.importance_)) and np.isclose(est.importance_.sum(), 1.0)


@pytest.mark.parametrize("X, y, message", [
    (np.array([[0.0, 1.0], [np.nan, 1.0]]), np.array([0, 1]), "x_test: 1 row.*NaN or inf.*row 1"),
    (np.ones((2, 2)), np.array([0.5, 1.0]), "y_test: labels must be integers"),
    (np.ones((2, 2)), np.array([0, 3]), "y_test: label 3 at row 1 is not below the 3 training classes"),
    (np.ones((2, 2)), np.array([0, -1]), "y_test: negative label -1 at row 1"),
    (np.ones((2, 5)), np.array([0, 1]), "x_test: has 5 features but the training features have 2"),
    (np.ones((3, 2)), np.array([0, 1]), "x_test has 3 rows but y_test has 2"),
    (np.ones((2, 2)), np.array(["a", "b"]), "y_test: dtype <U1 is not an integer label type"),
])
def test_check_test_arrays_names_the_input(X, y, message):
    from coreclean.data.validation import check_test_arrays

    with pytest.raises(ValueError, match=message):
        check_test_arrays(X, y, n_features=2, n_classes=3)


def test_check_test_arrays_accepts_valid_and_empty_splits():
    from coreclean.data.validation import check_test_arrays

    X, y = check_test_arrays(np.ones((2, 2), np.float64), np.array([0.0, 2.0]), n_features=2, n_classes=3)
    assert X.dtype == np.float32 and y.dtype == np.int64 and y.tolist() == [0, 2]
    X, y = check_test_arrays(np.zeros((0, 2)), np.zeros(0, int), n_features=2, n_classes=3)
    assert X.shape == (0, 2) and len(y) == 0
