"""Pure view logic for the dashboard: figure builders and selection/URL-state helpers (no Streamlit here).

Everything returns plain values or plotly figures, so it is unit-testable; pages only wire these to widgets.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from .model import normalize_confusion

PAIR_ARROW = " → "


def unique_labels(classes: Sequence[str]) -> list[str]:
    """Display labels that are unique (ImageNet repeats e.g. 'crane'): duplicates get their class id appended."""
    seen: dict[str, int] = {}
    for name in classes:
        seen[name] = seen.get(name, 0) + 1
    return [f"{name} #{i}" if seen[name] > 1 else name for i, name in enumerate(classes)]


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


def visible_classes(counts: np.ndarray, labels: Sequence[str], *, top_n: int = 30, search: str = "") -> np.ndarray:
    """Class ids to draw: those matching ``search`` (case-insensitive substring), else all when few, else the
    classes taking part in the worst off-diagonal confusions until ``top_n`` are collected. Sorted ascending."""
    K = len(labels)
    if search.strip():
        needle = search.strip().lower()
        return np.array([i for i, name in enumerate(labels) if needle in name.lower()], dtype=int)
    if K <= top_n:
        return np.arange(K)
    rates = normalize_confusion(counts)
    np.fill_diagonal(rates, 0)
    # Only the worst top_n^2 cells can matter; partial selection keeps 1000 classes (1M cells) fast.
    flat_rates = rates.ravel()
    candidates = min(flat_rates.size, top_n * top_n)
    worst = np.argpartition(-flat_rates, candidates - 1)[:candidates]
    chosen: list[int] = []
    for flat in worst[np.lexsort((worst, -flat_rates[worst]))]:
        if rates.flat[flat] <= 0:
            break
        for c in divmod(int(flat), K):
            if c not in chosen and len(chosen) < top_n:
                chosen.append(c)
        if len(chosen) >= top_n:
            break
    return np.array(sorted(chosen), dtype=int)


def confusion_figure(counts: np.ndarray, labels: Sequence[str], visible: np.ndarray,
                     selected: tuple[int, int] | None = None) -> go.Figure:
    """Normalized confusion matrix as square scatter markers (clickable in Streamlit, unlike a heatmap).

    Rows (y) are true classes, columns (x) predicted; colour is the rate within the true class. Each marker's
    customdata is ``[true, predicted, count, rate]``.
    """
    rates = normalize_confusion(counts)
    true, pred = np.meshgrid(visible, visible, indexing="ij")
    true, pred = true.ravel(), pred.ravel()
    names = [labels[i] for i in visible]
    side = max(420, min(900, 28 * len(visible) + 160))
    size = max(3, int(0.9 * (side - 170) / max(len(visible), 1)))  # markers tile the plot area like cells
    off = true != pred
    # The diagonal (correct predictions) would swamp the colour scale; it is drawn grey, confusions in colour.
    top = float(rates[true[off], pred[off]].max()) if off.any() else 1.0
    fig = go.Figure()
    for cells, colour in ((~off, None), (off, "Reds")):
        t, p = true[cells], pred[cells]
        marker = dict(symbol="square", size=size, line=dict(width=0))
        marker.update(color="#d9d9d9") if colour is None else marker.update(
            color=rates[t, p], colorscale=colour, cmin=0, cmax=max(top, 1e-9), colorbar=dict(title="rate"))
        fig.add_trace(go.Scatter(
            x=[labels[i] for i in p], y=[labels[i] for i in t], mode="markers", marker=marker,
            unselected=dict(marker=dict(opacity=1)),  # a click must not fade the rest of the matrix
            customdata=np.stack([t, p, counts[t, p], rates[t, p]], axis=1),
            hovertemplate="true: %{y}<br>predicted: %{x}<br>rate: %{customdata[3]:.3f}<br>count: %{customdata[2]}"
                          "<extra></extra>",
        ))
    if selected is not None and selected[0] in visible and selected[1] in visible:
        fig.add_trace(go.Scatter(x=[labels[selected[1]]], y=[labels[selected[0]]], mode="markers", hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=size + 4, color="crimson", line=dict(width=3)),
                                 showlegend=False))
    fig.update_layout(
        height=side, width=side + 120, showlegend=False, margin=dict(l=10, r=10, t=30, b=10), autosize=False,
        xaxis=dict(title="predicted", type="category", categoryorder="array", categoryarray=names, tickangle=-45),
        yaxis=dict(title="true", type="category", categoryorder="array", categoryarray=names[::-1],
                   scaleanchor="x"),
        plot_bgcolor="white", clickmode="event+select", dragmode="zoom",
    )
    return fig


def importance_histogram(values: dict[str, np.ndarray], *, facet: bool = False, bins: int = 40) -> go.Figure:
    """Histogram of per-class normalized importance for each named class, overlaid or faceted (one row each)."""
    from plotly.subplots import make_subplots

    names = list(values)
    rows = len(names) if facet and names else 1
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, subplot_titles=names if facet else None)
    for i, name in enumerate(names):
        fig.add_trace(go.Histogram(x=values[name], name=name, xbins=dict(start=0, end=1.0001, size=1 / bins),
                                   opacity=0.6 if not facet else 0.9),
                      row=i + 1 if facet else 1, col=1)
    fig.update_layout(barmode="overlay", height=max(320, 180 * rows), dragmode="select", selectdirection="h",
                      margin=dict(l=10, r=10, t=40, b=10), xaxis_title="importance (per-class normalized)")
    return fig


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
    start = int(np.clip(position, 0, max(n_items - 1, 0)))
    return start, min(n_items, start + max(page_size, 1))


def suggested_label(analysis, index: int) -> int:
    """The class to suggest for a sample marked mislabeled: the predicted one, else the runner-up class."""
    label, predicted = int(analysis.y_train[index]), int(analysis.pred_train[index])
    if predicted != label:
        return predicted
    from .model import predict_proba

    proba = predict_proba(np.asarray(analysis.x_train[index:index + 1]), analysis.coef)[0]
    proba[label] = -1
    return int(proba.argmax())
