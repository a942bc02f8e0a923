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


def page_count(n_items: int, page_size: int) -> int:
    """Pages of ``page_size`` items that ``n_items`` fill (at least one, shown empty)."""
    return max(1, -(-int(n_items) // max(int(page_size), 1)))


def page_bounds(n_items: int, position: int, page_size: int) -> tuple[int, int]:
    """[start, stop) of the grid page starting at ``position`` (0-based), clamped into range."""
    if n_items <= 0:
        return 0, 0
    start = min(max(int(position), 0), n_items - 1)
    return start, min(n_items, start + max(page_size, 1))


# --- the Map page's selection, as a compact URL value (``sel=``) -------------------------------------------------
MAX_LASSO_VERTICES = 48  # a lasso drawn by hand has hundreds; this many keep its shape and the link short


def _number(value: float) -> str:
    return f"{round(float(value), 4):.10g}"


def map_selection_from_event(selection: dict[str, Any] | None) -> str:
    """``sel=`` value of a plotly box or lasso selection event on the map: ``box:x0,x1,y0,y1`` or
    ``lasso:x1,y1,x2,y2,...`` (at most :data:`MAX_LASSO_VERTICES` vertices, coordinates to 4 decimals); ``""``
    when the selection was cleared or has no shape."""
    selection = selection or {}
    for box in selection.get("box") or []:
        xs, ys = box.get("x") or [], box.get("y") or []
        if len(xs) >= 2 and len(ys) >= 2:
            x0, x1 = sorted(float(v) for v in xs[:2])
            y0, y1 = sorted(float(v) for v in ys[:2])
            return "box:" + ",".join(_number(v) for v in (x0, x1, y0, y1))
    for lasso in selection.get("lasso") or []:
        xs, ys = lasso.get("x") or [], lasso.get("y") or []
        n = min(len(xs), len(ys))
        if n >= 3:
            keep = sorted({round(i * (n - 1) / (MAX_LASSO_VERTICES - 1)) for i in range(MAX_LASSO_VERTICES)}) \
                if n > MAX_LASSO_VERTICES else range(n)
            return "lasso:" + ",".join(f"{_number(xs[i])},{_number(ys[i])}" for i in keep)
    return ""


def parse_map_selection(text: str | None) -> tuple[str, tuple[float, ...]] | None:
    """Inverse of :func:`map_selection_from_event` (and ``near:INDEX``): (kind, numbers), or ``None`` for an empty
    value or anything malformed (a hand-edited link)."""
    kind, _, rest = (text or "").strip().partition(":")
    try:
        values = tuple(float(v) for v in rest.split(",")) if rest else ()
    except ValueError:
        return None
    if any(v != v or v in (float("inf"), float("-inf")) for v in values):
        return None
    ok = {"box": len(values) == 4,
          "lasso": len(values) >= 6 and len(values) % 2 == 0,
          "near": len(values) == 1 and values[0] >= 0 and float(values[0]).is_integer()}
    return (kind, values) if ok.get(kind) else None


def near_selection(index: int) -> str:
    """``sel=`` value for sample ``index`` and its nearest neighbours ("more like this")."""
    return f"near:{int(index)}"
