"""Input validation at the edge: every check raises ``ValueError`` naming the input and the fix."""
from __future__ import annotations

import numpy as np


def check_features_labels(
    X, y, *, x_name: str = "X", y_name: str = "y", min_classes: int = 2,
    min_per_class: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a feature matrix and integer labels before any long computation.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), finite real numbers.
    y : array-like of shape (n_samples,), integer class labels >= 0.
    x_name, y_name : how to name the inputs in error messages (e.g. a file path).

    Returns
    -------
    X : float32 ndarray (n_samples, n_features), C-contiguous (a view when already so).
    y : int64 ndarray (n_samples,).
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.dtype == object or y.dtype == object:
        bad = x_name if X.dtype == object else y_name
        raise ValueError(f"{bad}: holds Python objects; save it as a numeric array (np.save of a float/int array).")
    if X.ndim != 2:
        raise ValueError(f"{x_name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}.")
    if y.ndim != 1:
        raise ValueError(f"{y_name}: expected a 1-D array of labels, got shape {y.shape}; flatten it (y.ravel()).")
    if len(X) != len(y):
        raise ValueError(
            f"{x_name} has {len(X)} rows but {y_name} has {len(y)} labels; they must describe the same samples."
        )
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{x_name}: dtype {X.dtype} is not real numeric; convert with X.astype(np.float32).")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{y_name}: labels must be integers; found non-integer values (e.g. {y[y != np.round(y)][:3]}).")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{y_name}: dtype {y.dtype} is not an integer label type; map class names to 0..K-1 first.")
    y = y.astype(np.int64, copy=False)
    if len(y) and y.min() < 0:
        raise ValueError(f"{y_name}: negative label {y.min()} at row {int(np.argmin(y))}; labels must be 0..K-1.")
    X = np.ascontiguousarray(X, dtype=np.float32)  # a float32 memmap passes through without a copy
    bad_rows = [start + np.flatnonzero(~np.isfinite(X[start:start + 65536]).all(axis=1))
                for start in range(0, len(X), 65536)]
    rows = np.concatenate(bad_rows) if bad_rows else np.zeros(0, dtype=int)
    if len(rows):
        raise ValueError(
            f"{x_name}: {len(rows)} row(s) contain NaN or inf (first: row {rows[0]}); drop or impute them before ranking."
        )
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < min_classes:
        raise ValueError(f"{y_name}: only {len(classes)} class present; importance needs at least {min_classes} classes.")
    lonely = classes[counts < min_per_class]
    if len(lonely):
        raise ValueError(
            f"{y_name}: class(es) {lonely.tolist()[:10]} have a single sample; a per-class importance needs at least "
            "2 samples per class — add samples or drop that class."
        )
    return X, y
