"""Per-image quality statistics from already-decoded pixels (the first pass of ``coreclean.quality.thresholds``).

``image_scores(image)`` takes one decoded image (PIL, or a uint8/uint16/float array (H, W), (H, W, 1), (H, W, 3),
(H, W, 4)) and returns one float32 row in ``RAW_COLUMNS`` order: the original width and height, then five
severities in [0, 1] (higher = worse) that need no other image: dark, light, blurry, low_information, grayscale.
``array_scores(pixels)`` does the same for a stack of in-memory images (n, H, W[, C]) at once, with identical
numbers. Nothing here opens a file.

The statistics are taken on a copy whose longer side is ``ANALYSIS_SIDE`` pixels (``Image.reduce`` by an integer
factor, then a box resize: under a millisecond for a 500x375 RGB image); smaller images are used as they are.
Images are judged as the embedding sees them (``convert("RGB")``: alpha dropped, palette expanded); 16-bit and
float images are first scaled by their nominal range (65535, 255 or 1).
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter1d

ANALYSIS_SIDE = 128  # longer side of the copy the statistics are computed on
BLUR_WINDOW = 5  # re-blur window (pixels at ANALYSIS_SIDE) of the Crete et al. blur metric
GRAY_LEVELS = 3.0  # 99th-percentile channel spread (of 255) at which the grayscale score is 1/e
ENTROPY_BITS = 6.0  # entropy of a uniform 64-bin histogram
RAW_COLUMNS = ("width", "height", "dark", "light", "blurry", "low_information", "grayscale")
_BATCH = 4096  # images per vectorized step of array_scores (bounds its memory)


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit integer / float pixels to uint8 by their nominal range (65535, 255 or 1)."""
    values = np.nan_to_num(values.astype(np.float32))
    top = float(values.max()) if values.size else 0.0
    if mode == "F":
        full = 1.0 if top <= 1.0 else (255.0 if top <= 255 else 65535.0)
    else:  # an 'I' image holding 8-bit values stays on the 8-bit scale
        full = 65535.0 if mode.startswith("I;16") or top > 255 else 255.0
    return np.clip(values * (255.0 / full), 0, 255).astype(np.uint8)


def _uint8_array(array: np.ndarray, name: str, batched: bool) -> np.ndarray:
    """uint8 (..., H, W) or (..., H, W, 3) view of an array image (alpha and a single channel axis dropped)."""
    lead = 1 if batched else 0
    if array.ndim == lead + 3 and array.shape[-1] in (1, 4):
        array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    if not (array.ndim == lead + 2 or array.ndim == lead + 3 and array.shape[-1] == 3) or array.size == 0:
        shapes = "(n, H, W[, C])" if batched else "(H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        raise ValueError(f"{name}: array of shape {array.shape}; pass {shapes} with C in 1, 3, 4.")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "uif":
        raise ValueError(f"{name}: array dtype {array.dtype}; pass uint8 (or uint16 / float) pixels.")
    return _scale_to_uint8(array, "I;16" if array.dtype == np.uint16 else "F" if array.dtype.kind == "f" else "I")


def _as_pil(image) -> Image.Image:
    """An RGB or L PIL image of the pixels the embedding sees (alpha dropped, palette expanded, 16 bit scaled)."""
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(_uint8_array(image, "image", batched=False)))
    if not isinstance(image, Image.Image):
        raise ValueError(f"image: got {type(image).__name__}; pass a decoded PIL image or a numpy array.")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"image: size {image.size}; an image needs at least one pixel.")
    if image.mode in ("RGB", "L"):
        return image
    if image.mode.startswith("I") or image.mode == "F":
        return Image.fromarray(_scale_to_uint8(np.asarray(image), image.mode))
    if image.mode in ("1", "LA", "La"):
        return image.convert("L")
    return image.convert("RGB")  # P, PA, RGBA, RGBa, RGBX, CMYK, YCbCr, LAB, HSV


def _thumbnail(image: Image.Image) -> Image.Image:
    """Copy with longer side ANALYSIS_SIDE (no upscaling): integer ``reduce`` (cheap box) then a small box resize."""
    side = max(image.size)
    if side <= ANALYSIS_SIDE:
        return image
    factor = side // ANALYSIS_SIDE
    if factor > 1:
        image = image.reduce(factor)
    scale = ANALYSIS_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BOX)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """PIL's ``convert("L")`` (ITU-R 601, fixed point), bit-exact, for (..., 3) uint8."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _histograms(values: np.ndarray) -> np.ndarray:
    """(n, 256) counts of the uint8 values of each of the n images in ``values`` (n, ...)."""
    n = len(values)
    flat = values.reshape(n, -1).astype(np.int64) + 256 * np.arange(n)[:, None]
    return np.bincount(flat.ravel(), minlength=256 * n).reshape(n, 256)


def _quantile(hist: np.ndarray, q: float) -> np.ndarray:
    """(n,) q-quantile (0..1) of each row's uint8 values from its 256-bin histogram, as a fraction of 255."""
    cdf = np.cumsum(hist, axis=1)
    return (cdf < q * cdf[:, -1:]).sum(axis=1) / 255.0


def _blur(gray: np.ndarray) -> np.ndarray:
    """(n,) Crete et al. (2007) blur of float images (n, h, w): per axis, the share of absolute neighbour
    differences that a box re-blur leaves in place; the larger axis wins. 0 without any edge (that is low
    information, not blur)."""
    result = np.zeros(len(gray))
    for axis in (1, 2):
        if gray.shape[axis] < 2:
            continue
        sharp = np.abs(np.diff(gray, axis=axis))
        total = sharp.sum(axis=(1, 2))
        smooth = np.abs(np.diff(uniform_filter1d(gray, BLUR_WINDOW, axis=axis, mode="nearest"), axis=axis))
        lost = np.maximum(sharp - smooth, 0).sum(axis=(1, 2))
        edges = total > 1e-6 * sharp[0].size
        result = np.maximum(result, np.where(edges, (total - lost) / np.where(edges, total, 1.0), 0.0))
    return result


def _severities(gray: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """(n, 5) dark, light, blurry, low_information, grayscale of same-sized small images: gray (n, h, w) uint8
    and, for colour images, rgb (n, h, w, 3) uint8."""
    hist = _histograms(gray)
    coarse = hist.reshape(len(gray), 64, 4).sum(axis=2) / gray[0].size
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(coarse > 0, coarse * np.log2(coarse), 0.0).sum(axis=1)
    contrast = _quantile(hist, 0.99) - _quantile(hist, 0.01)
    if rgb is None:
        grayscale = np.ones(len(gray))
    else:
        red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # 15x faster than max(axis=-1)
        spread = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
        grayscale = np.exp(-_quantile(_histograms(spread), 0.99) * 255 / GRAY_LEVELS)
    return np.column_stack([
        1.0 - _quantile(hist, 0.99), _quantile(hist, 0.05), _blur(gray.astype(np.float32)),
        1.0 - np.maximum(entropy / ENTROPY_BITS, contrast).clip(0, 1), grayscale])


def image_scores(image) -> np.ndarray:
    """Raw quality row (len(RAW_COLUMNS),) float32 of one decoded image: width, height (original pixels), then the
    severities dark, light, blurry, low_information, grayscale (see ``coreclean.quality.thresholds.ISSUES``).

    Raises ValueError for something that is not an image (wrong type, empty, unsupported array shape/dtype).
    """
    pil = _as_pil(image)
    width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
    pixels = np.asarray(_thumbnail(pil))
    gray, rgb = (pixels, None) if pixels.ndim == 2 else (_luma(pixels), pixels)
    severities = _severities(gray[None], None if rgb is None else rgb[None])[0]
    return np.concatenate([[width, height], severities]).astype(np.float32)


def array_scores(pixels: np.ndarray) -> np.ndarray:
    """Raw quality rows (n, len(RAW_COLUMNS)) float32 of in-memory images ``pixels`` (n, H, W), (n, H, W, 1),
    (n, H, W, 3) or (n, H, W, 4) — the same numbers as ``image_scores`` on each image, vectorized when
    max(H, W) <= ANALYSIS_SIDE (60,000 Fashion-MNIST images: 2.7 s on 2 shared cores, vs 21 s image by image)."""
    pixels = np.asarray(pixels)
    if pixels.ndim < 3:
        raise ValueError(f"pixels: array of shape {pixels.shape}; pass (n, H, W[, C]) with C in 1, 3, 4.")
    if max(pixels.shape[1:3]) > ANALYSIS_SIDE:  # needs the per-image downscale
        return np.stack([image_scores(image) for image in pixels]) if len(pixels) else np.zeros((0, 7), np.float32)
    rows = [np.zeros((0, len(RAW_COLUMNS)), np.float32)]
    for start in range(0, len(pixels), _BATCH):
        chunk = _uint8_array(pixels[start:start + _BATCH], "pixels", batched=True)
        gray, rgb = (chunk, None) if chunk.ndim == 3 else (_luma(chunk), chunk)
        size = np.broadcast_to(np.array([chunk.shape[2], chunk.shape[1]], np.float64), (len(chunk), 2))
        rows.append(np.column_stack([size, _severities(gray, rgb)]).astype(np.float32))
    return np.concatenate(rows)
