import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from coreclean import CoresetSensitivity
from coreclean.classifier.row_passes import StandardizedRows, moments
from coreclean.classifier.solver import fit_softmax, lda_start, stop_early


@pytest.fixture(scope="module")
def blobs():
    """Four overlapping Gaussian classes in 12-d with correlated, unevenly scaled, offset features."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 1200)
    mixing = rng.normal(size=(12, 12)) * np.geomspace(1, 100, 12)
    X = (rng.normal(size=(4, 12))[y] + rng.normal(size=(1200, 12))) @ mixing + 50.0
    return X.astype(np.float32), y


def commonly_scaled(X, w=None):
    """(X - mean) / s with s^2 the mean (weighted) feature variance: the coordinates in which the solver's penalty
    is scikit-learn's plain ridge."""
    w = np.ones(len(X)) if w is None else w
    mean = np.average(X.astype(np.float64), axis=0, weights=w)
    common = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w).mean())
    return (X - mean) / common, mean, common


def objective(Z, y, W, b, C, w=None):
    w = np.ones(len(y)) if w is None else w
    logits = Z @ W + b
    logits -= logits.max(1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -(w * log_p[np.arange(len(y)), y]).sum() + (W ** 2).sum() / (2 * C)


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_scikit_learn_logistic_regression_at_convergence(blobs, weighted):
    X, y = blobs
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(y)) if weighted else None
    fit = fit_softmax(X, y, 4, C=0.5, sample_weight=w, max_iter=2000, tol=1e-9)
    Z, mean, common = commonly_scaled(X, w)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(Z, y, sample_weight=w)
    W, b = fit.coef[:-1] * common, fit.coef[-1] + mean @ fit.coef[:-1]  # back to the commonly scaled features
    ours_value = objective(Z, y, W, b, 0.5, w)
    theirs_value = objective(Z, y, theirs.coef_.T, theirs.intercept_, 0.5, w)
    assert abs(ours_value - theirs_value) <= 1e-5 * theirs_value
    centred = lambda a: a - a.mean(axis=1, keepdims=True)  # noqa: E731 (softmax is invariant to a shift)
    np.testing.assert_allclose(centred(W), centred(theirs.coef_.T), atol=2e-3 * np.abs(theirs.coef_).max())
    assert ((Z @ W + b).argmax(1) == theirs.predict(Z)).mean() > 0.995


@pytest.mark.parametrize("factor", [1e-6, 1e6, 1e10, 1e30])
def test_fit_is_invariant_to_feature_scale(blobs, factor):
    X, y = blobs
    reference = fit_softmax(X, y, 4, tol=1e-7, max_iter=500)
    scaled = fit_softmax(X * np.float32(factor), y, 4, tol=1e-7, max_iter=500)
    assert np.all(np.isfinite(scaled.coef))
    logits = X.astype(np.float64) @ reference.coef[:-1] + reference.coef[-1]
    scaled_logits = (X * np.float32(factor)).astype(np.float64) @ scaled.coef[:-1] + scaled.coef[-1]
    assert (logits.argmax(1) == scaled_logits.argmax(1)).mean() > 0.995
    np.testing.assert_allclose(scaled.coef[:-1] * factor, reference.coef[:-1], rtol=1e-2,
                               atol=1e-3 * np.abs(reference.coef[:-1]).max())


def test_memory_mapped_input_gives_identical_results(blobs, tmp_path):
    X, y = blobs
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    in_memory = CoresetSensitivity().fit(X, y)
    from_disk = CoresetSensitivity().fit(mapped, y)
    np.testing.assert_array_equal(from_disk.coef_, in_memory.coef_)
    np.testing.assert_array_equal(from_disk.importance_, in_memory.importance_)


def test_streamed_passes_equal_in_memory_passes(blobs, monkeypatch):
    X, y = blobs
    held = fit_softmax(X, y, 4, batch=256)
    monkeypatch.setattr(StandardizedRows, "CACHE_FLOATS", 0)  # re-read and re-standardize X on every pass
    streamed = fit_softmax(X, y, 4, batch=256)
    np.testing.assert_array_equal(streamed.coef, held.coef)


def test_moments_of_a_subset_subtract_exactly(blobs):
    X, y = blobs
    everything = moments(X, y, 4)
    part = np.zeros(len(y))
    part[::3] = 1.0
    rest = everything - moments(X, y, 4, sample_weight=part, reference=everything)
    direct = moments(X, y, 4, sample_weight=1.0 - part, reference=everything)
    for name in ("total", "first", "second", "class_sums", "class_weights"):
        np.testing.assert_allclose(getattr(rest, name), getattr(direct, name), rtol=1e-5, atol=1e-3)


def test_lda_start_is_close_to_the_bayes_rule_on_shared_covariance_classes():
    rng = np.random.default_rng(2)
    K, d = 5, 20
    means = rng.normal(size=(K, d)) * 0.6
    root = rng.normal(size=(d, d)) / np.sqrt(d) * np.geomspace(0.1, 3, d)
    draw = lambda n: (lambda yy: ((means[yy] + rng.normal(size=(n, d)) @ root.T).astype(np.float32), yy))(  # noqa
        rng.integers(0, K, n))
    X, y = draw(20000)
    X_test, y_test = draw(5000)
    m = moments(X, y, K)
    W, b = lda_start(m)
    lda = ((((X_test - m.mean) / m.scale) @ W + b).argmax(1) == y_test).mean()
    precision = np.linalg.inv(root @ root.T)
    bayes = ((X_test @ precision @ means.T - 0.5 * np.einsum("kd,de,ke->k", means, precision, means)).argmax(1)
             == y_test).mean()
    assert lda > bayes - 0.01, (lda, bayes)


def test_early_stopping_keeps_the_best_validation_iterate(blobs):
    X, y = blobs
    validation = np.arange(0, len(y), 5)
    fit = fit_softmax(X, y, 4, validation_rows=validation, n_iter_no_change=2)
    errors = np.array(fit.validation)
    assert len(errors) == fit.n_iter + 1  # the start and every iterate
    noise = np.sqrt(errors.min() * (1 - errors.min()) / len(validation))
    assert errors[fit.chosen] <= errors.min() + noise and np.all(errors[fit.chosen + 1:] > errors.min() + noise)


def test_latest_within_noise_prefers_later_iterates_unless_clearly_worse():
    from coreclean.classifier.solver import latest_within_noise

    assert latest_within_noise([0.30, 0.20, 0.201, 0.205, 0.40], 10000) == 2  # 0.205 is 1.25 SE above 0.20
    assert latest_within_noise([0.20, 0.25, 0.26], 10000) == 0


@pytest.fixture(scope="module")
def overfitting():
    """Gaussian classes with a shared covariance, ~3 rows per parameter (LDA is the better rule there): train
    (X, y) 4,000 rows, test (X_test, y_test) 4,000 rows, K = 20, d = 60."""
    rng = np.random.default_rng(3)
    K, d = 20, 60
    means = rng.normal(size=(K, d)) * 0.35
    draw = lambda n: (lambda yy: ((means[yy] + rng.normal(size=(n, d))).astype(np.float32), yy))(  # noqa: E731
        rng.integers(0, K, n))
    return (*draw(4000), *draw(4000))


def test_early_stopping_keeps_lda_where_logistic_regression_overfits(overfitting):
    X, y, X_test, y_test = overfitting
    accuracy = lambda coef: ((X_test @ coef[:-1] + coef[-1]).argmax(1) == y_test).mean()  # noqa: E731
    stopped = fit_softmax(X, y, 20, validation_rows=np.arange(0, 4000, 10))
    converged = fit_softmax(X, y, 20, sample_weight=np.where(np.arange(4000) % 10 == 0, 0.0, 1.0), max_iter=300)
    assert accuracy(stopped.coef) > accuracy(converged.coef) + 0.01  # measured 0.734 vs 0.707


def test_stop_early_from_a_warm_start_needs_clearly_worse_iterates():
    # The trimmed refit's validation errors on Fashion-MNIST 20k (10% uniform flips, seed 0, a 2,000-row slice):
    # every iterate within one standard error (0.0095) of the start. The LDA rule stopped there (flip AP 0.855).
    refit = [0.239, 0.2405, 0.248, 0.240]
    assert stop_early(refit, 2000, 3, warm=False)
    assert not stop_early(refit, 2000, 3, warm=True)
    assert not stop_early([0.229, 0.237, 0.291, 0.294], 1000, 3, warm=True)  # 2 iterates after the kept one
    assert stop_early([0.229, 0.237, 0.291, 0.294, 0.287], 1000, 3, warm=True)  # 3: stop


def test_a_warm_start_stops_once_its_iterates_are_clearly_worse(overfitting):
    X, y, X_test, y_test = overfitting
    accuracy = lambda coef: ((X_test @ coef[:-1] + coef[-1]).argmax(1) == y_test).mean()  # noqa: E731
    validation = np.arange(0, 4000, 4)
    fit_rows = np.where(np.arange(4000) % 4 == 0, 0.0, 1.0)
    lda = fit_softmax(X, y, 20, sample_weight=fit_rows, max_passes=0)
    warm = fit_softmax(X, y, 20, validation_rows=validation, init=lda.coef, n_iter_no_change=3)
    converged = fit_softmax(X, y, 20, sample_weight=fit_rows, init=lda.coef, max_iter=300)
    assert warm.n_iter == warm.chosen + 3  # stopped by the rule, three iterates after the kept one
    assert accuracy(warm.coef) > accuracy(converged.coef) + 0.01


def test_pass_budget_caps_function_evaluations(blobs):
    X, y = blobs
    assert fit_softmax(X, y, 4, max_passes=3).n_passes <= 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_same_classifier_as_cpu(blobs):
    X, y = blobs
    cpu = CoresetSensitivity(device="cpu").fit(X, y)
    gpu = CoresetSensitivity(device="cuda").fit(X, y)
    assert (gpu.stats_["pred"] == cpu.stats_["pred"]).mean() > 0.995
    assert np.corrcoef(gpu.importance_, cpu.importance_)[0, 1] > 0.999
