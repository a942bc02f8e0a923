"""Precomputed-embeddings directories in the seed notebook's layout.

``x_train.npy`` (n, d), ``y_train.npy`` (n,), ``x_test.npy``, ``y_test.npy``; optional ``img_train.npy`` /
``img_test.npy`` (or ``.txt``, one path a line): image paths relative to the image root (``DIR/images`` if it
exists, else ``DIR``); optional ``classes.txt`` (one name a line) or ``classes.json`` (a list, or {id: name}).
Arrays are memory-mapped and never unpickled.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .files import files_fingerprint, listed_files, load_npy as _load_npy
from .validation import check_distance_scale, check_features_labels, check_test_arrays
from .dataset import Dataset

REQUIRED = ("x_train.npy", "y_train.npy", "x_test.npy", "y_test.npy")
LAYOUT = "the embeddings layout needs x_train.npy, y_train.npy, x_test.npy, y_test.npy"


def load_npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    return _load_npy(path, mmap=mmap, what=LAYOUT)


def imagenet_class_names() -> list[str]:
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def read_class_names(directory: Path, n_classes: int, n_distinct: int) -> list[str]:
    """Names from classes.txt/.json; ImageNet names when labels look like ImageNet ids; else "class i"."""
    txt, js = directory / "classes.txt", directory / "classes.json"
    if txt.exists():
        names = [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif js.exists():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{js}: invalid JSON ({err}); expected a list of names or {{id: name}}.") from err
        if isinstance(data, list):
            names = data
        elif isinstance(data, dict):
            names = [str(data.get(str(i), f"class {i}")) for i in range(n_classes)]
        else:
            raise ValueError(f"{js}: holds a {type(data).__name__}; expected a list of names or {{id: name}}.")
        names = [str(n) for n in names]
    elif n_classes <= 1000 and n_distinct > 100:
        return imagenet_class_names()[:max(n_classes, 1000)]
    else:
        return [f"class {i}" for i in range(n_classes)]
    if len(names) < n_classes:
        source = txt if txt.exists() else js
        raise ValueError(f"{source}: {len(names)} class names but labels go up to {n_classes - 1}; add the missing names.")
    return names


def _read_paths(directory: Path, split: str, expected: int) -> list[str] | None:
    npy, txt = directory / f"img_{split}.npy", directory / f"img_{split}.txt"
    if npy.exists():
        arr = load_npy(npy)
        if arr.dtype.kind not in "US":
            raise ValueError(f"{npy}: expected a string array of paths, got dtype {arr.dtype}.")
        paths = [str(p) for p in arr.reshape(-1)]
        source = npy
    elif txt.exists():
        paths = [line.rstrip("\n") for line in txt.read_text(encoding="utf-8").splitlines()]
        source = txt
    else:
        return None
    if len(paths) != expected:
        raise ValueError(f"{source}: {len(paths)} paths but {expected} samples; one path per sample, in order.")
    return paths


def load_embeddings_dir(directory: Path) -> Dataset:
    """Load and validate the whole layout up front (every row of both splits), before any long computation."""
    directory = directory.resolve()
    paths = {name: directory / name for name in REQUIRED}
    x_tr = load_npy(paths["x_train.npy"], mmap=True)
    _, y_tr = check_features_labels(x_tr, load_npy(paths["y_train.npy"]), x_name=str(paths["x_train.npy"]),
                                    y_name=str(paths["y_train.npy"]), min_classes=1, min_per_class=1)
    check_distance_scale(x_tr, str(paths["x_train.npy"]))  # the build's neighbours and outliers need it
    classes = read_class_names(directory, int(y_tr.max()) + 1, len(np.unique(y_tr)))
    x_te = load_npy(paths["x_test.npy"], mmap=True)
    _, y_te = check_test_arrays(x_te, load_npy(paths["y_test.npy"]), x_tr.shape[1], len(classes),
                                x_name=str(paths["x_test.npy"]), y_name=str(paths["y_test.npy"]))
    image_root = directory / "images" if (directory / "images").is_dir() else directory
    paths_train, paths_test = _read_paths(directory, "train", len(y_tr)), _read_paths(directory, "test", len(y_te))
    return Dataset(
        name=directory.name, classes=classes, y_train=y_tr, y_test=y_te,
        features_train=x_tr, features_test=x_te, paths_train=paths_train, paths_test=paths_test,
        root=image_root, fingerprint=f"embeddings:{files_fingerprint(directory, list(REQUIRED))}",
        skipped=unavailable_images(image_root, paths_train) + unavailable_images(image_root, paths_test),
    )


def unavailable_images(root: Path, paths: list[str] | None) -> list[tuple[str, str]]:
    """(path, reason) for each listed image that will never be shown: outside ``root`` (refused: nothing is read
    outside a dataset root) or not a file there. Its sample keeps its embedding; only its picture is left out."""
    reasons = {"outside": f"image outside the image root {root}; not shown",
               "missing": f"image missing under {root}; not shown"}
    return [(path, reasons[state]) for path, state in zip(paths or [], listed_files(root, paths or [])) if state]
