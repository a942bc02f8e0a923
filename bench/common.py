"""Shared benchmark helpers: features for the benchmark datasets, label-noise injection, timing, and the one way
bench scripts print a table (``markdown_table``). Starting the dashboard server lives in ``bench/server.py``."""
from __future__ import annotations

import platform
import time
from collections.abc import Mapping, Sequence

import numpy as np

# Confusable pairs (source -> target) used for "pair" noise.
PAIRS = {
    "fashion-mnist": [(6, 0), (2, 4), (7, 9), (4, 6)],  # Shirt->T-shirt, Pullover->Coat, Sneaker->Boot, Coat->Shirt
    "digits": [(1, 7), (3, 8), (4, 9), (5, 6)],
}


PCA_DIMS = 128


def features(name: str, n_train: int | None = None, seed: int = 0):
    """(X_train, y_train, X_test, y_test) as standardized pixels (PCA-128 for Fashion-MNIST), optionally subsampled."""
    from coreclean import load_source
    from coreclean.embedding.embed import pixel_features

    ds = load_source(name)
    x_train, x_test = pixel_features(ds.pixels_train, ds.pixels_test, pca=PCA_DIMS)
    y_train, y_test = np.asarray(ds.y_train), np.asarray(ds.y_test)
    if n_train and n_train < len(y_train):
        keep = np.sort(np.random.default_rng(seed).choice(len(y_train), n_train, replace=False))
        x_train, y_train = x_train[keep], y_train[keep]
    return x_train, y_train, x_test, y_test


def inject_noise(y: np.ndarray, kind: str, rate: float, dataset: str, seed: int) -> np.ndarray:
    """Noisy copy of ``y``. kinds: 'uniform' (rate of labels to a random other class), 'pair' (rate*K/len(pairs)
    of each source class of the confusable pairs to its target), 'asymmetric' (class-conditional: class c flips
    with probability ~U(0, 2*rate) into classes drawn from a peaked Dirichlet)."""
    rng = np.random.default_rng(seed)
    K = int(y.max() + 1)
    noisy = y.copy()
    if kind == "uniform":
        flip = rng.random(len(y)) < rate
        noisy[flip] = (y[flip] + rng.integers(1, K, flip.sum())) % K
    elif kind == "pair":
        pairs = PAIRS[dataset]
        per_class = min(0.45, rate * K / len(pairs))
        for src, dst in pairs:
            members = np.flatnonzero(y == src)
            flip = members[rng.random(len(members)) < per_class]
            noisy[flip] = dst
    elif kind == "asymmetric":
        for c in range(K):
            members = np.flatnonzero(y == c)
            flip = members[rng.random(len(members)) < rng.uniform(0, 2 * rate)]
            targets = np.delete(np.arange(K), c)
            probs = rng.dirichlet(np.full(K - 1, 0.3))
            noisy[flip] = rng.choice(targets, len(flip), p=probs)
    else:
        raise ValueError(kind)
    return noisy


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(rows: Sequence[Mapping | Sequence], columns: Sequence[str], *, header: bool = True,
                   digits: int = 3) -> str:
    """Every table a bench script prints, as Markdown (docs/ pastes it as is).

    ``rows``: dicts keyed by column name, or sequences in column order. A float cell is printed with ``digits``
    decimals, anything else with ``str`` — pre-format a cell as a string for any other format (bold totals,
    milliseconds, ``1,234``). ``header=False`` gives only the row lines, for a table printed row by row as a long
    benchmark goes (``markdown_table([], columns)`` first prints the header alone)."""
    def cell(value) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] if header else []
    for row in rows:
        values = [row[c] for c in columns] if isinstance(row, Mapping) else list(row)
        if len(values) != len(columns):
            raise ValueError(f"row {values!r} has {len(values)} cells for {len(columns)} columns")
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines)
