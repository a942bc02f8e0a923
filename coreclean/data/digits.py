"""scikit-learn's embedded 8x8 digits: the zero-setup default source."""
from __future__ import annotations

import numpy as np

from .dataset import Dataset


def load_digits(test_size: float = 0.2, random_state: int = 0) -> Dataset:
    """Digits as uint8 images (0..255), stratified ``test_size`` hold-out."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    idx_train, idx_test = train_test_split(
        np.arange(len(images)), test_size=test_size, random_state=random_state, stratify=bunch.target
    )
    return Dataset(
        name="digits", classes=[str(c) for c in bunch.target_names],
        y_train=bunch.target[idx_train].astype(np.int64), y_test=bunch.target[idx_test].astype(np.int64),
        pixels_train=images[idx_train], pixels_test=images[idx_test],
        fingerprint=f"digits:{test_size}:{random_state}",
    )
