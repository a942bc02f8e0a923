"""Class names for display and which classes a confusion view should draw."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..classifier.model import normalize_confusion


def unique_labels(classes: Sequence[str]) -> list[str]:
    """Display labels that are unique (ImageNet repeats e.g. 'crane'): duplicates get their class id appended."""
    seen: dict[str, int] = {}
    for name in classes:
        seen[name] = seen.get(name, 0) + 1
    return [f"{name} #{i}" if seen[name] > 1 else name for i, name in enumerate(classes)]


def visible_classes(counts: np.ndarray, labels: Sequence[str], *, top_n: int = 30, search: str = "") -> np.ndarray:
    """Class ids to draw: those matching ``search`` (case-insensitive substring), else all when few, else the
    classes taking part in the worst off-diagonal confusions until ``top_n`` are collected. Sorted ascending."""
    K = len(labels)
    if search.strip():
        needle = search.strip().lower()
        return np.array([i for i, name in enumerate(labels) if needle in name.lower()], dtype=int)
    if K <= top_n:
        return np.arange(K)
    rates = normalize_confusion(counts)
    np.fill_diagonal(rates, 0)
    # Only the worst top_n^2 cells can matter; partial selection keeps 1000 classes (1M cells) fast.
    flat_rates = rates.ravel()
    candidates = min(flat_rates.size, top_n * top_n)
    worst = np.argpartition(-flat_rates, candidates - 1)[:candidates]
    chosen: list[int] = []
    for flat in worst[np.lexsort((worst, -flat_rates[worst]))]:
        if rates.flat[flat] <= 0:
            break
        for c in divmod(int(flat), K):
            if c not in chosen and len(chosen) < top_n:
                chosen.append(c)
        if len(chosen) >= top_n:
            break
    return np.array(sorted(chosen), dtype=int)
