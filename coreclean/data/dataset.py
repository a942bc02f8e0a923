"""The one shape every source is turned into."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Dataset:
    """A labelled train/test dataset. Exactly one of ``pixels_*``, ``paths_*`` or ``features_*`` is set.

    pixels_train : (n, H, W) or (n, H, W, 3) uint8 images held in memory.
    paths_train : image paths relative to ``root`` (files on disk).
    features_train : (n, d) float32 precomputed embeddings (``paths_*`` may also be set for display).
    skipped : (file, reason) for every input file that was left out.
    fingerprint : identifies the data content for the cache key.
    """

    name: str
    classes: list[str]
    y_train: np.ndarray
    y_test: np.ndarray
    fingerprint: str
    pixels_train: np.ndarray | None = None
    pixels_test: np.ndarray | None = None
    paths_train: list[str] | None = None
    paths_test: list[str] | None = None
    features_train: np.ndarray | None = None
    features_test: np.ndarray | None = None
    root: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``embeddings`` (precomputed features), ``pixels`` (in-memory images) or ``files`` (images on disk)."""
        if self.features_train is not None:
            return "embeddings"
        return "pixels" if self.pixels_train is not None else "files"

    def images(self, split: str) -> np.ndarray | None:
        """In-memory pixels of ``split`` ('train'|'test'), if the source has them."""
        return self.pixels_train if split == "train" else self.pixels_test

    def paths(self, split: str) -> list[str] | None:
        """Image paths of ``split`` relative to ``root``, if the source has them."""
        return self.paths_train if split == "train" else self.paths_test

    def labels(self, split: str) -> np.ndarray:
        return self.y_train if split == "train" else self.y_test
