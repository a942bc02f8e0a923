"""Turn what a user points at into arrays and class names.

Sources (``load_source(spec)``):

* ``digits`` — scikit-learn's embedded 8x8 digits (default; offline, no setup), stratified 80/20 split.
* ``fashion-mnist[:DIR]`` — IDX ``.gz`` files, default DIR ``/usr/share/datasets/fashion-mnist``.
* ``DIR`` with ``x_train.npy`` — precomputed embeddings (see :mod:`coreclean.embeddings_dir`).
* ``DIR`` otherwise — an ImageFolder tree (see :mod:`coreclean.image_folder`).
* ``gdrive:FOLDER_URL`` — a shared Google-Drive folder in the embeddings layout (see :mod:`coreclean.gdrive`).
"""
from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


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
        if self.features_train is not None:
            return "embeddings"
        return "pixels" if self.pixels_train is not None else "files"


def load_source(spec: str) -> Dataset:
    """Load the dataset named by ``spec`` (see module docstring); raises ``ValueError`` with the fix on bad input."""
    spec = spec.strip()
    if spec == "digits":
        return load_digits()
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        directory = spec.partition(":")[2] or str(FASHION_MNIST_DIR)
        return load_fashion_mnist(Path(directory))
    if spec.startswith("gdrive:"):
        from .analysis import DEFAULT_CACHE
        from .gdrive import load_gdrive

        return load_gdrive(spec.partition(":")[2], DEFAULT_CACHE)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"{spec}: not a known source. Use 'digits', 'fashion-mnist[:DIR]', an ImageFolder directory or a "
            "directory with x_train.npy/y_train.npy/x_test.npy/y_test.npy."
        )
    if (path / "x_train.npy").exists():
        from .embeddings_dir import load_embeddings_dir

        return load_embeddings_dir(path)
    from .image_folder import load_image_folder

    return load_image_folder(path)


def load_digits(test_size: float = 0.2, random_state: int = 0) -> Dataset:
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


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX (MNIST format) file, gzipped or not, validating its header against its size."""
    if not path.exists():
        raise ValueError(f"{path}: missing. Install Fashion-MNIST with 'apt-get install -y dataset-fashion-mnist' "
                         "or pass fashion-mnist:DIR pointing at the four IDX .gz files.")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise ValueError(f"{path}: unreadable IDX file ({err}); re-download it.") from err
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number); re-download it.")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(f"{path}: truncated or padded ({len(raw)} bytes, header says {expected}); re-download it.")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(directory: Path = FASHION_MNIST_DIR) -> Dataset:
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(directory / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{directory}: {prefix} has {len(images)} images but {len(labels)} labels.")
        arrays[split] = (images, labels)
    digest = hashlib.sha256(arrays["train"][1].tobytes() + arrays["test"][1].tobytes()).hexdigest()[:16]
    return Dataset(
        name="fashion-mnist", classes=list(FASHION_MNIST_CLASSES),
        y_train=arrays["train"][1], y_test=arrays["test"][1],
        pixels_train=arrays["train"][0], pixels_test=arrays["test"][0],
        fingerprint=f"fashion-mnist:{directory.resolve()}:{digest}",
    )


def files_fingerprint(root: Path, relative_paths: list[str]) -> str:
    """Cheap content identity for a file tree: names, sizes and modification times."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    for rel in relative_paths:
        stat = (root / rel).stat()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
