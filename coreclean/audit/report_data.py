"""Every number of the audit report, as plain JSON: the same for the HTML and ``--json``, byte-identical for
identical inputs (floats rounded to 6 decimals, keys sorted, no clock, no paths)."""
from __future__ import annotations

import json
import math

import numpy as np

from ..analysis import explore_queries
from ..build.rounds import list_rounds, rounds_table
from ..quality import issues as quality_issues
from .audit import Audit

TOP = 12  # flagged samples listed per issue type
HISTOGRAM_BINS = 20


def _clean(value):
    """JSON-safe, rounded: NaN and inf become null; numpy scalars and arrays plain Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6) if math.isfinite(value) else None
    return value


def to_json(data: dict) -> str:
    return json.dumps(_clean(data), sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def _sample(analysis, audit: Audit, index: int, **extra) -> dict:
    return {"index": int(index), "label": int(analysis.y_train[index]),
            "suggested": int(audit.suggested[index]), "confidence": float(audit.confidence[index]),
            "p_wrong": float(audit.p_wrong[index]), **extra}


def flagged_samples(analysis, audit: Audit, top: int = TOP) -> dict[str, list[dict]]:
    """Issue type -> its ``top`` samples, most severe first, each with its suggested label and confidence."""
    kept = ~analysis.removed_train
    order = [i for i in np.argsort(-analysis.importance, kind="stable") if kept[i]][:top]
    out = {"label": [_sample(analysis, audit, i, score=float(analysis.class_importance[i])) for i in order]}
    outlier = analysis.stack("outlier_train")
    if outlier is not None:
        outlier = np.asarray(outlier)
        rows = np.flatnonzero(kept)
        rows = rows[np.argsort(-outlier[rows], kind="stable")][:top]
        out["outlier"] = [_sample(analysis, audit, i, score=float(outlier[i])) for i in rows]
    if analysis.stack("duplicate_of_train") is not None:
        dup = np.asarray(explore_queries.duplicate_of(analysis))
        rows = np.flatnonzero((dup >= 0) & kept)[:top]
        out["duplicate"] = [_sample(analysis, audit, i, duplicate_of=int(dup[i])) for i in rows]
    for issue in quality_issues.applicable_issues(analysis):
        rows = quality_issues.flagged_samples(analysis, issue)[:top]
        out[f"quality: {issue}"] = [_sample(analysis, audit, i) for i in rows]
    return out


def report_data(analysis, audit: Audit) -> dict:
    """The report's numbers (see module docstring)."""
    meta, kept = analysis.meta, ~analysis.removed_train
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    shown = analysis.class_importance
    histograms = [np.histogram(shown[(analysis.y_train == c) & kept], edges)[0].tolist()
                  for c in range(analysis.n_classes)]
    dup_of = analysis.stack("duplicate_of_train")
    exact = analysis.stack("exact_dup_train")
    duplicates = None
    if dup_of is not None:
        dup = np.asarray(explore_queries.duplicate_of(analysis))
        duplicates = {"samples": int(((dup >= 0) & kept).sum()),
                      "groups": len(explore_queries.duplicate_group_list(analysis)),
                      "exact_groups": None if exact is None else
                      len(explore_queries.duplicate_group_list(analysis, exact_only=True)),
                      "leakage": explore_queries.leak_count(analysis)}
    quality = quality_issues.issue_counts(analysis)
    flags_any = None
    if len(quality):
        from ..quality.thresholds import flags, threshold_values
        flags_any = int(flags(np.asarray(quality_issues.quality_scores(analysis)),
                              threshold_values({}))[kept].any(axis=1).sum())
    rounds = rounds_table(list_rounds(analysis.root_analysis))
    summary = audit.summary
    health = summary["class_health"]
    metrics = {"label_issues": summary["label_issues"], "health": summary["health"],
               "min_class_health": min((h for h in health if h is not None and math.isfinite(h)), default=None),
               "leakage": None if duplicates is None else duplicates["leakage"],
               "duplicates": None if duplicates is None else duplicates["samples"],
               "quality_issues": flags_any,
               "overlapping_pairs": sum(1 for pair in summary["overlap"] if pair["merge"])}
    return {
        "dataset": {"name": meta["name"], "n_train": int(kept.sum()), "n_test": int(meta["n_test"]),
                    "classes": list(analysis.classes), "backbone": analysis.params.backbone,
                    "test_accuracy": analysis.accuracy, "round": int((meta.get("lineage") or {}).get("round", 0))},
        "metrics": metrics,
        "audit": summary,
        "confusion": np.asarray(analysis.confusion).tolist(),
        "importance_histograms": {"edges": edges.tolist(), "counts": histograms},
        "flagged": flagged_samples(analysis, audit),
        "duplicates": duplicates,
        "quality": quality[["issue", "threshold", "flagged", "share"]].to_dict("records"),
        "rounds": rounds.drop(columns=["worst confusions"]).to_dict("records"),
    }
