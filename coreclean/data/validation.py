"""Input validation at the edge: every check raises ``ValueError`` naming the input and the fix."""
from __future__ import annotations

import numbers

import numpy as np


def check_features_labels(
    X, y, *, x_name: str = "X", y_name: str = "y", min_classes: int = 2,
    min_per_class: int = 2, n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a training feature matrix and integer labels before any long computation.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), finite real numbers.
    y : array-like of shape (n_samples,), integer class labels in 0..K-1.
    x_name, y_name : how to name the inputs in error messages (e.g. a file path).
    n_classes : the declared number of classes K, if known; otherwise labels must be below n_samples (so a
        stray label such as 1e9 fails here instead of sizing a K x K matrix).

    Returns
    -------
    X : float32 ndarray (n_samples, n_features), C-contiguous (a view when already so).
    y : int64 ndarray (n_samples,).
    """
    X, y = check_matrix(X, x_name), _labels(y, y_name)
    _same_length(X, y, x_name, y_name)
    limit = n_classes if n_classes is not None else len(y)
    if len(y) and y.max() >= limit:
        bound = f"n_classes={n_classes}" if n_classes is not None else f"the number of samples ({len(y)})"
        raise ValueError(
            f"{y_name}: label {y.max()} at row {int(np.argmax(y))} is not below {bound}; labels must be class "
            "indices 0..K-1 — remap them, e.g. np.unique(y, return_inverse=True)[1]."
        )
    X = _finite(X, x_name)
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


def check_test_arrays(
    X_test, y_test, n_features: int, n_classes: int, *, x_name: str = "x_test", y_name: str = "y_test"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate held-out features and labels against the training set's shape and classes.

    X_test : (m, n_features) finite real numbers (m may be 0).  y_test : (m,) integers in 0..n_classes-1.
    Returns X_test as float32 (C-contiguous, a view when already so) and y_test as int64.
    """
    X, y = check_matrix(X_test, x_name), _labels(y_test, y_name)
    _same_length(X, y, x_name, y_name)
    if X.shape[1] != n_features:
        raise ValueError(f"{x_name}: has {X.shape[1]} features but the training features have {n_features}; "
                         "embed both splits with the same backbone.")
    if len(y) and y.max() >= n_classes:
        raise ValueError(f"{y_name}: label {y.max()} at row {int(np.argmax(y))} is not below the {n_classes} "
                         "training classes; test labels must use the training class indices 0..K-1.")
    return _finite(X, x_name), y


def check_n_classes(y: np.ndarray, n_classes: int | None, n: int) -> int:
    """The number of classes K: ``n_classes`` checked against the labels, or ``y.max() + 1``."""
    if n_classes is None:
        return int(y.max()) + 1
    if not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool):
        raise ValueError(f"n_classes={n_classes!r}: must be an integer.")
    if y.max() >= n_classes:
        raise ValueError(f"y: label {int(y.max())} >= n_classes={n_classes}; labels must be 0..n_classes-1.")
    if n_classes > max(n, int(y.max()) + 1):
        raise ValueError(f"n_classes={n_classes} exceeds the {n} samples; pass the number of classes present "
                         "(labels 0..K-1).")
    return int(n_classes)


def check_coef(coef: np.ndarray | None, name: str, d: int, K: int) -> np.ndarray | None:
    """``coef``/``init`` as float32 (d + 1, K), or a ValueError naming the expected shape."""
    if coef is None:
        return None
    coef = np.asarray(coef)
    if coef.shape != (d + 1, K) or not np.issubdtype(coef.dtype, np.number) or not np.all(np.isfinite(coef)):
        raise ValueError(f"{name}: expected finite numbers of shape ({d + 1}, {K}) = (n_features + 1, n_classes), "
                         f"got {coef.dtype} {coef.shape}.")
    return coef.astype(np.float32)


def check_matrix(X, name: str = "X", *, min_rows: int = 0) -> np.ndarray:
    """Validate a (n, d) real matrix without reading its values (a memmap stays a memmap; finiteness is checked
    where the values are read): numeric, two-dimensional, at least ``min_rows`` rows and one column."""
    if not isinstance(X, np.ndarray):  # keeps np.memmap as is
        X = np.asarray(X)
    if X.dtype == object:
        raise ValueError(f"{name}: holds Python objects; make it a numeric array (np.save of a float/int array).")
    if X.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name}: dtype {X.dtype} is not real numeric; convert with X.astype(np.float32).")
    if len(X) < min_rows or (min_rows and X.shape[1] < 1):
        raise ValueError(f"{name}: needs at least {min_rows} rows and 1 column, got shape {X.shape}.")
    return X


def _labels(y, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == object:
        raise ValueError(f"{name}: holds Python objects; save it as a numeric array (np.save of a float/int array).")
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of labels, got shape {y.shape}; flatten it (y.ravel()).")
    if y.dtype == bool:
        raise ValueError(f"{name}: dtype bool is not an integer label type; map class names to 0..K-1 first.")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{name}: labels must be integers; found non-integer values (e.g. {y[y != np.round(y)][:3]}).")
        if len(y) and np.abs(y).max() >= 2 ** 62:
            raise ValueError(f"{name}: label {np.abs(y).max():g} is out of range; labels must be 0..K-1.")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: dtype {y.dtype} is not an integer label type; map class names to 0..K-1 first.")
    y = y.astype(np.int64, copy=False)
    if len(y) and y.min() < 0:
        raise ValueError(f"{name}: negative label {y.min()} at row {int(np.argmin(y))}; labels must be 0..K-1.")
    return y


def _same_length(X: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> None:
    if len(X) != len(y):
        raise ValueError(
            f"{x_name} has {len(X)} rows but {y_name} has {len(y)} labels; they must describe the same samples."
        )


MAX_ABS_FEATURE = 1e15  # its square, summed over many features, stays far inside float32 (3.4e38)


def _finite(X: np.ndarray, name: str) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)  # a float32 memmap passes through without a copy
    bad_rows = [start + np.flatnonzero(~np.isfinite(X[start:start + 65536]).all(axis=1))
                for start in range(0, len(X), 65536)]
    rows = np.concatenate(bad_rows) if bad_rows else np.zeros(0, dtype=int)
    if len(rows):
        raise ValueError(
            f"{name}: {len(rows)} row(s) contain NaN or inf (first: row {rows[0]}); drop or impute them before ranking."
        )
    return X


def check_distance_scale(X: np.ndarray, name: str = "X") -> np.ndarray:
    """``X`` (n, d) if its values suit the float32 distances of neighbours, duplicates and outliers, else
    ``ValueError`` saying to rescale. The importance itself is scale-invariant and needs no such check; call this
    where user features enter a build or ``rank`` (squares of values past 1e15, summed over features, overflow
    float32; below 1e-15 they underflow)."""
    largest = max((float(np.abs(X[start:start + 65536]).max()) for start in range(0, len(X), 65536) if X.size),
                  default=0.0)
    if largest > MAX_ABS_FEATURE or 0 < largest < 1 / MAX_ABS_FEATURE:
        raise ValueError(f"{name}: the largest feature value is {largest:.3g}, beyond what float32 distances hold "
                         f"(1e-15 .. 1e15); rescale the features first, e.g. X / np.abs(X).max() (the signals do "
                         "not depend on the features' overall scale).")
    return X
