"""Pure view logic of the exploration pages (issue 14): map selection <-> ``?sel=`` and the figure builders."""
import numpy as np
import plotly.graph_objects as go

from coreclean.explore_queries import DECISION_KINDS
from ui import figures, selection


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
    fig = figures.map_figure(xy, rows, codes, ["a", "b", "c", "d"], "label")
    assert [t.name for t in fig.data] == ["a", "b", "c"] and all(isinstance(t, go.Scattergl) for t in fig.data)
    assert sorted(np.concatenate([t.customdata for t in fig.data])) == list(rows)
    b = fig.data[1]
    assert list(b.customdata) == list(rows[codes == 1]) and np.allclose(b.x, xy[codes == 1, 0])
    assert fig.layout.dragmode == "select" and not fig.layout.shapes


def test_decision_and_duplicate_kinds_have_fixed_colours():
    xy, rows = _points(8)
    fig = figures.map_figure(xy, rows, np.arange(8) % 4, DECISION_KINDS, "decision")
    colours = {t.name: t.marker.color for t in fig.data}
    assert colours["undecided"] == figures.MUTED and colours["mislabeled"] == figures.KIND_COLOURS["mislabeled"]


def test_numeric_and_many_class_maps_draw_a_colour_scale_in_one_colour_steps():
    xy, rows = _points()
    values = np.linspace(0, 1, len(rows))
    numeric = figures.map_figure(xy, rows, values, None, "importance")
    *steps, bar = numeric.data
    assert len(steps) == figures.COLOUR_LEVELS and all(isinstance(t.marker.color, str) for t in steps)
    assert bar.marker.showscale and bar.marker.cmax == 1 and bar.marker.colorbar.title.text == "importance"
    assert sorted(np.concatenate([t.customdata for t in steps])) == list(rows)
    for step, trace in enumerate(steps):  # each step holds the values of its own interval, at its points
        members = np.isin(rows, trace.customdata)
        assert np.all(values[members] >= step / figures.COLOUR_LEVELS - 1e-9), step
        assert np.all((values[members] < (step + 1) / figures.COLOUR_LEVELS) | (values[members] == 1)), step
        assert np.allclose(trace.x, xy[members, 0]) and f"importance: {step / figures.COLOUR_LEVELS:.2f}" in \
            trace.hovertemplate
    assert steps[0].marker.color != steps[-1].marker.color
    names = [f"c{i}" for i in range(100)]
    codes = np.arange(len(rows)) % 100
    many = figures.map_figure(xy, rows, codes, names, "label")
    *steps, bar = many.data
    assert len(steps) == figures.COLOUR_LEVELS and bar.marker.cmax == 99 and not any(t.showlegend for t in steps)
    assert sorted(np.concatenate([t.customdata for t in steps])) == list(rows)
    assert "label code: 0–4" in steps[0].hovertemplate and "label code: 95–99" in steps[-1].hovertemplate


def test_sample_indices_travel_in_the_smallest_integer_type():
    xy, rows = _points(5)
    assert figures.map_figure(xy, rows, np.zeros(5), None, "x").data[0].customdata.dtype == np.uint16
    large = figures.map_figure(xy, rows + 70_000, np.zeros(5), None, "x").data[0].customdata
    assert large.dtype == np.uint32 and list(large) == list(rows + 70_000)


def test_selection_outline_and_ringed_neighbours():
    xy, rows = _points()
    box = figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance", selection=("box", (0, 1, -1, 2)))
    (shape,) = box.layout.shapes
    assert shape.type == "rect" and (shape.x0, shape.x1, shape.y0, shape.y1) == (0, 1, -1, 2)
    lasso = figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance",
                               selection=("lasso", (0, 0, 1, 0, 1, 1)))
    assert lasso.layout.shapes[0].path == "M0,0 L1,0 L1,1 Z"
    ringed = figures.map_figure(xy, rows, np.zeros(len(rows)), None, "importance", highlight=xy[:4])
    assert len(ringed.data) == 3 and ringed.data[-1].name == "selected" and np.allclose(ringed.data[-1].x, xy[:4, 0])


def test_probability_bars():
    fig = figures.probability_bars(["cat", "dog"], [0.7, 0.2])
    assert list(fig.data[0].y) == ["cat", "dog"] and list(fig.data[0].text) == ["70.0%", "20.0%"]
