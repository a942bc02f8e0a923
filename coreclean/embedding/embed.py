"""Batched feature extraction for every backbone of the registry (:mod:`coreclean.embedding.registry`).

* ``precomputed``: the source's own embeddings, kept memory-mapped.
* ``pixels``: standardized raw pixels, PCA to ``pca`` components (fit on train) — for tiny grayscale sets.
* ``cnn``: a small CNN trained on the data itself, cross-fitted (:mod:`coreclean.embedding.crossfit_cnn`).
* torchvision models (``resnet18`` …) and CLIP image towers (``clip:ARCH``, ``clip``): penultimate / image
  embeddings. ``weights``: see the registry (``"imagenet"``, an enum name or tag, a file, or None = random init).

Network features are computed in chunks written to disk, so an interrupted run resumes at the first missing chunk.
Within a chunk, each batch is decoded (JPEGs at reduced scale where the resize allows it,
:func:`coreclean.data.decode.open_reduced`; the per-image part of :class:`~coreclean.embedding.batches.
Preprocessing`) and run (:func:`~coreclean.embedding.batches.forward`: channels-last, ``inference_mode``). On the CPU
the two alternate, each on all cores (``CPU_DECODE_THREADS``). On CUDA, ``GPU_DECODE_THREADS`` threads decode the
next batches while the GPU runs the current one; batches go from pinned memory as uint8 with non-blocking copies,
and float16 autocast is used where it stays within 1e-3 of float32.
``device``: "cpu", "cuda[:N]", None / "auto" (CUDA when available).
Measured in docs/benchmarks.md §4 (``bench/embed_throughput.py``).

Image quality (:mod:`coreclean.quality.thresholds`) rides on the same decode: the ResNet loop scores every image file as
decoded (before RGB conversion) and writes its rows (``RAW_COLUMNS``) to ``quality_<start>.npy`` beside
``chunk_<start>.npy``; :mod:`coreclean.embedding.quality_pass` reads them back and covers the sources this loop never decodes.
"""
from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from ..data.files import inside, save_npy
from ..data.dataset import Dataset
from ..data.decode import UnreadableImage, open_reduced, to_rgb
from ..quality.thresholds import RAW_COLUMNS, image_scores
from . import registry
from .batches import Preprocessing, forward, prepare_model
from .registry import Loaded, resnet18_backbone, weights_file, weights_identity  # noqa: F401  (the public names)

Progress = Callable[[int, int], None]
CHUNK = 2048
# torch threads for per-image tensor preprocessing (backbones without the batched fast path, e.g. CLIP; None:
# leave torch's setting). Small tensor ops whose extra threads mostly wait: bench/quality.py (d) measures it.
PREPROCESS_THREADS: int | None = 1
# On the CPU the forward pass keeps every core busy, so a batch is decoded between forward passes, image by image on
# CPU_DECODE_THREADS threads (None: as many as torch uses; PIL decodes and resizes without the GIL); a thread decoding
# beside the forward pass only takes its time slices (docs/benchmarks.md §4). CPU_PREFETCH batches are decoded that
# way in the background anyway (0; 1 for the bench's A/B).
CPU_DECODE_THREADS: int | None = None
CPU_PREFETCH = 0
# A CUDA model leaves the CPU to decoding: this many batches decode in background threads while the GPU runs (one
# thread decodes ~300 images/s of 500x375 JPEGs: docs §4).
GPU_DECODE_THREADS = min(8, os.cpu_count() or 1)


def pixel_features(train: np.ndarray, test: np.ndarray, *, pca: int | None = 128, random_state: int = 0):
    """Standardize flattened pixels (n, H*W[*3]) with train statistics and project to ``pca`` dims if smaller.

    Returns (x_train, x_test) float32 with unit average variance per dimension.
    """
    flat_train = train.reshape(len(train), -1).astype(np.float32) / 255
    flat_test = test.reshape(len(test), -1).astype(np.float32) / 255
    mean, std = flat_train.mean(axis=0), flat_train.std(axis=0) + 1e-3
    flat_train = (flat_train - mean) / std
    flat_test = (flat_test - mean) / std
    if pca and pca < flat_train.shape[1]:
        from sklearn.decomposition import PCA

        model = PCA(pca, svd_solver="randomized", random_state=random_state).fit(flat_train)
        flat_train, flat_test = model.transform(flat_train), model.transform(flat_test)
    scale = float(flat_train.std()) or 1.0
    return (flat_train / scale).astype(np.float32), (flat_test / scale).astype(np.float32)


def _decode(dataset: Dataset, split: str, index: int, stage: Preprocessing,
            quality: bool) -> tuple[object, np.ndarray | None]:
    """(:meth:`Preprocessing.image` of sample ``index``, its quality row as decoded — None for in-memory pixels or
    when ``quality`` is off). PIL and numpy only: safe in decoding threads."""
    pixels = dataset.images(split)
    if pixels is not None:
        return stage.image(Image.fromarray(pixels[index]).convert("RGB")), None
    image, full_size, factor = open_reduced(image_file(dataset, split, index), stage.needed_size)
    scores = image_scores(image) if quality else None
    if scores is not None and factor > 1:  # the size columns describe the file, not the reduced decode
        scores[RAW_COLUMNS.index("width")], scores[RAW_COLUMNS.index("height")] = full_size
    rgb = image if image.mode == "RGB" else to_rgb(image)
    return stage.image(rgb, factor, full_size), scores


def image_file(dataset: Dataset, split: str, index: int) -> Path:
    """The file of sample ``index``; :class:`UnreadableImage` when it is outside the dataset root (an embeddings
    directory lists paths someone else wrote) or not a regular file (a FIFO would block the build)."""
    relative = dataset.paths(split)[index]
    file = dataset.root / relative
    if not inside(dataset.root, file):
        raise UnreadableImage(f"{relative}: outside the dataset root; refused")
    if not file.is_file():
        raise UnreadableImage(f"{relative}: not a file")
    return file


def _decode_batch(dataset: Dataset, split: str, indices: range, stage: Preprocessing, quality: bool,
                  pool: ThreadPoolExecutor | None = None):
    """Decode one batch, image by image on ``pool``'s threads when given: (per-image items, their indices,
    {index: quality row}, [(index, reason)])."""
    def attempt(i: int):
        try:
            return i, _decode(dataset, split, i, stage, quality), None
        except (UnreadableImage, OSError, ValueError) as err:
            return i, None, _failure(err)

    items, rows, scored, failed = [], [], {}, []
    for i, decoded, reason in (pool.map(attempt, indices) if pool else map(attempt, indices)):
        if reason is not None:
            failed.append((i, reason))
            continue
        items.append(decoded[0])
        rows.append(i)
        if decoded[1] is not None:
            scored[i] = decoded[1]
    return items, rows, scored, failed


def _prefetched(work: Callable, batches: Iterable, threads: int = 0) -> Iterator:
    """``work(batch)`` for each batch, in order; with ``threads`` > 0 the next ``threads`` batches run in background
    threads while the caller uses the current one (PIL's decode and resize release the GIL)."""
    if threads < 1:
        yield from map(work, batches)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="coreclean-decode") as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.submit(work, batch))
            if len(pending) > threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _failure(err: Exception) -> str:
    return str(err) if isinstance(err, UnreadableImage) else f"{type(err).__name__}: {err}"


def quality_file(out_dir: Path, start: int) -> Path:
    """Where the quality rows of the chunk starting at ``start`` live (beside ``chunk_<start>.npy``)."""
    return out_dir / f"quality_{start:09d}.npy"


def load_backbone(backbone: str, weights, device: str | None = None) -> Loaded:
    """The image encoder of a network backbone (resnet18 through its own name, which tests replace), in the memory
    layout the embedder runs it in. ``device``: "cpu", "cuda[:N]", or None / "auto" (CUDA when available)."""
    device = None if device == "auto" else device
    loaded = resnet18_backbone(weights, device) if backbone == "resnet18" else registry.image_backbone(
        backbone, weights, device)
    return loaded._replace(model=prepare_model(loaded.model))


def embed_split(
    dataset: Dataset, split: str, out_dir: Path, *, weights=None, batch_size: int = 64,
    progress: Progress | None = None, device: str | None = None, quality: bool = True, backbone: str = "resnet18",
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Network features (n, dim) float32 for one split (``backbone``: resnet18 = 512-d), resumable via chunk files
    in ``out_dir``.

    Returns the features and (index, reason) for images that failed to decode (their rows are NaN). Unless
    ``quality`` is off (a benchmark baseline), the quality rows of each file chunk are written beside it
    (:func:`coreclean.embedding.quality_pass.quality_split` reads them).
    """
    n = len(dataset.labels(split))
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = None
    chunks, failures = [], []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk_file, fail_file = out_dir / f"chunk_{start:09d}.npy", out_dir / f"chunk_{start:09d}.failed.json"
        if not chunk_file.exists():
            if loaded is None:
                loaded = load_backbone(backbone, weights, device)
            embed_chunk(dataset, split, out_dir, start, stop, loaded, batch_size=batch_size,
                        quality=quality, progress=(lambda done: progress(done, n)) if progress else None)
        elif progress:
            progress(stop, n)
        chunks.append(np.load(chunk_file, allow_pickle=False))
        failures += [tuple(f) for f in json.loads(fail_file.read_text())] if fail_file.exists() else []
    return (np.concatenate(chunks) if chunks else np.zeros((0, 512), np.float32)), failures


def embed_chunk(dataset: Dataset, split: str, out_dir: Path, start: int, stop: int, backbone: tuple, *,
                batch_size: int = 64, quality: bool = True, progress: Callable[[int], None] | None = None) -> None:
    """Embed rows [start, stop) of ``split`` with ``backbone`` (model, preprocess, device) into
    ``chunk_<start>.npy`` (NaN rows for images that failed, listed in ``chunk_<start>.failed.json``) and their
    quality rows; the chunk file is written last, so its presence marks the chunk done."""
    import torch

    model, preprocess, device, dim = backbone
    model = prepare_model(model)  # a no-op for load_backbone's; dask workers load with resnet18_backbone
    stage = Preprocessing(preprocess, threads=PREPROCESS_THREADS)
    chunk_file = out_dir / f"chunk_{start:09d}.npy"
    feats = np.full((stop - start, dim), np.nan, dtype=np.float32)
    quality_rows = np.full((stop - start, len(RAW_COLUMNS)), np.nan, dtype=np.float32)
    failed = []
    batches = [range(b, min(b + batch_size, stop)) for b in range(start, stop, batch_size)]
    cuda = torch.device(device).type == "cuda"
    workers = 1 if cuda else CPU_DECODE_THREADS or torch.get_num_threads()
    with ThreadPoolExecutor(workers, thread_name_prefix="coreclean-decode") if workers > 1 else nullcontext() as pool:
        decoded = _prefetched(lambda indices: _decode_batch(dataset, split, indices, stage, quality, pool), batches,
                              GPU_DECODE_THREADS if cuda else CPU_PREFETCH)
        for indices, (items, rows, scored, bad) in zip(batches, decoded):
            failed += bad
            rows = [i - start for i in rows]
            for i, scores in scored.items():
                quality_rows[i - start] = scores
            if items:
                feats[rows] = forward(model, stage.batch(items, device))
            if progress:
                progress(indices.stop)
    if quality and dataset.images(split) is None:  # in-memory pixels are scored at once, by quality_split
        save_npy(quality_file(out_dir, start), quality_rows)  # before the chunk, which marks it done
    (out_dir / f"chunk_{start:09d}.failed.json").write_text(json.dumps(failed))
    save_npy(chunk_file, feats)


def _precomputed(dataset: Dataset, work_dir: Path, *, weights=None, pca=None, progress=None):
    return dataset.features_train, dataset.features_test, []  # memmaps: copied file to file into the cache


def _pixels(dataset: Dataset, work_dir: Path, *, weights=None, pca: int | None = 128, progress=None):
    x_train, x_test = pixel_features(dataset.pixels_train, dataset.pixels_test, pca=pca)
    if progress:
        progress(len(x_train) + len(x_test), len(x_train) + len(x_test))
    return x_train, x_test, []


def _network(dataset: Dataset, work_dir: Path, *, backbone: str = "resnet18", weights=None, pca=None,
             progress=None):
    total = len(dataset.y_train) + len(dataset.y_test)
    failures, parts, offset = [], [], 0
    for split in ("train", "test"):
        report = (lambda done, _n, base=offset: progress(base + done, total)) if progress else None
        x, failed = embed_split(dataset, split, work_dir / f"embed-{split}", weights=weights, progress=report,
                                backbone=backbone)
        parts.append(x)
        failures += [(split, i, reason) for i, reason in failed]
        offset += len(dataset.labels(split))
    return parts[0], parts[1], failures


def check_backbone(dataset: Dataset, backbone: str) -> str:
    """``backbone`` if the registry knows it and it can embed ``dataset``; else ``ValueError`` saying what fits."""
    kind = registry.kind(backbone)
    if kind == "precomputed" and dataset.features_train is None:
        raise ValueError(f"{dataset.name}: the precomputed backbone needs an embeddings directory (x_train.npy ...); "
                         "for images use --backbone resnet18.")
    if kind in ("pixels", "cnn") and dataset.pixels_train is None:
        raise ValueError(f"{dataset.name}: the {kind} backbone needs in-memory images (digits, fashion-mnist); use "
                         "--backbone resnet18 or another network.")
    if kind in ("torchvision", "clip") and dataset.pixels_train is None and dataset.paths_train is None:
        raise ValueError(f"{dataset.name}: the {backbone} backbone needs images; this source has embeddings only "
                         "(use --backbone precomputed).")
    return backbone


def default_backbone(dataset: Dataset) -> str:
    """The backbone a source gets unless asked otherwise."""
    return {"embeddings": "precomputed", "pixels": "pixels", "files": "resnet18"}[dataset.kind]


def embed(
    dataset: Dataset, backbone: str, work_dir: Path, *, weights=None, pca: int | None = 128,
    progress: Progress | None = None, stage_progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, str]]]:
    """Features for both splits: (x_train (n, d), x_test (m, d), failures as (split, index, reason)).

    ``progress(done, total)`` counts images over both splits, so one bar reaches 100 %; the cnn backbone also
    reports each fold as a stage of its own through ``stage_progress(stage, done, total)``.
    """
    kind = registry.kind(check_backbone(dataset, backbone))
    if kind == "precomputed":
        return _precomputed(dataset, Path(work_dir))
    if kind == "pixels":
        return _pixels(dataset, Path(work_dir), pca=pca, progress=progress)
    if kind == "cnn":
        from .crossfit_cnn import cnn_features

        return cnn_features(dataset, Path(work_dir), progress=progress, stage_progress=stage_progress)
    return _network(dataset, Path(work_dir), backbone=backbone, weights=weights, progress=progress)
