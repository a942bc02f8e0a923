"""Tables the dashboard shows, as pandas DataFrames built from an analysis or a review log (no UI here)."""
from __future__ import annotations

import datetime as dt
from typing import Sequence

import numpy as np
import pandas as pd

from coreclean.classifier.model import ConfusionPair

PAIR_COLUMNS = ["true", "predicted", "rate", "count"]
SAMPLE_COLUMNS = ["index", "label", "predicted", "importance", "p(label)"]
LOG_COLUMNS = ["sample", "decision", "old class", "new class", "reviewer", "time", "undone"]


def class_table(analysis, names: Sequence[str]) -> pd.DataFrame:
    """One row per class: name, test accuracy, number of training samples."""
    return pd.DataFrame({"class": list(names), "accuracy": analysis.per_class_accuracy(),
                         "train samples": analysis.train_counts()})


def pairs_table(pairs: Sequence[ConfusionPair], names: Sequence[str], limit: int | None = None) -> pd.DataFrame:
    """Confusion pairs (worst first, as given) with class names."""
    rows = pairs[:limit] if limit else pairs
    return pd.DataFrame([{"true": names[p.true], "predicted": names[p.predicted], "rate": p.rate, "count": p.count}
                         for p in rows], columns=PAIR_COLUMNS)


def sample_table(analysis, indices: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """Training samples ``indices`` with label, prediction, per-class importance and label probability."""
    indices = np.asarray(indices, dtype=np.int64)
    return pd.DataFrame({"index": indices, "label": [names[c] for c in analysis.y_train[indices]],
                         "predicted": [names[c] for c in analysis.pred_train[indices]],
                         "importance": analysis.class_importance[indices],
                         "p(label)": analysis.p_label_train[indices]}, columns=SAMPLE_COLUMNS)


def log_table(history: list[dict], names: Sequence[str]) -> pd.DataFrame:
    """Rows of :meth:`ReviewLog.history` with class names and readable times."""
    def name(label):
        return names[label] if label is not None and 0 <= label < len(names) else ("" if label is None else str(label))

    return pd.DataFrame([{
        "sample": r["sample"], "decision": r["decision"], "old class": name(r["old_label"]),
        "new class": name(r["new_label"]), "reviewer": r["reviewer"] or "",
        "time": dt.datetime.fromtimestamp(r["created"]).strftime("%Y-%m-%d %H:%M:%S"), "undone": bool(r["undone"]),
    } for r in history], columns=LOG_COLUMNS)


def skipped_table(skipped: list) -> pd.DataFrame:
    """Input files (or rows) left out of the build, with the reason."""
    return pd.DataFrame([list(s) for s in skipped], columns=["file", "reason"])


def stages_table(stages: dict[str, dict]) -> pd.DataFrame:
    """``meta["stages"]`` (stage -> seconds, cpu_seconds, peak_mb) as rows, in the order the stages ran."""
    return pd.DataFrame([{"stage": name, "seconds": s["seconds"], "CPU seconds": s["cpu_seconds"],
                          "peak memory (MB)": s["peak_mb"]} for name, s in stages.items()],
                        columns=["stage", "seconds", "CPU seconds", "peak memory (MB)"])
