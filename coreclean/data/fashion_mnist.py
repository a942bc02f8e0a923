"""Fashion-MNIST from its IDX ``.gz`` files (Debian's ``dataset-fashion-mnist`` installs them)."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

from .dataset import Dataset

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]


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
