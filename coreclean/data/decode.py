"""Decoding images the same way everywhere (scan, embedding, display): bounded size, any bit depth, any shape.

PIL's own ``convert("RGB")`` clips 16-bit and 32-bit images to white and its decompression-bomb check raises an
exception type outside ``OSError``; both are handled here once, so one odd file is a reason in a list, never a
lost build or a blank tile.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

MAX_PIXELS = 64_000_000  # larger images are refused before decoding (a 20000 x 20000 PNG would need 1.2 GB)


class UnreadableImage(ValueError):
    """The file is not an image coreclean can decode; the message says why."""


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` with the size guard; every way a file can fail becomes :class:`UnreadableImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(image)
                yield image
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as err:
        raise UnreadableImage(f"too large to decode safely ({err}); downscale the file") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableImage(f"unreadable image: {err}") from err


def check_image(path: Path) -> None:
    """Cheap header check (no full decode): raises :class:`UnreadableImage` with the reason."""
    with _opened(path) as image:
        image.verify()


def open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` to an 8-bit RGB image (16-bit and float images rescaled to their range, not clipped)."""
    return open_image(path, rgb=True)


def open_image(path: Path, *, rgb: bool = False) -> Image.Image:
    """Decode ``path`` fully, in its own mode ('L', 'P', 'I;16', 'RGBA' ...) unless ``rgb``; pass the result to
    :func:`to_rgb` for the embedding. The quality statistics read the image as decoded (one decode serves both)."""
    with _opened(path) as image:
        image.load()
        return to_rgb(image) if rgb else image


def open_reduced(path: Path, needed: Callable[[tuple[int, int]], tuple[int, int]],
                 ) -> tuple[Image.Image, tuple[int, int], int]:
    """Decode ``path`` like :func:`open_image`, a JPEG at 1/2, 1/4 or 1/8 scale where the result stays at least
    ``needed(full_size)`` = (width, height) pixels; returns (image, full_size, factor), factor 1 at full size.

    libjpeg's DCT scaling (PIL's ``draft``) skips most of the decode work; the reduced image is a low-pass copy of
    the full one (pixel i covers the file's pixels [i * factor, (i + 1) * factor)), so a consumer that downsamples
    anyway gets nearly the same pixels (the embedding's tolerance: docs/benchmarks.md section 4). Other formats are
    decoded at full size."""
    with _opened(path) as image:
        full_size, factor = image.size, 1
        if isinstance(image, JpegImageFile):  # JPEG and camera MPO files
            drafted = image.draft(None, needed(full_size))  # None: a JPEG PIL cannot scale (several tiles)
            if drafted is not None:
                factor = round(full_size[0] / drafted[1][2])  # draft's box: (0, 0, width / factor, ...)
        image.load()
        return image, full_size, factor


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB version of ``image``; high-bit-depth modes ('I', 'I;16', 'F') are min-max scaled to 0..255."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def tile(image: Image.Image, px: int) -> Image.Image:
    """``image`` fitted into a ``px`` x ``px`` square (aspect kept, at least 1 pixel each way, small images
    enlarged by whole factors so pixels stay sharp), centred on a neutral background."""
    image = to_rgb(image)
    scale = min(px / image.width, px / image.height)
    if scale >= 2:
        scale = float(int(scale))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resample = Image.NEAREST if scale >= 1 else Image.BILINEAR
    resized = image.resize(size, resample) if size != image.size else image
    canvas = Image.new("RGB", (px, px), (240, 242, 246))
    canvas.paste(resized, ((px - size[0]) // 2, (px - size[1]) // 2))
    return canvas


def _check_size(image: Image.Image) -> None:
    if image.width * image.height > MAX_PIXELS:
        raise UnreadableImage(f"{image.width}x{image.height} pixels is too large (limit {MAX_PIXELS:,}); "
                              "downscale the file")
    if image.width < 1 or image.height < 1:
        raise UnreadableImage(f"{image.width}x{image.height}: empty image")
