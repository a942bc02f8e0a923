"""Image-quality issues (dark, light, blurry, low information, grayscale, odd size, odd aspect ratio).

Two passes, so that each image is decoded once, by the embedding loop:

1. ``image_scores(image)`` (from ``quality_stats``) — on every already-decoded image (PIL or array); one float32
   row in ``RAW_COLUMNS`` order. In-memory sources: ``array_scores(pixels)`` (n, H, W[, C]) -> (n, 7) at once.
2. ``dataset_scores(raw)`` — after all rows exist: (n, len(ISSUES)) severities, adding the two issues that are
   relative to the dataset (odd size, odd aspect ratio). ``flags(scores, thresholds)`` turns them into booleans;
   ``table_columns`` names them for an export.

Every score is a severity in [0, 1]: **higher means worse**, and an image is flagged when its score is above the
issue's threshold (``ISSUES[name].threshold`` by default; the user may override any of them). CleanVision /
cleanlab Datalab scores run the other way: their ``dark_score`` is close to ``1 - ours``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stats import ANALYSIS_SIDE, RAW_COLUMNS, array_scores, image_scores

__all__ = ["ANALYSIS_SIDE", "ISSUES", "ISSUE_NAMES", "RAW_COLUMNS", "SOURCE_KINDS", "IssueType", "array_scores",
           "dataset_scores", "flags", "image_scores", "issue_names", "table_columns", "threshold_values"]
# which images a source has, in the vocabulary of ``Dataset.kind``: image files, or in-memory pixel arrays
SOURCE_KINDS = ("files", "pixels")
_LEGACY_KINDS = {"file": "files", "memory": "pixels"}  # what analyses built before this vocabulary store


@dataclass(frozen=True)
class IssueType:
    """One quality issue: flagged when ``score > threshold``; ``sources``: source kinds where it makes sense."""

    name: str
    threshold: float
    sources: frozenset
    description: str


_BOTH, _FILES = frozenset(SOURCE_KINDS), frozenset({"files"})
ISSUES: dict[str, IssueType] = {issue.name: issue for issue in (
    IssueType("dark", 0.68, _BOTH,
              "1 - brightness (luma, 0..1) of the 99th-percentile pixel: even the bright parts are dark."),
    IssueType("light", 0.68, _BOTH,
              "brightness (luma, 0..1) of the 5th-percentile pixel: even the dark parts are washed out."),
    IssueType("blurry", 0.55, _BOTH,
              "Crete et al. (2007) no-reference blur at 128 px: share of edge strength that survives a re-blur "
              "(0 sharp, 1 already as smooth as a re-blurred copy)."),
    IssueType("low_information", 0.6, _BOTH,
              "1 - max(entropy of the 64-bin luma histogram / 6 bits, luma range p99 - p1): near-constant images "
              "score close to 1; an object on a plain background does not (its range is wide)."),
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
_PER_IMAGE = RAW_COLUMNS[2:]


def issue_names(source_kind: str | None = None) -> list[str]:
    """Issue names in column order; only those that make sense for ``source_kind`` ('files' or 'pixels') if given."""
    if source_kind is None:
        return list(ISSUE_NAMES)
    source_kind = _check_kind(source_kind)
    return [name for name, issue in ISSUES.items() if source_kind in issue.sources]


def _check_kind(source_kind: str) -> str:
    """``source_kind`` in the current vocabulary (older analyses' 'file' / 'memory' mapped), else ValueError."""
    source_kind = _LEGACY_KINDS.get(source_kind, source_kind)
    if source_kind not in SOURCE_KINDS:
        raise ValueError(f"source_kind={source_kind!r}: choose one of {', '.join(SOURCE_KINDS)}.")
    return source_kind


def _relative(values: np.ndarray) -> np.ndarray:
    """d / (d + w) with d the distance to the median and w = max(0.5, 3 * IQR); NaN stays NaN."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.full(values.shape, np.nan)
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    distance = np.abs(values - median)
    return distance / (distance + max(0.5, 3.0 * (q3 - q1)))


def dataset_scores(raw: np.ndarray, *, source_kind: str = "files") -> np.ndarray:
    """Severities (n, len(ISSUE_NAMES)) float32 in [0, 1] from the stacked ``image_scores`` rows ``raw`` (n, 7).

    odd_size and odd_aspect_ratio are relative to the finite rows of ``raw``. Rows of images that failed to decode
    should be NaN and stay NaN. Issues that do not apply to ``source_kind`` are NaN (never flagged).
    """
    source_kind = _check_kind(source_kind)
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


def threshold_values(overrides: dict | None = None) -> dict[str, float]:
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


def flags(scores: np.ndarray, thresholds: dict | None = None) -> np.ndarray:
    """Boolean (n, len(ISSUE_NAMES)): ``scores > threshold`` per issue (defaults, updated by ``thresholds``);
    NaN scores (failed images, issues not applicable to the source) are never flagged."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape[1] != len(ISSUE_NAMES):
        raise ValueError(f"scores: shape {scores.shape}; pass dataset_scores output (n, {len(ISSUE_NAMES)}).")
    limits = threshold_values(thresholds)
    with np.errstate(invalid="ignore"):
        return scores > np.asarray([limits[name] for name in ISSUE_NAMES], dtype=np.float32)


def table_columns(scores: np.ndarray, thresholds: dict | None = None,
                  source_kind: str | None = None) -> dict[str, np.ndarray]:
    """Export columns in order: ``<issue>_score`` (float, NaN for failed images) and ``is_<issue>_issue`` (bool)
    for each issue (only those applicable to ``source_kind`` if given) — CleanVision/Datalab's column names."""
    flagged = flags(scores, thresholds)
    columns = {}
    for name in issue_names(source_kind):
        j = ISSUE_NAMES.index(name)
        columns[f"{name}_score"] = np.asarray(scores)[:, j]
        columns[f"is_{name}_issue"] = flagged[:, j]
    return columns
