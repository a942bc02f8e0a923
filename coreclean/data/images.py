"""Safe image access for display: a PIL image for a sample index, never read from outside the dataset root."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .files import inside
from .decode import UnreadableImage, open_rgb


class ImageUnavailable(Exception):
    """The sample has no image to show; the message says why (for a placeholder tile)."""


def image_for(analysis, index: int, split: str = "train") -> Image.Image:
    """The image of sample ``index`` of ``split`` ('train'|'test') of a built :class:`~coreclean.Analysis`.

    Rendered from stored pixel arrays (digits, Fashion-MNIST) or read from the file under the dataset root.
    Raises :class:`ImageUnavailable` with the reason (never a server path) when there is nothing safe to show.
    """
    if split not in ("train", "test"):
        raise ImageUnavailable(f"split={split!r}: expected 'train' or 'test'")
    n = len(analysis.y_train if split == "train" else analysis.y_test)
    if not 0 <= int(index) < n:
        raise ImageUnavailable(f"index {index} out of range 0..{n - 1}")
    pixels = analysis.stack(f"images_{split}")
    if pixels is not None:
        return Image.fromarray(np.asarray(pixels[int(index)]))
    paths = analysis.stack(f"paths_{split}")
    root = analysis.meta.get("root")
    if paths is None or not root:
        raise ImageUnavailable("this analysis has embeddings only (no images or image paths)")
    relative = str(paths[int(index)])
    file = Path(root) / relative
    if not inside(Path(root), file):
        raise ImageUnavailable(f"{relative}: outside the dataset root; refused")
    if not file.is_file():
        raise ImageUnavailable(f"{relative}: file not found in the dataset")
    try:
        return open_rgb(file)
    except UnreadableImage as err:
        raise ImageUnavailable(f"{file.name}: {err}") from err
