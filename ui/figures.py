"""Plotly figure builders: pure functions of arrays, testable without a browser."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from coreclean.classifier.model import normalize_confusion


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


def probability_bars(classes: Sequence[str], probabilities: Sequence[float]) -> go.Figure:
    """Horizontal bars of the classifier's top class probabilities for one sample, most likely on top."""
    fig = go.Figure(go.Bar(x=list(probabilities), y=list(classes), orientation="h", marker_color="#4c78a8",
                           text=[f"{p:.1%}" for p in probabilities], textposition="auto",
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    fig.update_layout(height=60 + 34 * len(classes), margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%"), yaxis=dict(autorange="reversed", type="category"))
    return fig
