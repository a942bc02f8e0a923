"""ResNet embedding per shard of images on Dask workers (the ``resnet18`` backbone of a ``--cluster`` build).

A shard is one chunk of :data:`coreclean.embedding.embed.CHUNK` rows, embedded by :func:`coreclean.embedding.embed.embed_chunk` into
the same ``chunk_<start>.npy`` (+ failures, + quality rows) files as a single-process build, so an interrupted
build resumes shard by shard, on a cluster or not. Each worker process loads the backbone once (on its GPU when
it has one) and then writes its shard's rows into the split's ``x_<split>.npy`` at their byte offset, so the
features are assembled on the shared filesystem and never pass through the client. A task ships only its shard's
image paths (or pixels), never the whole list.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..data.files import load_npy
from ..data.dataset import Dataset
from .embed import CHUNK, Progress, embed_chunk, resnet18_backbone

FEATURES = 512
_LOADED: dict[str, tuple] = {}  # per worker process: weights -> Loaded (model, preprocess, device, dim)


class _Window:
    """Items [start, start + len(items)) of a sequence, indexed by their position in the whole split."""

    def __init__(self, items, start: int):
        self.items, self.start = items, start

    def __getitem__(self, index: int):
        return self.items[index - self.start]

    def __len__(self) -> int:
        return self.start + len(self.items)


def _shard(dataset: Dataset, split: str, start: int, stop: int) -> Dataset:
    """What a task needs of ``dataset`` to embed rows [start, stop) of ``split``: their paths or pixels."""
    pixels, paths = dataset.images(split), dataset.paths(split)
    window = {}
    if pixels is not None:
        window[f"pixels_{split}"] = _Window(np.asarray(pixels[start:stop]), start)
    else:
        window[f"paths_{split}"] = _Window(list(paths[start:stop]), start)
    return Dataset(name=dataset.name, classes=list(dataset.classes), y_train=np.zeros(0, np.int64),
                   y_test=np.zeros(0, np.int64), fingerprint="", root=dataset.root, **window)


def embed_on(client, dataset: Dataset, backbone: str, work_dir: Path, *, weights=None, pca=None,
             progress: Progress | None = None, feature_files: dict[str, Path] | None = None,
             ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, str]]]:
    """:func:`coreclean.embedding.embed.embed` for the ``resnet18`` backbone, with shards as tasks on ``client``.

    Returns (x_train, x_test) memory-mapped from ``feature_files[split]`` (default ``work_dir/x_<split>.npy``;
    a build passes where its store keeps the features, so they are written once) and (split, index, reason)
    failures.
    """
    if backbone != "resnet18":
        raise ValueError(f"backbone={backbone!r}: only resnet18 embeds on a cluster; the others run in the build.")
    total = len(dataset.y_train) + len(dataset.y_test)
    parts, failures, offset = [], [], 0
    for split in ("train", "test"):
        report = (lambda done, _n, base=offset: progress(base + done, total)) if progress else None
        out = (feature_files or {}).get(split, Path(work_dir) / f"x_{split}.npy")
        x, failed = embed_split_on(client, dataset, split, Path(work_dir) / f"embed-{split}", out,
                                   weights=weights, progress=report)
        parts.append(x)
        failures += [(split, i, reason) for i, reason in failed]
        offset += len(dataset.labels(split))
    return parts[0], parts[1], failures


def embed_split_on(client, dataset: Dataset, split: str, out_dir: Path, target: Path, *, weights=None,
                   progress: Progress | None = None) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Features (n, 512) of one split, memory-mapped from ``target``, and (index, reason) for failed images."""
    from distributed import as_completed

    n = len(dataset.labels(split))
    out_dir.mkdir(parents=True, exist_ok=True)
    features = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(n, FEATURES))
    header = int(features.offset)
    del features
    weights = None if weights is None else str(weights)
    futures = [client.submit(_embed_shard, _shard(dataset, split, start, min(start + CHUNK, n)), split,
                             str(out_dir), start, min(start + CHUNK, n), weights, str(target), header, pure=False)
               for start in range(0, n, CHUNK)]
    failures, done = [], 0
    for future in as_completed(futures):
        failed, rows = future.result()
        failures += [(int(i), str(reason)) for i, reason in failed]
        done += rows
        if progress:
            progress(done, n)
    return load_npy(target, mmap=True), sorted(failures)


def _embed_shard(shard: Dataset, split: str, out_dir: str, start: int, stop: int, weights: str | None,
                 target: str, header: int) -> tuple[list, int]:
    """Worker: embed the shard unless its chunk file exists, then write its rows into ``target``."""
    out = Path(out_dir)
    chunk_file = out / f"chunk_{start:09d}.npy"
    if not chunk_file.exists():
        if weights not in _LOADED:
            _LOADED[weights] = resnet18_backbone(weights)
        embed_chunk(shard, split, out, start, stop, _LOADED[weights])
    rows = np.ascontiguousarray(load_npy(chunk_file), dtype=np.float32)
    descriptor = os.open(target, os.O_WRONLY)
    try:  # pwrite of this shard's bytes only: workers on other machines write other ranges of the same file
        os.pwrite(descriptor, rows.tobytes(), header + start * FEATURES * 4)
    finally:
        os.close(descriptor)
    failed = json.loads((out / f"chunk_{start:09d}.failed.json").read_text())
    return [tuple(f) for f in failed], stop - start
