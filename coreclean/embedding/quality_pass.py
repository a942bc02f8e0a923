"""The quality pass of a build: raw quality rows of every image, from the decode the embedding already does.

* ResNet18 over image files: :func:`coreclean.embedding.embed.embed_split` scores each image as decoded and leaves
  ``quality_<start>.npy`` beside each feature chunk; this module only reads them back.
* In-memory pixels (digits, Fashion-MNIST; any backbone): ``array_scores`` on the arrays, vectorized, no decode.
* Precomputed embeddings with image paths: nothing decoded the images, so this pass decodes each one once, in
  chunks that resume like the embedding's (the only case where quality costs a decode of its own).
* Precomputed embeddings without paths: no quality.

Rows of images that fail to decode are NaN (never flagged).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from . import embed
from ..data.files import save_npy
from ..data.dataset import Dataset
from ..data.decode import UnreadableImage, open_image
from ..quality.thresholds import RAW_COLUMNS, array_scores, dataset_scores, image_scores

Progress = Callable[[int, int], None]


def source_kind(dataset: Dataset) -> str | None:
    """'pixels' (in-memory pixels), 'files' (image files, also behind precomputed embeddings) or None (no images):
    which quality issues apply, in the vocabulary of ``Dataset.kind``."""
    if dataset.images("train") is not None:
        return "pixels"
    return "files" if dataset.paths("train") is not None else None


def _score_chunk(dataset: Dataset, split: str, start: int, stop: int) -> np.ndarray:
    """Quality rows (stop - start, len(RAW_COLUMNS)) of one chunk without the backbone: in-memory pixels at once,
    files (inside the dataset root) decoded one by one; NaN rows for the rest."""
    pixels = dataset.images(split)
    if pixels is not None:
        return array_scores(pixels[start:stop])
    rows = np.full((stop - start, len(RAW_COLUMNS)), np.nan, dtype=np.float32)
    if dataset.paths(split) is None:  # an embeddings directory with paths for the other split only
        return rows
    for i in range(start, stop):
        try:
            rows[i - start] = image_scores(open_image(embed.image_file(dataset, split, i)))
        except (UnreadableImage, OSError, ValueError):
            pass  # stays NaN; with precomputed embeddings the sample itself is still analysed
    return rows


def quality_split(dataset: Dataset, split: str, out_dir: Path, *, progress: Progress | None = None) -> np.ndarray:
    """Raw quality rows (n, len(RAW_COLUMNS)) float32 of one split, NaN for images that failed to decode.

    Reads the chunk files :func:`coreclean.embedding.embed.embed_split` wrote in ``out_dir``; a missing one (another
    backbone, a run interrupted before this pass) is computed and saved, so the pass resumes chunk by chunk.
    """
    if source_kind(dataset) is None:
        raise ValueError(f"{dataset.name}: no images to score (embeddings only); quality needs pixels or paths.")
    n = len(dataset.labels(split))
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [np.zeros((0, len(RAW_COLUMNS)), np.float32)]
    for start in range(0, n, embed.CHUNK):
        stop = min(start + embed.CHUNK, n)
        path = embed.quality_file(out_dir, start)
        rows = np.load(path, allow_pickle=False) if path.exists() else None
        if rows is None or rows.shape != (stop - start, len(RAW_COLUMNS)):  # absent, or left by another chunking
            rows = _score_chunk(dataset, split, start, stop)
            save_npy(path, rows)
        parts.append(rows)
        if progress:
            progress(stop, n)
    return np.concatenate(parts)


def raw_quality(dataset: Dataset, work_dir: Path, *, progress: Progress | None = None
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Raw quality rows of both splits, ((n, 7), (m, 7)) float32 for all input rows, or None without images.

    Run after :func:`coreclean.embedding.embed.embed` with the same ``work_dir`` (its ``embed-<split>`` folders).
    ``progress(done, total)`` counts images over both splits.
    """
    if source_kind(dataset) is None:
        return None
    total = len(dataset.y_train) + len(dataset.y_test)
    parts, offset = [], 0
    for split in ("train", "test"):
        report = (lambda done, _n, base=offset: progress(base + done, total)) if progress else None
        parts.append(quality_split(dataset, split, Path(work_dir) / f"embed-{split}", progress=report))
        offset += len(dataset.labels(split))
    return parts[0], parts[1]


def split_scores(raw_train: np.ndarray, raw_test: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Severities ((n, issues), (m, issues)) float32 of both splits; odd size / aspect relative to both together."""
    scores = dataset_scores(np.concatenate([raw_train, raw_test]), source_kind=kind)
    return scores[:len(raw_train)], scores[len(raw_train):]
