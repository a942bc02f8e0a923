"""The audit's two-layer net (coreclean.audit.mlp): out-of-fold, seeded, used where the audit says."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

from coreclean.audit import mlp
from coreclean.audit.audit import cross_fitted_proba, crossfit_classifier
from coreclean.audit.crossfit import fold_ids


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600].astype(np.float32), y[:600]


def test_each_row_is_scored_by_a_net_that_never_saw_it(digits, monkeypatch):
    """A feature column holding the row number shows which rows each fold's net trained on."""
    X, y = digits
    X = np.column_stack([np.arange(len(y), dtype=np.float32), X])
    seen, train = [], mlp._train

    def recording(z, labels, n_classes, seed):
        seen.append(z[:, 0].numpy().copy())
        return train(z, labels, n_classes, seed)

    monkeypatch.setattr(mlp, "_train", recording)
    rows = np.arange(0, len(y), 2)  # every other row used; the rest get NaN
    proba = mlp.mlp_out_of_fold_proba(X, y, 10, folds=3, rows=rows)
    assert np.isnan(proba[1::2]).all() and np.allclose(proba[rows].sum(axis=1), 1, atol=1e-5)
    fold = fold_ids(y[rows], 3)
    column = X[rows, 0].astype(np.float64)
    standardized = ((column - column.mean()) / column.std()).astype(np.float32)  # as the module standardizes
    for k, trained_on in enumerate(seen):
        assert np.isin(standardized[fold == k], trained_on).sum() == 0
        assert np.isin(standardized[fold != k], trained_on).all()


def test_seeded_and_leaves_the_callers_generator_alone(digits):
    import torch

    X, y = digits
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = mlp.mlp_out_of_fold_proba(X, y, 10, folds=3)
    assert torch.equal(torch.rand(3), expected_next)
    assert np.array_equal(first, mlp.mlp_out_of_fold_proba(X, y, 10, folds=3))
    assert np.mean(first.argmax(axis=1) == y) > 0.85  # it learns (out of fold, 400 training rows per fold)


def test_the_audit_uses_the_net_up_to_its_budget_and_the_linear_fit_beyond(digits, monkeypatch):
    assert crossfit_classifier(60_000, 512, 10) == "mlp" and crossfit_classifier(60_001, 512, 10) == "linear"
    assert crossfit_classifier(60_000, 128, 10) == "mlp" and crossfit_classifier(60_000, 512, 1000) == "linear"
    # the hidden layers cost every row the same whatever its width: long narrow sets are not cheap
    assert crossfit_classifier(1_000_000, 16, 10) == "linear"
    X, y = digits
    monkeypatch.setattr(mlp, "_train", lambda *a: pytest.fail("the linear fit was asked for"))
    proba = cross_fitted_proba(X, y, 10, np.arange(len(y)), folds=3, classifier="linear")
    assert np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="classifier 'forest'"):
        cross_fitted_proba(X, y, 10, np.arange(len(y)), classifier="forest")
