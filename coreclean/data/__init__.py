"""Sources: turn what a user points at into a :class:`Dataset` (arrays or file paths, plus class names).

``load_source(spec, cache_dir=...)`` accepts

* ``digits`` — scikit-learn's embedded 8x8 digits (default; offline, no setup), stratified 80/20 split.
* ``fashion-mnist[:DIR]`` — IDX ``.gz`` files, default DIR ``/usr/share/datasets/fashion-mnist``.
* ``DIR`` with ``x_train.npy`` — precomputed embeddings (:mod:`.embeddings_dir`).
* ``DIR`` otherwise — an ImageFolder tree (:mod:`.image_folder`).
* ``gdrive:FOLDER_URL`` — a shared Google-Drive folder in the embeddings layout (:mod:`.gdrive`), downloaded under
  ``cache_dir``.
"""
from __future__ import annotations

from pathlib import Path

from ..config import cache_dir as default_cache_dir
from .dataset import Dataset
from .fashion_mnist import FASHION_MNIST_DIR

__all__ = ["Dataset", "FASHION_MNIST_DIR", "load_source"]


def load_source(spec: str, *, cache_dir: str | Path | None = None) -> Dataset:
    """Load the dataset named by ``spec`` (see module docstring); ``ValueError`` with the fix on bad input."""
    spec = spec.strip()
    if spec == "digits":
        from .digits import load_digits

        return load_digits()
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        from .fashion_mnist import load_fashion_mnist

        return load_fashion_mnist(Path(spec.partition(":")[2] or FASHION_MNIST_DIR))
    if spec.startswith("gdrive:"):
        from .gdrive import load_gdrive

        return load_gdrive(spec.partition(":")[2], default_cache_dir(cache_dir))
    path = Path(spec).expanduser()
    try:
        is_dir = path.is_dir()
        has_embeddings = is_dir and (path / "x_train.npy").exists()
    except OSError as err:  # too long, no permission, a special file system
        raise ValueError(f"{spec[:200]}: cannot be opened ({err.strerror or err}); pick a readable directory.") from err
    if not is_dir:
        raise ValueError(
            f"{spec[:200]}: not a known source. Use 'digits', 'fashion-mnist[:DIR]', an ImageFolder directory or a "
            "directory with x_train.npy/y_train.npy/x_test.npy/y_test.npy."
        )
    if has_embeddings:
        from .embeddings_dir import load_embeddings_dir

        return load_embeddings_dir(path)
    from .image_folder import load_image_folder

    return load_image_folder(path)
