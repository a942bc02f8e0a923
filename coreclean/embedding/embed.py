"""Backbones (one registry, :data:`BACKBONES`) and batched feature extraction.

* ``precomputed``: the source's own embeddings, kept memory-mapped.
* ``pixels``: standardized raw pixels, PCA to ``pca`` components (fit on train) — for tiny grayscale sets.
* ``resnet18``: torchvision ResNet18 without its classification layer (512-d), ImageNet preprocessing from the
  weights enum. ``weights``: ``"imagenet"`` (the torchvision enum; downloads once on an online machine), a path to
  a saved ``state_dict`` (offline), or ``None`` (random init; tests only).

ResNet features are computed in chunks written to disk, so an interrupted run resumes at the first missing chunk.

Image quality (:mod:`coreclean.quality.thresholds`) rides on the same decode: the ResNet loop scores every image file as
decoded (before RGB conversion) and writes its rows (``RAW_COLUMNS``) to ``quality_<start>.npy`` beside
``chunk_<start>.npy``; :mod:`coreclean.embedding.quality_pass` reads them back and covers the sources this loop never decodes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..data.files import inside, save_npy
from ..data.dataset import Dataset
from ..data.decode import UnreadableImage, open_image, to_rgb
from ..quality.thresholds import RAW_COLUMNS, image_scores

Progress = Callable[[int, int], None]
CHUNK = 2048
# torch threads while decoding and preprocessing (None: leave torch's setting). Preprocessing runs small tensor ops
# whose extra threads mostly wait for time slices on a busy machine: bench/quality.py (d) measures the difference.
PREPROCESS_THREADS: int | None = 1


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


def weights_file(weights: str | Path) -> Path:
    """The state_dict file named by ``weights``, or ``ValueError`` saying how to make one."""
    path = Path(weights)
    try:
        found = path.is_file()
    except OSError:
        found = False
    if not found:
        raise ValueError(f"{path}: weights file not found; on an online machine save one with "
                         "torch.save(torchvision.models.resnet18(weights='IMAGENET1K_V1').state_dict(), 'r18.pt').")
    return path


def weights_identity(weights: str | Path | None) -> str | None:
    """What identifies ``weights`` in a cache key: None, 'imagenet', or the sha256 of the weights file."""
    from ..data.files import file_digest

    if weights is None or weights == "imagenet":
        return weights
    return file_digest(weights_file(weights))


def resnet18_backbone(weights: str | Path | None, device: str | None = None):
    """(model, preprocess, device): ResNet18 with ``fc`` removed, in eval mode.

    ``weights="imagenet"`` downloads torchvision's enum weights once (online machines); offline the download fails
    and the error says how to pass a weights file instead.
    """
    import torch
    from torchvision.models import ResNet18_Weights, resnet18

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    enum = ResNet18_Weights.IMAGENET1K_V1
    if weights == "imagenet":
        try:
            model = resnet18(weights=enum)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise ValueError(f"could not download the ImageNet weights ({err}). Offline, pass --weights FILE: a "
                             "ResNet18 state_dict saved on an online machine with torch.save(torchvision.models."
                             "resnet18(weights='IMAGENET1K_V1').state_dict(), 'r18.pt').") from err
    else:
        model = resnet18(weights=None)
        if weights is not None:
            path = weights_file(weights)
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            except Exception as err:  # torch raises several types for a bad file
                raise ValueError(f"{path}: not a ResNet18 state_dict ({err}).") from err
    model.fc = torch.nn.Identity()
    return model.eval().to(device), enum.transforms(), device


def _open_image(dataset: Dataset, split: str, index: int, quality: bool) -> tuple[Image.Image, np.ndarray | None]:
    """(RGB image for the backbone, quality row of the image as decoded — None for in-memory pixels or when
    ``quality`` is off)."""
    pixels = dataset.images(split)
    if pixels is not None:
        return Image.fromarray(pixels[index]).convert("RGB"), None
    image = open_image(image_file(dataset, split, index))
    return to_rgb(image), image_scores(image) if quality else None


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


def _prepare(dataset: Dataset, split: str, indices: range, preprocess, quality: bool):
    """Decode and preprocess one batch: (tensors, their indices, {index: quality row}, [(index, reason)])."""
    import torch

    threads = torch.get_num_threads()
    if PREPROCESS_THREADS:
        torch.set_num_threads(PREPROCESS_THREADS)
    tensors, rows, scored, failed = [], [], {}, []
    try:
        for i in indices:
            try:
                image, scores = _open_image(dataset, split, i, quality)
                tensors.append(preprocess(image))
            except (UnreadableImage, OSError, ValueError) as err:
                failed.append((i, _failure(err)))
                continue
            rows.append(i)
            if scores is not None:
                scored[i] = scores
    finally:
        torch.set_num_threads(threads)
    return tensors, rows, scored, failed


def _failure(err: Exception) -> str:
    return str(err) if isinstance(err, UnreadableImage) else f"{type(err).__name__}: {err}"


def quality_file(out_dir: Path, start: int) -> Path:
    """Where the quality rows of the chunk starting at ``start`` live (beside ``chunk_<start>.npy``)."""
    return out_dir / f"quality_{start:09d}.npy"


def embed_split(
    dataset: Dataset, split: str, out_dir: Path, *, weights=None, batch_size: int = 64,
    progress: Progress | None = None, device: str | None = None, quality: bool = True,
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """ResNet18 features (n, 512) float32 for one split, resumable via chunk files in ``out_dir``.

    Returns the features and (index, reason) for images that failed to decode (their rows are NaN). Unless
    ``quality`` is off (a benchmark baseline), the quality rows of each file chunk are written beside it
    (:func:`coreclean.embedding.quality_pass.quality_split` reads them).
    """
    n = len(dataset.labels(split))
    out_dir.mkdir(parents=True, exist_ok=True)
    model = preprocess = None
    chunks, failures = [], []
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        chunk_file, fail_file = out_dir / f"chunk_{start:09d}.npy", out_dir / f"chunk_{start:09d}.failed.json"
        if not chunk_file.exists():
            if model is None:
                model, preprocess, device = resnet18_backbone(weights, device)
            embed_chunk(dataset, split, out_dir, start, stop, (model, preprocess, device), batch_size=batch_size,
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

    model, preprocess, device = backbone
    chunk_file = out_dir / f"chunk_{start:09d}.npy"
    feats = np.full((stop - start, 512), np.nan, dtype=np.float32)
    quality_rows = np.full((stop - start, len(RAW_COLUMNS)), np.nan, dtype=np.float32)
    failed = []
    for b in range(start, stop, batch_size):
        tensors, rows, scored, bad = _prepare(dataset, split, range(b, min(b + batch_size, stop)), preprocess,
                                              quality)
        failed += bad
        rows = [i - start for i in rows]
        for i, scores in scored.items():
            quality_rows[i - start] = scores
        if tensors:
            with torch.inference_mode():
                feats[rows] = model(torch.stack(tensors).to(device)).float().cpu().numpy()
        if progress:
            progress(min(b + batch_size, stop))
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


def _resnet18(dataset: Dataset, work_dir: Path, *, weights=None, pca=None, progress=None):
    total = len(dataset.y_train) + len(dataset.y_test)
    failures, parts, offset = [], [], 0
    for split in ("train", "test"):
        report = (lambda done, _n, base=offset: progress(base + done, total)) if progress else None
        x, failed = embed_split(dataset, split, work_dir / f"embed-{split}", weights=weights, progress=report)
        parts.append(x)
        failures += [(split, i, reason) for i, reason in failed]
        offset += len(dataset.labels(split))
    return parts[0], parts[1], failures


BACKBONES = {"resnet18": _resnet18, "pixels": _pixels, "precomputed": _precomputed}


def check_backbone(dataset: Dataset, backbone: str) -> str:
    """``backbone`` if it is known and can embed ``dataset``; else ``ValueError`` saying what fits."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r}: choose one of {', '.join(BACKBONES)}.")
    if backbone == "precomputed" and dataset.features_train is None:
        raise ValueError(f"{dataset.name}: the precomputed backbone needs an embeddings directory (x_train.npy ...); "
                         "for images use --backbone resnet18.")
    if backbone == "pixels" and dataset.pixels_train is None:
        raise ValueError(f"{dataset.name}: the pixels backbone needs in-memory images; use --backbone resnet18.")
    if backbone == "resnet18" and dataset.pixels_train is None and dataset.paths_train is None:
        raise ValueError(f"{dataset.name}: the resnet18 backbone needs images; this source has embeddings only "
                         "(use --backbone precomputed).")
    return backbone


def default_backbone(dataset: Dataset) -> str:
    """The backbone a source gets unless asked otherwise."""
    return {"embeddings": "precomputed", "pixels": "pixels", "files": "resnet18"}[dataset.kind]


def embed(
    dataset: Dataset, backbone: str, work_dir: Path, *, weights=None, pca: int | None = 128,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, str]]]:
    """Features for both splits: (x_train (n, d), x_test (m, d), failures as (split, index, reason)).

    ``progress(done, total)`` counts images over both splits, so one bar reaches 100 %.
    """
    return BACKBONES[check_backbone(dataset, backbone)](dataset, Path(work_dir), weights=weights, pca=pca, progress=progress)
