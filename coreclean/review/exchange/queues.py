"""Review queues named in text (the CLI's ``--queue``): the same queues the Review page offers.

``all`` (every class, importance normalized within each class), a class name, a confusion pair ``TRUE->PREDICTED``
(``→`` works too), an image-quality issue ``issue:NAME`` and a selection ``indices:FILE`` or ``indices:3,17,42``
(training indices, e.g. a map lasso saved from the dashboard; one per line or comma-separated) — each an (m,)
int64 array of training indices in review order, samples removed by review left out.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...quality import issues
from .. import queue as review_queue

ALL = "all"
PAIR_SEPARATORS = ("->", "→")
QUEUE_HELP = "all | CLASS | TRUE->PREDICTED | issue:NAME | indices:FILE | indices:3,17,42"


def _parse_indices(text: str, n: int, where: str) -> np.ndarray:
    tokens = [t for t in re.split(r"[\s,]+", text) if t]
    if not tokens:
        raise ValueError(f"--queue indices:{where}: no indices; give training indices, one per line or comma-separated.")
    values = []
    for token in tokens:
        if not token.lstrip("-").isdigit() or not 0 <= int(token) < n:
            raise ValueError(f"--queue indices:{where}: {token!r} is not a training index (0..{n - 1}).")
        values.append(int(token))
    return np.asarray(list(dict.fromkeys(values)), dtype=np.int64)


def queue_indices(analysis, spec: str | None, thresholds: dict[str, float] | None = None) -> tuple[np.ndarray, str]:
    """(training indices in review order, a description) of the queue named ``spec`` (see the module docstring;
    ``thresholds`` overrides issue thresholds, {issue: value}); ValueError naming the spec and the choices when it
    names nothing."""
    spec = (spec or ALL).strip()
    names = list(analysis.classes)
    removed = analysis.removed_train
    if spec == ALL:
        return review_queue.all_classes(analysis.class_importance, removed), "all classes"
    if spec in names:
        return analysis.ranked(names.index(spec)), f"class {spec}"
    if spec.startswith("issue:"):
        name = spec.partition(":")[2]
        try:
            return issues.flagged_samples(analysis, name, thresholds), f"flagged {name}"
        except ValueError as err:
            raise ValueError(f"--queue {spec}: {err}") from err
    if spec.startswith("indices:"):
        text = spec.partition(":")[2]
        source = Path(text)
        raw = source.read_text(encoding="utf-8") if source.is_file() else text
        chosen = _parse_indices(raw, len(analysis.y_train), text)
        chosen = chosen[~removed[chosen]]
        return review_queue.by_score(chosen, analysis.class_importance), f"{len(chosen)} selected samples"
    for separator in PAIR_SEPARATORS:
        true, sep, predicted = spec.partition(separator)
        if sep and true.strip() in names and predicted.strip() in names and true.strip() != predicted.strip():
            t, p = names.index(true.strip()), names.index(predicted.strip())
            return (review_queue.confusion_pair(analysis.y_train, analysis.pred_train, analysis.importance, t, p,
                                                removed), f"labelled {names[t]}, predicted {names[p]}")
    shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    raise ValueError(f"--queue {spec!r}: names no queue; give {QUEUE_HELP} (classes: {shown}).")
