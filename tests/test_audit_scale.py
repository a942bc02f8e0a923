"""The audit of a large set: dataset-level numbers from a stratified sample, suggestions for the sample and the top
of every class, memory bounded by the sample (the 1.28M x 1000 case is measured by
bench/report_scale.py); the prior's normal equations agree with least squares."""
from types import SimpleNamespace

import numpy as np
import pytest

from coreclean.audit import audit as audit_module
from coreclean.audit.audit import TOP_SHARE, audit_scope, compute_audit, scope_line
from coreclean.audit.crossfit import out_of_fold_proba
from coreclean.audit.noise import PRIOR_RIDGE, joint_from_matrix
from coreclean.build.params import BuildParams


@pytest.fixture(scope="module")
def noisy_set():
    """Four Gaussian classes of 1,000 rows, 12% of the labels flipped; importance ranks most flips first (as the
    build's does), 40 rows removed by review."""
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(4), 1000)
    X = (rng.normal(size=(4000, 6)) + 5.0 * np.eye(4, 6)[truth]).astype(np.float32)
    given = truth.copy()
    flip = rng.random(4000) < 0.12
    given[flip] = (truth[flip] + rng.integers(1, 4, flip.sum())) % 4
    importance = flip + 0.8 * rng.random(4000)
    removed = np.zeros(4000, bool)
    removed[rng.choice(4000, 40, replace=False)] = True
    analysis = SimpleNamespace(y_train=given, n_classes=4, removed_train=removed, x_train=X, importance=importance,
                               params=BuildParams(), classes=["a", "b", "c", "d"])
    return analysis, truth


def test_small_sets_audit_every_row(noisy_set):
    analysis, _ = noisy_set
    rows = np.flatnonzero(~analysis.removed_train)
    sample, scored = audit_scope(analysis.y_train, rows, analysis.importance, 4)
    assert np.array_equal(sample, rows) and np.array_equal(scored, rows)
    assert scope_line({"n": len(rows), "sampled": len(rows), "suggested": len(rows)}) is None
    assert scope_line({"n": len(rows)}) is None  # an audit stored before sampling existed


def test_a_large_set_is_estimated_on_a_sample_and_suggested_for_the_top_of_each_class(noisy_set, monkeypatch):
    analysis, truth = noisy_set
    monkeypatch.setattr(audit_module, "AUDIT_CELLS", 4 * 1200)  # as if 4,000 rows x 4 classes were too many
    y, removed = analysis.y_train, analysis.removed_train
    rows = np.flatnonzero(~removed)
    sample, scored = audit_scope(y, rows, analysis.importance, 4)
    assert 1150 <= len(sample) <= 1250 and not removed[scored].any() and np.isin(sample, scored).all()
    for c in range(4):  # the same share of every class, and each class's most important rows
        members = rows[y[rows] == c]
        assert abs(np.isin(members, sample).mean() - len(sample) / len(rows)) < 0.01
        top = members[np.argsort(-analysis.importance[members])][:int(np.ceil(TOP_SHARE * len(members)))]
        assert np.isin(top, scored).all()

    audit = compute_audit(analysis, folds=4, bootstrap=100)
    assert audit.summary["sampled"] == len(sample) and audit.summary["suggested"] == len(scored)
    assert audit.summary["classifier"] == "lda"
    # the posterior's total is matched to the estimate on the random sample, not on the top rows added to it
    assert np.isclose(audit.p_wrong[sample].astype(float).mean(), audit.summary["noise_rate"], atol=1e-4)
    assert audit.summary["n"] == len(rows) and sum(audit.summary["counts"]) == len(rows)
    assert f"sample of {len(sample):,} of the {len(rows):,} samples" in scope_line(audit.summary)
    outside = np.setdiff1d(np.arange(len(y)), scored)
    assert (audit.suggested[outside] == -1).all() and np.isnan(audit.p_wrong[outside]).all()
    assert (audit.suggested[scored] >= 0).all() and (audit.suggested[scored] != y[scored]).all()
    truly = (y != truth)[rows].mean()
    low, high = audit.summary["noise_interval"]
    assert abs(audit.summary["noise_rate"] - truly) < 0.03 and low <= truly <= high
    # rows outside the sample are scored by fold classifiers that never saw them: as good as the sample's own
    wrong = y != truth
    outside, inside = np.setdiff1d(scored, sample), sample
    outside, inside = outside[wrong[outside]], inside[wrong[inside]]
    assert len(outside) > 100 and (audit.suggested[outside] == truth[outside]).mean() > 0.95
    assert abs(audit.p_wrong[outside].mean() - audit.p_wrong[inside].mean()) < 0.05


def test_the_sampled_cross_fit_leaves_other_rows_out(noisy_set):
    analysis, _ = noisy_set
    rows = np.arange(0, 4000, 3)
    proba = out_of_fold_proba(analysis.x_train, analysis.y_train, 4, folds=3, rows=rows)
    assert np.isnan(proba[np.setdiff1d(np.arange(4000), rows)]).all()
    assert np.allclose(proba[rows].sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("K", [3, 40])
def test_the_prior_solve_is_the_ridge_least_squares_solution(K):
    rng = np.random.default_rng(K)
    counts = np.diag(rng.integers(50, 300, K)).astype(float)
    cells = rng.integers(0, K, (4 * K, 2))
    np.add.at(counts, (cells[:, 0], cells[:, 1]), rng.integers(1, 40, len(cells)))
    matrix = counts / counts.sum(axis=1, keepdims=True)
    y = rng.integers(0, K, 30 * K)
    given = np.bincount(y, minlength=K) / len(y)
    system = np.vstack([matrix.T, np.sqrt(PRIOR_RIDGE) * np.eye(K)])
    prior = np.clip(np.linalg.lstsq(system, np.concatenate([given, np.sqrt(PRIOR_RIDGE) * given]), rcond=None)[0],
                    0, None)
    expected = ((prior / prior.sum())[:, None] * matrix).T
    assert np.allclose(joint_from_matrix(matrix, y, K), expected, atol=1e-12)


def test_lda_folds_are_fitted_without_their_own_rows(noisy_set):
    """Each fold's coef is LDA on exactly the other folds' rows (per-fold moments of one pass in row order, summed =
    moments of those rows), and every row is scored by its own fold's coef."""
    from types import SimpleNamespace

    from coreclean.audit.crossfit import fold_ids, fold_moments, lda_fold_coefs, proba_by_fold, shared_reference
    from coreclean.classifier.model import predict_proba
    from coreclean.classifier.row_passes import moments
    from coreclean.classifier.solver import lda_start, to_raw

    analysis, _ = noisy_set
    X, y = analysis.x_train, analysis.y_train
    fold = np.full(len(y), -1)
    used = np.flatnonzero(~analysis.removed_train)
    fold[used] = fold_ids(y[used], 3)
    coefs = lda_fold_coefs(X, y, 4, fold, 3)
    mean, scale = shared_reference(X, used)  # the standardization the folds share
    reference = SimpleNamespace(mean=mean, scale=scale)
    per_fold = fold_moments(X, y, 4, fold, 3, batch=700)  # several blocks, folds mixed in each
    for k in range(3):
        direct = moments(X[fold == k], y[fold == k], 4, reference=reference)
        assert per_fold[k].total == direct.total and np.array_equal(per_fold[k].class_weights, direct.class_weights)
        for field in ("first", "second", "class_sums"):
            ours, theirs = getattr(per_fold[k], field), getattr(direct, field)  # float32 batches, float64 sums
            assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max())
        others = (fold >= 0) & (fold != k)
        direct = moments(X[others], y[others], 4, reference=reference)
        expected = to_raw(*lda_start(direct), direct.mean, direct.scale)
        assert np.allclose(predict_proba(X, coefs[k]), predict_proba(X, expected), atol=1e-5)
    proba = proba_by_fold(X, used, fold, coefs, batch=500)  # several blocks
    for k in range(3):
        mine = fold[used] == k
        assert np.allclose(proba[mine], predict_proba(X[used[mine]], coefs[k]), atol=1e-6)
