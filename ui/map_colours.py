"""How the Map page colours its points: each colour field as category codes or numbers in [0, 1], for
:func:`ui.map_figures.map_figure`. Presentation only; the data comes from :mod:`coreclean.analysis.explore_queries`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from coreclean.analysis import explore_queries as explore
from coreclean.analysis.labels import unique_labels
from coreclean.review.log import DECISIONS_SHOWN

COLOUR_FIELDS = ("label", "prediction", "importance", "outlier", "duplicate", "decision")
TEXT_FIELDS = ("zero_shot",)  # only for analyses whose backbone has a text tower
DUPLICATE_KINDS = ("no duplicate", "first of its group", "copy")
DECISION_KINDS = ("undecided", *DECISIONS_SHOWN)


def colour_fields(analysis) -> tuple[str, ...]:
    """The fields ``analysis`` can be coloured by: :data:`COLOUR_FIELDS`, plus zero_shot (p(label) by the text
    tower) when the backbone has one."""
    return COLOUR_FIELDS + (TEXT_FIELDS if analysis.stack("zero_shot_train") is not None else ())


@dataclass(frozen=True)
class MapColour:
    """How to colour the map's points: ``values`` (p,) aligned with ``map_points``' rows — category codes into
    ``categories`` (int64) for categorical fields, floats in [0, 1] otherwise (``categories`` is None)."""

    field: str
    values: np.ndarray
    categories: tuple[str, ...] | None
    title: str


def map_colour(analysis, field: str, rows: np.ndarray, decisions: Mapping[int, str] | None = None) -> MapColour:
    """Colour ``rows`` (p,) of the map by ``field`` (one of :data:`COLOUR_FIELDS`).

    label / prediction: class codes. importance: per-class normalized importance. outlier: the score's percentile
    rank in the training set (the raw score is heavy-tailed). duplicate: :data:`DUPLICATE_KINDS` from the build's
    groups. decision: :data:`DECISION_KINDS`, from ``decisions`` (sample -> current decision, e.g. the review
    log's ``{i: d.decision for i, d in log.current().items()}``).
    """
    rows = np.asarray(rows, dtype=np.int64)
    if field in ("label", "prediction"):
        codes = (analysis.y_train if field == "label" else analysis.pred_train)[rows]
        return MapColour(field, np.asarray(codes, np.int64), tuple(unique_labels(analysis.classes)), field)
    if field == "importance":
        return MapColour(field, analysis.class_importance[rows].astype(np.float32), None,
                         "importance (per class)")
    if field == "outlier":
        return MapColour(field, explore.outlier_percentiles(analysis)[rows], None, "outlier (percentile)")
    if field == "duplicate":
        first = explore.duplicate_of(analysis)[rows]
        codes = np.where(first < 0, 0, np.where(first == rows, 1, 2))
        return MapColour(field, codes.astype(np.int64), DUPLICATE_KINDS, field)
    if field == "decision":
        lookup = {name: code for code, name in enumerate(DECISION_KINDS)}
        codes = np.zeros(len(rows), np.int64)
        decided = {int(i): lookup[d] for i, d in (decisions or {}).items() if d in lookup}
        if decided:
            keys = np.fromiter(decided, np.int64, len(decided))
            found = np.isin(rows, keys)
            codes[found] = [decided[int(r)] for r in rows[found]]
        return MapColour(field, codes, DECISION_KINDS, field)
    if field == "zero_shot" and field in colour_fields(analysis):
        return MapColour(field, np.asarray(analysis.stack("zero_shot_train"))[rows].astype(np.float32), None,
                         "zero-shot p(label)")
    raise ValueError(f"field={field!r}: colour the map by one of {colour_fields(analysis)}.")
