"""Image-quality issues of an analysis's training samples: scores, counts per issue, the flagged samples.

Reads the ``quality_train.npy`` severities the build stores (see :mod:`coreclean.build.store`); analyses built before
quality scoring, and embeddings without images, have none, and every function here says so by returning None or
an empty result. Thresholds are ``{issue: value}`` overrides of ``coreclean.quality.thresholds.ISSUES`` defaults; in a link
they travel as ``t_<issue>=<value>`` (:func:`thresholds_from_params`).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from .thresholds import ISSUE_NAMES, ISSUES, flags, issue_names, threshold_values

PARAM_PREFIX = "t_"  # query parameter of an issue's threshold: t_dark=0.8
COUNT_COLUMNS = ["issue", "threshold", "flagged", "share", "description"]


def quality_scores(analysis) -> np.ndarray | None:
    """(n_train, len(ISSUE_NAMES)) float32 severities (memory-mapped), or None when the analysis has none."""
    return analysis.stack("quality_train")


def applicable_issues(analysis) -> list[str]:
    """Issue names that apply to the analysis's images ('files' sources: all; in-memory pixels: no size, aspect
    or grayscale); [] without quality scores."""
    kind = analysis.meta.get("quality")
    return issue_names(kind) if kind and quality_scores(analysis) is not None else []


def check_issue(analysis, issue: str) -> str:
    """``issue`` if the analysis has scores for it, else ValueError listing the ones it has."""
    names = applicable_issues(analysis)
    if issue not in names:
        offered = ", ".join(names) or "none (no quality scores: rebuild the analysis with this coreclean)"
        raise ValueError(f"issue={issue!r}: choose one of {offered}.")
    return issue


def flagged_samples(analysis, issue: str, thresholds: Mapping[str, float] | None = None) -> np.ndarray:
    """Train indices (int64) flagged for ``issue`` (score above its threshold), most severe first; samples
    removed by review are left out. ``thresholds`` overrides the defaults ({issue: value})."""
    check_issue(analysis, issue)
    j = ISSUE_NAMES.index(issue)
    scores = np.asarray(quality_scores(analysis)[:, j], dtype=np.float32)
    limit = threshold_values(dict(thresholds or {}))[issue]
    with np.errstate(invalid="ignore"):
        rows = np.flatnonzero((scores > limit) & ~analysis.removed_train)
    return rows[np.argsort(-scores[rows], kind="stable")]


def issue_counts(analysis, thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per applicable issue: threshold in use, flagged training samples (removed ones left out), their
    share, and what the score measures. Empty (same columns) without quality scores."""
    names = applicable_issues(analysis)
    if not names:
        return pd.DataFrame(columns=COUNT_COLUMNS)
    limits = threshold_values(dict(thresholds or {}))
    kept = ~analysis.removed_train
    flagged = flags(np.asarray(quality_scores(analysis)), limits)[kept]
    columns = [ISSUE_NAMES.index(name) for name in names]
    counts = flagged[:, columns].sum(axis=0)
    return pd.DataFrame({"issue": names, "threshold": [limits[name] for name in names], "flagged": counts,
                         "share": counts / max(int(kept.sum()), 1),
                         "description": [ISSUES[name].description for name in names]}, columns=COUNT_COLUMNS)


def parse_thresholds(items: list[str] | None) -> dict[str, float]:
    """``["dark=0.8", ...]`` (the CLI's ``--threshold``) as {issue: value}, validated; ValueError naming the item."""
    result = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--threshold {item}: write ISSUE=VALUE, e.g. dark=0.8 (issues: "
                             f"{', '.join(ISSUE_NAMES)}).")
        try:
            threshold_values({name.strip(): value.strip()})
        except ValueError as err:
            raise ValueError(f"--threshold {item}: {err}") from None
        result[name.strip()] = float(value)
    return result


def thresholds_from_params(params: Mapping[str, str]) -> dict[str, float]:
    """Threshold overrides carried by link parameters ``t_<issue>=<value>``; unknown or invalid ones are ignored
    (a link must never break a page)."""
    result = {}
    for name in ISSUE_NAMES:
        raw = params.get(PARAM_PREFIX + name)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if 0.0 <= value <= 1.0:
            result[name] = value
    return result
