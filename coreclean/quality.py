"""Image-quality issues (dark, light, blurry, low information, grayscale, odd size, odd aspect ratio).

Two passes, so that each image is decoded once, by the embedding loop:

1. ``image_scores(image)`` — called on every already-decoded image (a PIL image or a uint8/uint16 array
   (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)); returns one float32 row in ``RAW_COLUMNS`` order. The statistics
   are taken on a copy whose longer side is ``ANALYSIS_SIDE`` pixels (``Image.reduce`` then a box resize: about
   half a millisecond for a 500x375 RGB image), never on the full image.
2. ``dataset_scores(raw)`` — after all rows exist: (n, len(ISSUES)) severities, adding the two issues that are
   relative to the dataset (odd size, odd aspect ratio). ``flags(scores, thresholds)`` turns them into booleans.

Every score is a severity in [0, 1]: **higher means worse**, and an image is flagged when its score is above the
issue's threshold. (CleanVision / cleanlab Datalab scores run the other way: their ``dark_score`` is close to
``1 - ours``.) Images are judged as the embedding sees them: ``convert("RGB")`` semantics, so alpha is dropped;
16-bit and float images are scaled by their range first.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter1d

ANALYSIS_SIDE = 128  # longer side of the copy the statistics are computed on
BLUR_WINDOW = 5  # re-blur window (pixels at ANALYSIS_SIDE) of the Crete et al. blur metric
GRAY_LEVELS = 3.0  # 99th-percentile channel spread (of 255) at which the grayscale score is 1/e
SOURCE_KINDS = ("file", "memory")


@dataclass(frozen=True)
class IssueType:
    """One quality issue: flagged when ``score > threshold``; ``sources``: source kinds where it makes sense."""

    name: str
    threshold: float
    sources: frozenset
    description: str


_BOTH, _FILES = frozenset(SOURCE_KINDS), frozenset({"file"})
ISSUES: dict[str, IssueType] = {issue.name: issue for issue in (
    IssueType("dark", 0.68, _BOTH,
              "1 - brightness (luma, 0..1) of the 99th-percentile pixel: even the bright parts are dark."),
    IssueType("light", 0.68, _BOTH,
              "brightness (luma, 0..1) of the 5th-percentile pixel: even the dark parts are washed out."),
    IssueType("blurry", 0.55, _BOTH,
              "Crete et al. (2007) no-reference blur at 128 px: share of edge strength that survives a re-blur "
              "(0 sharp, 1 already as smooth as a re-blurred copy)."),
    IssueType("low_information", 0.6, _BOTH,
              "1 - entropy of the 64-bin luma histogram / 6 bits: near-constant images score close to 1."),
    IssueType("grayscale", 0.5, _FILES,
              "exp(-s / 3) with s the 99th-percentile max-min channel spread (of 255): 1 for neutral gray "
              "pixels everywhere, also for RGB files with equal channels."),
    IssueType("odd_size", 0.5, _FILES,
              "d / (d + w): d = |log2(sqrt(width*height) / dataset median)|, w = max(0.5, 3 * dataset IQR of that "
              "log2); 0.5 when an image is off the median by the width of the dataset's size spread."),
    IssueType("odd_aspect_ratio", 0.5, _FILES,
              "d / (d + w) as for odd_size, on the elongation |log2(width / height)| (orientation-free)."),
)}
ISSUE_NAMES = tuple(ISSUES)
# Row written by image_scores: the image's size, then the five severities that need no other image.
RAW_COLUMNS = ("width", "height", "dark", "light", "blurry", "low_information", "grayscale")
_PER_IMAGE = RAW_COLUMNS[2:]


def issue_names(source_kind: str | None = None) -> list[str]:
    """Issue names in column order; only those that make sense for ``source_kind`` ('file' or 'memory') if given."""
    if source_kind is None:
        return list(ISSUE_NAMES)
    _check_kind(source_kind)
    return [name for name, issue in ISSUES.items() if source_kind in issue.sources]


def _check_kind(source_kind: str) -> None:
    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source_kind={source_kind!r}: choose one of {', '.join(SOURCE_KINDS)}.")


def _scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit / 32-bit integer / float pixels to uint8 by their nominal range (65535, 255 or 1)."""
    values = np.nan_to_num(values.astype(np.float32))
    top = float(values.max()) if values.size else 0.0
    if mode == "F":
        full = 1.0 if top <= 1.0 else (255.0 if top <= 255 else 65535.0)
    else:  # an 'I' image holding 8-bit values stays on the 8-bit scale
        full = 65535.0 if mode.startswith("I;16") or top > 255 else 255.0
    return np.clip(values * (255.0 / full), 0, 255).astype(np.uint8)


def _as_pil(image) -> Image.Image:
    """An RGB or L PIL image of the pixels the embedding sees (alpha dropped, palette expanded, 16 bit scaled)."""
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] in (1, 3, 4):
            array = array[:, :, 0] if array.shape[2] == 1 else array[:, :, :3]
        if array.ndim not in (2, 3) or array.size == 0:
            raise ValueError(f"image: array of shape {image.shape}; pass (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).")
        if array.dtype != np.uint8:
            if array.dtype.kind not in "uif":
                raise ValueError(f"image: array dtype {array.dtype}; pass uint8 (or uint16 / float) pixels.")
            array = _scale_to_uint8(array, "I;16" if array.dtype == np.uint16 else "F" if array.dtype.kind == "f"
                                    else "I")
        return Image.fromarray(np.ascontiguousarray(array))
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


def _percentile(hist: np.ndarray, q: float) -> float:
    """q-quantile (0..1) of uint8 values from their 256-bin histogram, as a fraction of 255."""
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q * cdf[-1])) / 255.0


def _blur(gray: np.ndarray) -> float:
    """Crete et al. 2007: per axis, the share of absolute neighbour differences that a box re-blur does not remove;
    the larger of the two axes. 0 for images without any edge (those are low-information, not blurry)."""
    result = 0.0
    for axis in (0, 1):
        if gray.shape[axis] < 2:
            continue
        sharp = np.abs(np.diff(gray, axis=axis))
        total = float(sharp.sum())
        if total <= 1e-6 * sharp.size:
            continue
        smooth = np.abs(np.diff(uniform_filter1d(gray, BLUR_WINDOW, axis=axis, mode="nearest"), axis=axis))
        lost = float(np.maximum(sharp - smooth, 0).sum())
        result = max(result, (total - lost) / total)
    return result


def image_scores(image) -> np.ndarray:
    """Raw quality row (len(RAW_COLUMNS),) float32 of one decoded image: width, height (original pixels), then the
    severities dark, light, blurry, low_information, grayscale (see ``ISSUES``). Never opens or decodes a file.

    Raises ValueError for something that is not an image (wrong type, empty, unsupported array shape/dtype).
    """
    pil = _as_pil(image)
    width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
    small = _thumbnail(pil)
    pixels = np.asarray(small)
    gray = pixels if pixels.ndim == 2 else np.asarray(small.convert("L"))
    hist = np.bincount(gray.ravel(), minlength=256)
    coarse = hist.reshape(64, 4).sum(axis=1) / gray.size
    coarse = coarse[coarse > 0]
    entropy = float(-(coarse * np.log2(coarse)).sum())
    if pixels.ndim == 2:
        grayscale = 1.0
    else:
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]  # 15x faster than max(axis=2)
        spread = (np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)).ravel()
        grayscale = float(np.exp(-_percentile(np.bincount(spread, minlength=256), 0.99) * 255 / GRAY_LEVELS))
    row = (width, height, 1.0 - _percentile(hist, 0.99), _percentile(hist, 0.05),
           _blur(gray.astype(np.float32)), max(0.0, 1.0 - entropy / 6.0), grayscale)
    return np.asarray(row, dtype=np.float32)


def _relative(values: np.ndarray) -> np.ndarray:
    """d / (d + w) with d the distance to the median and w = max(0.5, 3 * IQR); NaN stays NaN."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(values.shape, np.nan)
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    distance = np.abs(values - median)
    return distance / (distance + max(0.5, 3.0 * (q3 - q1)))


def dataset_scores(raw: np.ndarray, *, source_kind: str = "file") -> np.ndarray:
    """Severities (n, len(ISSUE_NAMES)) float32 in [0, 1] from the stacked ``image_scores`` rows ``raw`` (n, 7).

    odd_size and odd_aspect_ratio are relative to the finite rows of ``raw``. Rows of images that failed to decode
    should be NaN and stay NaN. Issues that do not apply to ``source_kind`` are NaN (never flagged).
    """
    _check_kind(source_kind)
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(RAW_COLUMNS):
        raise ValueError(f"raw: shape {raw.shape}; stack image_scores rows into (n, {len(RAW_COLUMNS)}).")
    width, height = raw[:, 0], raw[:, 1]
    if np.any(np.isfinite(width) & ((width < 1) | (height < 1))):
        raise ValueError("raw: width/height below 1 pixel; the rows must come from image_scores.")
    with np.errstate(invalid="ignore", divide="ignore"):
        columns = {name: raw[:, RAW_COLUMNS.index(name)] for name in _PER_IMAGE}
        columns["odd_size"] = _relative(0.5 * np.log2(width * height))
        columns["odd_aspect_ratio"] = _relative(np.abs(np.log2(width / height)))
    scores = np.column_stack([columns[name] for name in ISSUE_NAMES]).astype(np.float32)
    for j, name in enumerate(ISSUE_NAMES):
        if source_kind not in ISSUES[name].sources:
            scores[:, j] = np.nan
    return scores


def thresholds(overrides: dict | None = None) -> dict[str, float]:
    """Default thresholds updated with ``overrides`` {issue name: value in [0, 1]}; unknown names raise."""
    result = {name: issue.threshold for name, issue in ISSUES.items()}
    for name, value in (overrides or {}).items():
        if name not in ISSUES:
            raise ValueError(f"thresholds: unknown issue {name!r}; choose from {', '.join(ISSUE_NAMES)}.")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"thresholds[{name!r}]={value!r}: pass a number in [0, 1].") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"thresholds[{name!r}]={value}: pass a number in [0, 1] (scores are severities).")
        result[name] = value
    return result


def flags(scores: np.ndarray, thresholds_: dict | None = None) -> np.ndarray:
    """Boolean (n, len(ISSUE_NAMES)): ``scores > threshold`` per issue (defaults, updated by ``thresholds_``);
    NaN scores (failed images, issues not applicable to the source) are never flagged."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape[1] != len(ISSUE_NAMES):
        raise ValueError(f"scores: shape {scores.shape}; pass dataset_scores output (n, {len(ISSUE_NAMES)}).")
    limits = thresholds(thresholds_)
    with np.errstate(invalid="ignore"):
        return scores > np.asarray([limits[name] for name in ISSUE_NAMES], dtype=np.float32)


def table_columns(scores: np.ndarray, thresholds_: dict | None = None,
                  source_kind: str | None = None) -> dict[str, np.ndarray]:
    """Export columns in order: ``<issue>_score`` (float, NaN for failed images) and ``is_<issue>_issue`` (bool)
    for each issue (only those applicable to ``source_kind`` if given) — CleanVision/Datalab's column names."""
    flagged = flags(scores, thresholds_)
    columns = {}
    for name in issue_names(source_kind):
        j = ISSUE_NAMES.index(name)
        columns[f"{name}_score"] = np.asarray(scores)[:, j]
        columns[f"is_{name}_issue"] = flagged[:, j]
    return columns
