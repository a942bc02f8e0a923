"""Selection and URL-state logic, as pure functions: AppTest cannot click charts, unit tests can call these."""
from __future__ import annotations

from typing import Any, Sequence

PAIR_ARROW = " → "


def pair_label(true: int, predicted: int, labels: Sequence[str]) -> str:
    return f"{labels[true]}{PAIR_ARROW}{labels[predicted]}"


def parse_pair(text: str | None, labels: Sequence[str]) -> tuple[int, int] | None:
    """Inverse of :func:`pair_label`; ``None`` for anything that does not name two known classes."""
    if not text or PAIR_ARROW not in text:
        return None
    index = {name: i for i, name in enumerate(labels)}
    true, _, predicted = text.partition(PAIR_ARROW)
    if true in index and predicted in index and true != predicted:
        return index[true], index[predicted]
    return None


def pair_from_selection(selection: dict[str, Any] | None) -> tuple[int, int] | None:
    """(true, predicted) from a plotly selection event on :func:`confusion_figure`, or ``None``.

    The figure stores ``[true, predicted, count]`` in each marker's customdata; diagonal cells select nothing.
    """
    points = (selection or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, dict):  # Streamlit may deliver an array as {"0": .., "1": ..}
            data = [data[k] for k in sorted(data, key=lambda k: int(k))]
        try:
            true, predicted = int(data[0]), int(data[1])
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        if true != predicted:
            return true, predicted
    return None


def range_from_selection(selection: dict[str, Any] | None) -> tuple[float, float] | None:
    """x-range of a horizontal box selection on :func:`importance_histogram`, clipped to [0, 1]."""
    boxes = (selection or {}).get("box") or []
    for box in boxes:
        xs = box.get("x")
        if xs and len(xs) >= 2:
            low, high = sorted(float(v) for v in xs[:2])
            return max(0.0, low), min(1.0, high)
    return None


def page_bounds(n_items: int, position: int, page_size: int) -> tuple[int, int]:
    """[start, stop) of the grid page starting at ``position`` (0-based), clamped into range."""
    if n_items <= 0:
        return 0, 0
    start = min(max(int(position), 0), n_items - 1)
    return start, min(n_items, start + max(page_size, 1))
