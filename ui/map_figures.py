"""The Map page's figure: the 2-D map drawn as WebGL points or as one image, for box and lasso selection, and the
page's cached builder of it (:func:`map_chart`)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import hex_to_rgb, sample_colorscale, unlabel_rgb

from coreclean.analysis import explore_queries as explore
from .map_colours import map_colour
from .map_image import map_extent, paint_points, png_data_uri

MUTED = "#cfcfcf"
KIND_COLOURS = {"no duplicate": MUTED, "first of its group": "#1f77b4", "copy": "#ff7f0e",
                "undecided": MUTED, "ok": "#2ca02c", "mislabeled": "#d62728", "remove": "#303030"}
MAX_LEGEND_CATEGORIES = 30  # above this (ImageNet's 1000 classes) categories share a colour scale, no legend
# A colour scale is drawn as this many one-colour WebGL traces, not as a colour per point: plotly.js parses one colour
# string per point for a colour array (about 1 s for 60k points in headless Chromium, bench/map_timing.py) but one per
# trace for a single colour. 20 steps of a perceptual scale read as continuous at this marker size.
COLOUR_LEVELS = 20
DRAW_MODES = ("points", "image")
# Above this many points the map is drawn as an image by default: WebGL points cost the browser ~0.8 s a draw in
# software rendering at 60k points (bench/map_timing.py) and every hover and selection re-draws them.
IMAGE_ABOVE_POINTS = 20_000
IMAGE_SIZE = (1400, 720)  # (width, height) pixels: about the plot area of a wide page; scroll-zoom enlarges them


def default_draw(n_points: int) -> str:
    """``"image"`` for maps of more than :data:`IMAGE_ABOVE_POINTS` points, else ``"points"`` (with hover)."""
    return "image" if n_points > IMAGE_ABOVE_POINTS else "points"


def _map_marker_size(n_points: int) -> int:
    return 3 if n_points > 50_000 else 4 if n_points > 10_000 else 6


def _index_dtype(rows: np.ndarray) -> type:
    """The smallest unsigned type holding every sample index: fewer bytes for the browser to receive and decode."""
    return np.uint16 if not len(rows) or rows.max() < 2 ** 16 else np.uint32


def _colour_groups(values: np.ndarray, categories: Sequence[str] | None, title: str):
    """Yield (members, name, colour, hover, in legend) for each colour of the map, and the colour bar's trace
    (or None when the categories have a legend): the one colouring both draw modes share."""
    if categories is not None and len(categories) <= MAX_LEGEND_CATEGORIES:
        palette = _qualitative(len(categories))
        fixed = KIND_COLOURS if _are_kinds(categories) else {}  # a class that happens to be called "ok" is a class
        groups = [(np.flatnonzero(values == code), str(name), fixed.get(str(name), palette[code]),
                   f"{title}: {name}", True) for code, name in enumerate(categories)]
        return [g for g in groups if len(g[0])], None
    numeric = categories is None
    top = 1 if numeric else max(len(categories) - 1, 1)
    scale = "Viridis" if numeric else "Turbo"
    fraction = np.nan_to_num(np.asarray(values, np.float64) / top, nan=0.0)
    steps = np.clip((fraction * COLOUR_LEVELS).astype(np.int64), 0, COLOUR_LEVELS - 1)
    colours = sample_colorscale(scale, list((np.arange(COLOUR_LEVELS) + 0.5) / COLOUR_LEVELS))
    groups = []
    for step in range(COLOUR_LEVELS):
        members = np.flatnonzero(steps == step)
        if len(members):
            codes = np.asarray(values)[members]
            span = f"{step / COLOUR_LEVELS:.2f}–{(step + 1) / COLOUR_LEVELS:.2f}" if numeric else \
                f"{int(codes.min())}–{int(codes.max())}"
            groups.append((members, span, colours[step], f"{title}{'' if numeric else ' code'}: {span}", False))
    bar = go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                     marker=dict(color=[0], colorscale=scale, cmin=0, cmax=top, showscale=True,
                                 colorbar=dict(title=title, thickness=12)))
    return groups, bar


def map_figure(xy: np.ndarray, rows: np.ndarray, values: np.ndarray, categories: Sequence[str] | None, title: str,
               *, selection: tuple[str, Sequence[float]] | None = None, highlight: np.ndarray | None = None,
               draw: str = "points", height: int = 620) -> go.Figure:
    """The 2-D map for box and lasso selection.

    xy (p, 2) coordinates of training samples ``rows`` (p,); ``values`` (p,) category codes into ``categories``
    (a legend when there are at most :data:`MAX_LEGEND_CATEGORIES`) or numbers in [0, 1] (``categories`` None).
    Numbers, and codes of more categories, are coloured on a scale in :data:`COLOUR_LEVELS` steps with a colour bar.

    ``draw="points"``: WebGL scatter (``go.Scattergl``), one trace per colour, each marker's customdata its sample
    index (hover names it). ``draw="image"``: the points painted into one PNG behind the axes
    (:mod:`ui.map_image`; high scores and decisions painted last, on top), no per-point hover; selections
    come back as box/lasso geometry either way. ``selection`` (kind, numbers) from
    :func:`ui.selection.parse_map_selection` is outlined (box or lasso); ``highlight`` (h, 2) points are ringed.
    """
    if draw not in DRAW_MODES:
        raise ValueError(f"draw={draw!r}: one of {DRAW_MODES}.")
    xy = np.asarray(xy, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows.astype(_index_dtype(rows))
    size = _map_marker_size(len(rows))
    groups, bar = _colour_groups(values, categories, title)
    fig = go.Figure()
    if draw == "points":
        for members, name, colour, hover, legend in groups:
            fig.add_trace(go.Scattergl(
                x=xy[members, 0], y=xy[members, 1], customdata=rows[members], mode="markers", name=name,
                showlegend=legend, marker=dict(size=size, color=colour, line=dict(width=0)),
                hovertemplate=f"#%{{customdata}}<br>{_escape(hover)}<extra></extra>"))
    else:  # numbers and decision/duplicate kinds are ordered (what matters on top); classes are not
        _add_image(fig, xy, groups, size, ordered=categories is None or _are_kinds(categories))
    if bar is not None:
        fig.add_trace(bar)
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), dragmode="select", uirevision="map",
        legend=dict(title=title, itemsizing="constant"), plot_bgcolor="white",
        xaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
        yaxis=dict(showticklabels=False, showgrid=False, zeroline=False, title=None),
    )
    return _mark(fig, selection, highlight, len(rows), draw)


def with_selection(fig: go.Figure, *, selection: tuple[str, Sequence[float]] | None = None,
                   highlight: np.ndarray | None = None, n_points: int, draw: str = "points") -> go.Figure:
    """A copy of the map figure ``fig`` (of ``n_points`` points) with ``selection`` (kind, numbers) outlined and
    the ``highlight`` (h, 2) points ringed. Cheap next to drawing the map: a page caches the plain map and marks a
    copy of it for each selection."""
    return _mark(go.Figure(fig), selection, highlight, n_points, draw)


def _mark(fig: go.Figure, selection, highlight, n_points: int, draw: str) -> go.Figure:
    size = _map_marker_size(n_points)
    if highlight is not None and len(highlight):
        highlight = np.asarray(highlight, dtype=np.float32).reshape(-1, 2)
        ring = go.Scattergl if draw == "points" else go.Scatter  # one WebGL context fewer in image mode
        fig.add_trace(ring(x=highlight[:, 0], y=highlight[:, 1], mode="markers", name="selected", hoverinfo="skip",
                           marker=dict(size=size + 8, color="rgba(0,0,0,0)", line=dict(width=2, color="crimson"))))
    kind, numbers = selection if selection else (None, ())
    outline = dict(line=dict(color="crimson", width=2, dash="dash"), fillcolor="rgba(220,20,60,0.06)")
    if kind == "box":
        x0, x1, y0, y1 = numbers
        fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, **outline)
    elif kind == "lasso":
        path = " L".join(f"{x},{y}" for x, y in zip(numbers[0::2], numbers[1::2]))
        fig.add_shape(type="path", path=f"M{path} Z", **outline)
    return fig


@st.cache_resource(show_spinner=False, max_entries=16)
def _plain_map(_analysis, directory: str, colour: str, decisions: tuple[tuple[int, str], ...], draw: str) -> go.Figure:
    """The map's figure for ``_analysis`` (stored in ``directory``; not hashed), built once per colour field, shown
    decisions (the decision colour only) and draw mode: a rerun for a selection or a grid page reuses it (painting
    60k points into an image took 0.1-0.3 s, colouring WebGL traces 10-45 ms)."""
    rows, xy = explore.map_points(_analysis)
    paint = map_colour(_analysis, colour, rows, dict(decisions))
    return map_figure(xy, rows, paint.values, paint.categories, paint.title, draw=draw)


def map_chart(analysis, colour: str, decisions: tuple[tuple[int, str], ...], *, draw: str,
              outline: tuple[str, Sequence[float]] | None = None, near: int | None = None) -> go.Figure:
    """The Map page's figure: the plain map of ``analysis`` coloured by ``colour`` (``decisions`` as from
    :func:`ui.map_selection.shown_decisions`), cached; or a copy of it with ``outline`` drawn and ``near``'s
    neighbours ringed."""
    plain = _plain_map(analysis, str(analysis.directory), colour, decisions, draw)
    if outline is None and near is None:
        return plain
    ringed = explore.map_positions(analysis, explore.select_samples(analysis, "near", (near,))) \
        if near is not None else None
    return with_selection(plain, selection=outline, highlight=ringed, n_points=len(explore.map_points(analysis)[0]),
                          draw=draw)


def _are_kinds(categories: Sequence[str]) -> bool:
    """Whether ``categories`` are the decision or duplicate kinds (fixed colours, drawn in order), not classes."""
    return all(str(name) in KIND_COLOURS for name in categories)


def _add_image(fig: go.Figure, xy: np.ndarray, groups, size: int, *, ordered: bool) -> None:
    """The points as one PNG stretched over fixed axis ranges, legend entries as point-less traces, and two
    invisible SVG points that give plotly something to select, so box and lasso drags still send their shape.
    ``ordered``: groups are painted in their order (a scale's high end, decisions over undecided, on top);
    otherwise (classes) all points are painted in one fixed random order, so no class hides another."""
    rgb = np.zeros((len(xy), 3), np.uint8)
    rank = np.zeros(len(xy), np.int64)
    for position, (members, name, colour, _hover, legend) in enumerate(groups):
        rgb[members] = _rgb(colour)
        if ordered:  # muted kinds (undecided, no duplicate) underneath, then in scale order
            rank[members] = -1 if colour == MUTED else position
        if legend:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, showlegend=True,
                                     marker=dict(size=size + 4, color=colour), hoverinfo="skip"))
    shuffle = np.random.default_rng(0).permutation(len(xy))
    order = shuffle[np.argsort(rank[shuffle], kind="stable")]
    x0, x1, y0, y1 = map_extent(xy)
    width, height = IMAGE_SIZE
    image = paint_points(xy, rgb, extent=(x0, x1, y0, y1), width=width, height=height,
                         radius=1 if len(xy) > 50_000 else 2, order=order)
    fig.add_layout_image(source=png_data_uri(image), xref="x", yref="y", x=x0, y=y1, sizex=x1 - x0,
                         sizey=y1 - y0, sizing="stretch", layer="below")
    fig.add_trace(go.Scatter(x=[x0, x1], y=[y0, y1], mode="markers", marker=dict(opacity=0), hoverinfo="skip",
                             showlegend=False, name="map"))
    fig.update_layout(legend=dict(itemclick=False, itemdoubleclick=False))
    fig.update_xaxes(range=[x0, x1])
    fig.update_yaxes(range=[y0, y1])


def _rgb(colour: str) -> tuple[int, int, int]:
    """(r, g, b) of a plotly colour string, ``#rrggbb`` or ``rgb(r, g, b)``."""
    parts = hex_to_rgb(colour) if colour.startswith("#") else unlabel_rgb(colour)
    return tuple(int(round(float(v))) for v in parts)


def _qualitative(n: int) -> list[str]:
    from plotly.colors import qualitative

    base = qualitative.Plotly if n <= 10 else qualitative.Dark24 if n <= 24 else qualitative.Alphabet
    return [base[i % len(base)] for i in range(n)]


def _escape(text) -> str:
    """A class name inside a hovertemplate: plotly would read ``%{`` as a placeholder."""
    return str(text).replace("%{", "% {").replace("<", "&lt;")
