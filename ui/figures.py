"""Plotly figure builders: pure functions of arrays, testable without a browser."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from coreclean.model import normalize_confusion


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


def rounds_figure(table) -> go.Figure:
    """Test accuracy against cleaning effort (review decisions applied), one point per round."""
    fig = go.Figure(go.Scatter(x=table["decisions applied"], y=table["test accuracy"], mode="lines+markers+text",
                               text=table["round"], textposition="top center",
                               hovertemplate="%{text}<br>decisions: %{x}<br>accuracy: %{y:.4f}<extra></extra>"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="review decisions applied",
                      yaxis_title="test accuracy", yaxis_tickformat=".1%")
    return fig


MUTED = "#cfcfcf"
KIND_COLOURS = {"no duplicate": MUTED, "first of its group": "#1f77b4", "copy": "#ff7f0e",
                "undecided": MUTED, "ok": "#2ca02c", "mislabeled": "#d62728", "remove": "#303030"}
MAX_LEGEND_CATEGORIES = 30  # above this (ImageNet's 1000 classes) categories share a colour scale, no legend
# A colour scale is drawn as this many one-colour WebGL traces, not as a colour per point: plotly.js parses one colour
# string per point for a colour array (about 1 s for 60k points in headless Chromium, bench/map_timing.py) but one per
# trace for a single colour. 20 steps of a perceptual scale read as continuous at this marker size.
COLOUR_LEVELS = 20


def _map_marker_size(n_points: int) -> int:
    return 3 if n_points > 50_000 else 4 if n_points > 10_000 else 6


def _index_dtype(rows: np.ndarray) -> type:
    """The smallest unsigned type holding every sample index: fewer bytes for the browser to receive and decode."""
    return np.uint16 if not len(rows) or rows.max() < 2 ** 16 else np.uint32


def map_figure(xy: np.ndarray, rows: np.ndarray, values: np.ndarray, categories: Sequence[str] | None, title: str,
               *, selection: tuple[str, Sequence[float]] | None = None, highlight: np.ndarray | None = None,
               height: int = 620) -> go.Figure:
    """The 2-D map as WebGL scatter (``go.Scattergl``, interactive past 100k points), for box and lasso selection.

    xy (p, 2) coordinates of training samples ``rows`` (p,); ``values`` (p,) category codes into ``categories``
    (one trace per category, with a legend, when there are at most :data:`MAX_LEGEND_CATEGORIES`) or numbers in
    [0, 1] (``categories`` None). Numbers, and codes of more categories, are coloured on a scale in
    :data:`COLOUR_LEVELS` steps, one trace per step, with a colour bar. Each marker's customdata holds its sample
    index. ``selection`` (kind, numbers) from :func:`ui.selection.parse_map_selection` is outlined (box or lasso);
    ``highlight`` (h, 2) points are ringed (a sample and its neighbours).
    """
    xy = np.asarray(xy, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows.astype(_index_dtype(rows))
    size = _map_marker_size(len(rows))
    fig = go.Figure()

    def points(members: np.ndarray, name: str, colour: str, hover: str, legend: bool) -> None:
        fig.add_trace(go.Scattergl(
            x=xy[members, 0], y=xy[members, 1], customdata=rows[members], mode="markers", name=name,
            showlegend=legend, marker=dict(size=size, color=colour, line=dict(width=0)),
            hovertemplate=f"#%{{customdata}}<br>{_escape(hover)}<extra></extra>"))

    if categories is not None and len(categories) <= MAX_LEGEND_CATEGORIES:
        palette = _qualitative(len(categories))
        for code, name in enumerate(categories):
            members = np.flatnonzero(values == code)
            if len(members):
                points(members, str(name), KIND_COLOURS.get(str(name), palette[code]), f"{title}: {name}", True)
    else:
        numeric = categories is None
        top = 1 if numeric else max(len(categories) - 1, 1)
        scale = "Viridis" if numeric else "Turbo"
        fraction = np.nan_to_num(np.asarray(values, np.float64) / top, nan=0.0)
        steps = np.clip((fraction * COLOUR_LEVELS).astype(np.int64), 0, COLOUR_LEVELS - 1)
        colours = sample_colorscale(scale, list((np.arange(COLOUR_LEVELS) + 0.5) / COLOUR_LEVELS))
        for step in range(COLOUR_LEVELS):
            members = np.flatnonzero(steps == step)
            if not len(members):
                continue
            codes = np.asarray(values)[members]
            span = f"{step / COLOUR_LEVELS:.2f}–{(step + 1) / COLOUR_LEVELS:.2f}" if numeric else \
                f"{int(codes.min())}–{int(codes.max())}"
            points(members, span, colours[step], f"{title}{'' if numeric else ' code'}: {span}", False)
        # the colour bar, on a trace with no point to draw
        fig.add_trace(go.Scattergl(
            x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
            marker=dict(color=[0], colorscale=scale, cmin=0, cmax=top, showscale=True,
                        colorbar=dict(title=title, thickness=12))))
    if highlight is not None and len(highlight):
        highlight = np.asarray(highlight, dtype=np.float32).reshape(-1, 2)
        fig.add_trace(go.Scattergl(x=highlight[:, 0], y=highlight[:, 1], mode="markers", name="selected",
                                   hoverinfo="skip", marker=dict(size=size + 8, color="rgba(0,0,0,0)",
                                                                 line=dict(width=2, color="crimson"))))
    kind, numbers = selection if selection else (None, ())
    outline = dict(line=dict(color="crimson", width=2, dash="dash"), fillcolor="rgba(220,20,60,0.06)")
    if kind == "box":
        x0, x1, y0, y1 = numbers
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, **outline)
    elif kind == "lasso":
        points = " L".join(f"{x},{y}" for x, y in zip(numbers[0::2], numbers[1::2]))
        fig.add_shape(type="path", path=f"M{points} Z", **outline)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), dragmode="select", uirevision="map",
        legend=dict(title=title, itemsizing="constant"), plot_bgcolor="white",
        xaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
        yaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
    )
    return fig


def _qualitative(n: int) -> list[str]:
    from plotly.colors import qualitative

    base = qualitative.Plotly if n <= 10 else qualitative.Dark24 if n <= 24 else qualitative.Alphabet
    return [base[i % len(base)] for i in range(n)]


def _escape(text) -> str:
    """A class name inside a hovertemplate: plotly would read ``%{`` as a placeholder."""
    return str(text).replace("%{", "% {").replace("<", "&lt;")


def probability_bars(classes: Sequence[str], probabilities: Sequence[float]) -> go.Figure:
    """Horizontal bars of the classifier's top class probabilities for one sample, most likely on top."""
    fig = go.Figure(go.Bar(x=list(probabilities), y=list(classes), orientation="h", marker_color="#4c78a8",
                           text=[f"{p:.1%}" for p in probabilities], textposition="auto",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=60 + 34 * len(classes), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed", type="category"))
    return fig
