"""Pure view logic of the exploration pages (issue 14): map selection <-> ``?sel=`` and the figure builders."""
import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image
from plotly.colors import sample_colorscale

from ui.map_image import map_extent, paint_points

from ui.map_colours import DECISION_KINDS
from ui import figures, map_figures, selection


def test_box_event_becomes_a_compact_sorted_selection_and_back():
    event = {"points": [{"x": 1}], "box": [{"x": [0.81234567, -1.5], "y": [2, 0.25], "xref": "x"}], "lasso": []}
    text = selection.map_selection_from_event(event)
    assert text == "box:-1.5,0.8123,0.25,2"
    assert selection.parse_map_selection(text) == ("box", (-1.5, 0.8123, 0.25, 2.0))


def test_long_lasso_is_thinned_keeping_its_ends():
    t = np.linspace(0, 2 * np.pi, 500)
    event = {"box": [], "lasso": [{"x": list(np.cos(t)), "y": list(np.sin(t))}]}
    kind, values = selection.parse_map_selection(selection.map_selection_from_event(event))
    assert kind == "lasso" and len(values) == 2 * selection.MAX_LASSO_VERTICES
    assert values[:2] == (1.0, 0.0) and values[-2:] == (round(np.cos(t[-1]), 4), round(np.sin(t[-1]), 4))
    short = {"lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}
    assert selection.map_selection_from_event(short) == "lasso:0,0,1,0,1,1"


def test_cleared_or_shapeless_events_clear_the_selection():
    for event in (None, {}, {"points": [], "box": [], "lasso": []}, {"box": [{"x": [1]}]},
                  {"lasso": [{"x": [0, 1], "y": [0, 1]}]}):
        assert selection.map_selection_from_event(event) == ""


def test_parse_map_selection_rejects_hand_edited_garbage():
    assert selection.parse_map_selection(selection.near_selection(42)) == ("near", (42.0,))
    for bad in (None, "", "box", "box:1,2,3", "box:a,b,c,d", "box:nan,1,2,3", "box:inf,1,2,3", "lasso:1,2,3,4",
                "lasso:1,2,3,4,5,6,7", "near:-1", "near:1.5", "near:1,2", "circle:1,2,3", "box:1,,2,3"):
        assert selection.parse_map_selection(bad) is None, bad


def _points(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)).astype(np.float32), np.arange(1000, 1000 + n)


def test_categorical_map_has_one_webgl_trace_per_present_category():
    xy, rows = _points()
    codes = np.arange(len(rows)) % 3  # category 3 is absent
    fig = map_figures.map_figure(xy, rows, codes, ["a", "b", "c", "d"], "label")
    assert [t.name for t in fig.data] == ["a", "b", "c"] and all(isinstance(t, go.Scattergl) for t in fig.data)
    assert sorted(np.concatenate([t.customdata for t in fig.data])) == list(rows)
    b = fig.data[1]
    assert list(b.customdata) == list(rows[codes == 1]) and np.allclose(b.x, xy[codes == 1, 0])
    assert fig.layout.dragmode == "select" and not fig.layout.shapes


def test_decision_and_duplicate_kinds_have_fixed_colours():
    xy, rows = _points(8)
    fig = map_figures.map_figure(xy, rows, np.arange(8) % 4, DECISION_KINDS, "decision")
    colours = {t.name: t.marker.color for t in fig.data}
    assert colours["undecided"] == map_figures.MUTED and colours["mislabeled"] == map_figures.KIND_COLOURS["mislabeled"]


def test_numeric_and_many_class_maps_draw_a_colour_scale_in_one_colour_steps():
    xy, rows = _points()
    values = np.linspace(0, 1, len(rows))
    numeric = map_figures.map_figure(xy, rows, values, None, "importance")
    *steps, bar = numeric.data
    assert len(steps) == map_figures.COLOUR_LEVELS and all(isinstance(t.marker.color, str) for t in steps)
    assert bar.marker.showscale and bar.marker.cmax == 1 and bar.marker.colorbar.title.text == "importance"
    assert sorted(np.concatenate([t.customdata for t in steps])) == list(rows)
    for step, trace in enumerate(steps):  # each step holds the values of its own interval, at its points
        members = np.isin(rows, trace.customdata)
        assert np.all(values[members] >= step / map_figures.COLOUR_LEVELS - 1e-9), step
        assert np.all((values[members] < (step + 1) / map_figures.COLOUR_LEVELS) | (values[members] == 1)), step
        assert np.allclose(trace.x, xy[members, 0]) and f"importance: {step / map_figures.COLOUR_LEVELS:.2f}" in \
            trace.hovertemplate
    assert steps[0].marker.color != steps[-1].marker.color
    names = [f"c{i}" for i in range(100)]
    codes = np.arange(len(rows)) % 100
    many = map_figures.map_figure(xy, rows, codes, names, "label")
    *steps, bar = many.data
    assert len(steps) == map_figures.COLOUR_LEVELS and bar.marker.cmax == 99 and not any(t.showlegend for t in steps)
    assert sorted(np.concatenate([t.customdata for t in steps])) == list(rows)
    assert "label code: 0–4" in steps[0].hovertemplate and "label code: 95–99" in steps[-1].hovertemplate


def test_sample_indices_travel_in_the_smallest_integer_type():
    xy, rows = _points(5)
    assert map_figures.map_figure(xy, rows, np.zeros(5), None, "x").data[0].customdata.dtype == np.uint16
    large = map_figures.map_figure(xy, rows + 70_000, np.zeros(5), None, "x").data[0].customdata
    assert large.dtype == np.uint32 and list(large) == list(rows + 70_000)


def test_selection_outline_and_ringed_neighbours():
    xy, rows = _points()
    box = map_figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance", selection=("box", (0, 1, -1, 2)))
    (shape,) = box.layout.shapes
    assert shape.type == "rect" and (shape.x0, shape.x1, shape.y0, shape.y1) == (0, 1, -1, 2)
    lasso = map_figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance",
                               selection=("lasso", (0, 0, 1, 0, 1, 1)))
    assert lasso.layout.shapes[0].path == "M0,0 L1,0 L1,1 Z"
    ringed = map_figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance", highlight=xy[:4])
    assert len(ringed.data) == 3 and ringed.data[-1].name == "selected" and np.allclose(ringed.data[-1].x, xy[:4, 0])


def test_probability_bars():
    fig = figures.probability_bars(["cat", "dog"], [0.7, 0.2])
    assert list(fig.data[0].y) == ["cat", "dog"] and list(fig.data[0].text) == ["70.0%", "20.0%"]


def test_image_mode_paints_every_point_behind_fixed_axes_without_webgl():
    xy, rows = _points(300)
    codes = np.arange(len(rows)) % 3
    fig = map_figures.map_figure(xy, rows, codes, ["a", "b", "c"], "label", draw="image")
    assert not any(isinstance(t, go.Scattergl) for t in fig.data)  # no WebGL context in the browser
    (image,) = fig.layout.images
    assert image.source.startswith("data:image/png;base64,") and image.sizing == "stretch"
    x0, x1, y0, y1 = map_extent(xy)
    assert tuple(fig.layout.xaxis.range) == (x0, x1) and tuple(fig.layout.yaxis.range) == (y0, y1)
    assert (image.x, image.y, image.sizex, image.sizey) == (x0, y1, x1 - x0, y1 - y0)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["a", "b", "c"] and fig.layout.legend.itemclick is False  # a legend click cannot hide pixels
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(image.source.split(",", 1)[1]))).convert("RGB"))
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    palette = {map_figures._rgb(t.marker.color) for t in fig.data if t.showlegend}
    assert palette <= colours and colours <= palette | {(255, 255, 255)}
    with pytest.raises(ValueError, match="draw='svg'"):
        map_figures.map_figure(xy, rows, codes, ["a", "b", "c"], "label", draw="svg")


def test_image_mode_paints_high_scores_and_decisions_on_top():
    xy = np.zeros((50, 2), np.float32)  # every point on the same pixel: only the last painted shows
    xy[0] = (1, 1)  # (an extent)
    values = np.linspace(0, 1, 50)
    rng = np.random.default_rng(1)
    order = rng.permutation(50)
    fig = map_figures.map_figure(xy[order], np.arange(50)[order], values[order], None, "importance", draw="image")
    steps = [t for t in fig.data if t.marker.color is not None and isinstance(t.marker.color, str)]
    assert not steps  # the scale has no per-step traces in image mode, only its colour bar
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(fig.layout.images[0].source.split(",", 1)[1]))))
    x0, x1, y0, y1 = map_extent(xy)
    row = int((y1 - 0) / (y1 - y0) * map_figures.IMAGE_SIZE[1])
    col = int((0 - x0) / (x1 - x0) * map_figures.IMAGE_SIZE[0])
    top = sample_colorscale("Viridis", [(map_figures.COLOUR_LEVELS - 0.5) / map_figures.COLOUR_LEVELS])[0]
    assert tuple(picture[row, col, :3]) == map_figures._rgb(top)  # the highest value at (0, 0) is on top
    decided = map_figures.map_figure(np.zeros((4, 2)), np.arange(4), np.array([2, 0, 0, 0]), DECISION_KINDS,
                                     "decision", draw="image")
    centre = np.asarray(Image.open(io.BytesIO(base64.b64decode(decided.layout.images[0].source.split(",", 1)[1]))))
    h, w = centre.shape[:2]
    assert tuple(centre[h // 2, w // 2, :3]) == map_figures._rgb(map_figures.KIND_COLOURS["mislabeled"])


def test_paint_points_clips_and_checks_its_input():
    image = paint_points(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([[255, 0, 0], [0, 0, 255]], np.uint8),
                         extent=(0, 1, 0, 1), width=10, height=5, radius=0)
    assert tuple(image[4, 0]) == (255, 0, 0) and tuple(image[0, 9]) == (0, 0, 255)  # y up; outside -> border
    assert (image.reshape(-1, 3) != 255).any(axis=1).sum() == 2
    with pytest.raises(ValueError, match="rgb"):
        paint_points(np.zeros((3, 2)), np.zeros((2, 3), np.uint8), extent=(0, 1, 0, 1), width=4, height=4)
    with pytest.raises(ValueError, match="extent"):
        paint_points(np.zeros((1, 2)), np.zeros((1, 3), np.uint8), extent=(1, 1, 0, 1), width=4, height=4)
    assert map_figures.default_draw(map_figures.IMAGE_ABOVE_POINTS) == "points"
    assert map_figures.default_draw(map_figures.IMAGE_ABOVE_POINTS + 1) == "image"


def test_a_selection_marks_a_copy_of_the_cached_plain_map():
    xy, rows = _points()
    plain = map_figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance", draw="image")
    marked = map_figures.with_selection(plain, selection=("box", (0, 1, -1, 2)), highlight=xy[:3],
                                        n_points=len(rows), draw="image")
    assert not plain.layout.shapes and len(plain.data) == 2  # the cached figure is left as it was
    assert marked.layout.shapes[0].type == "rect" and marked.data[-1].name == "selected"
    assert isinstance(marked.data[-1], go.Scatter) and marked.layout.images[0].source == plain.layout.images[0].source


def test_image_mode_interleaves_classes_and_skips_points_without_coordinates():
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(30_000, 2)).astype(np.float32)  # ten classes in one blob: none may hide the others
    codes = np.arange(len(xy)) % 10
    fig = map_figures.map_figure(xy, np.arange(len(xy)), codes, [f"c{i}" for i in range(10)], "label", draw="image")
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(fig.layout.images[0].source.split(",", 1)[1]))))
    palette = [map_figures._rgb(t.marker.color) for t in fig.data if t.showlegend]
    won = [int((picture[..., :3] == colour).all(axis=-1).sum()) for colour in palette]
    assert max(won) < 1.3 * min(won), won  # before the fix class 9 won 6x the pixels of class 0
    with_nan = np.vstack([xy[:100], [[np.nan, 0.0]]])
    x0, x1, y0, y1 = map_extent(with_nan)
    assert np.isfinite([x0, x1, y0, y1]).all()
    nan_fig = map_figures.map_figure(with_nan, np.arange(101), np.zeros(101), None, "importance", draw="image")
    assert nan_fig.layout.images[0].source.startswith("data:image/png")
