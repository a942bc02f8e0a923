"""Safe image access for the UI: a PIL image for a sample index, never read from outside the dataset root."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

MAX_PIXELS = 64_000_000  # refuse decompression bombs before decoding


class ImageUnavailable(Exception):
    """The sample has no image to show; the message says why (for a placeholder tile)."""


@lru_cache(maxsize=16)
def _stack(directory: str, name: str) -> np.ndarray | None:
    path = Path(directory) / f"{name}.npy"
    return np.load(path, allow_pickle=False, mmap_mode="r") if path.exists() else None


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, or ``ImageUnavailable`` when it escapes ``root`` (``..``, absolute, symlink)."""
    root = root.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise ImageUnavailable(f"{relative}: outside the dataset root {root}; refused")
    return candidate


def image_for(analysis, index: int, split: str = "train") -> Image.Image:
    """The image of sample ``index`` of ``split`` ('train'|'test') of a built :class:`Analysis`.

    Rendered from stored pixel arrays (digits, Fashion-MNIST) or read from the file under the dataset root.
    Raises :class:`ImageUnavailable` with the reason when there is nothing safe to show.
    """
    if split not in ("train", "test"):
        raise ImageUnavailable(f"split={split!r}: expected 'train' or 'test'")
    n = len(getattr(analysis, f"y_{split}"))
    if not 0 <= int(index) < n:
        raise ImageUnavailable(f"index {index} out of range 0..{n - 1}")
    directory = str(analysis.directory)
    pixels = _stack(directory, f"images_{split}")
    if pixels is not None:
        return Image.fromarray(np.asarray(pixels[int(index)]))
    paths = _stack(directory, f"paths_{split}")
    root = analysis.meta.get("root")
    if paths is None or not root:
        raise ImageUnavailable("this analysis has embeddings only (no images or image paths)")
    file = resolve_inside(Path(root), str(paths[int(index)]))
    if not file.is_file():
        raise ImageUnavailable(f"{paths[int(index)]}: file not found under {root}")
    try:
        with Image.open(file) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ImageUnavailable(f"{file.name}: {image.width}x{image.height} is too large to display")
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageUnavailable(f"{file.name}: unreadable image ({err})") from err
