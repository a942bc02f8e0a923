"""AppTest tests of the exploration pages (issue 14): Map, Sample, Duplicates, the Overview's leak count and the
details link under image tiles. The session's digits build is copied into each test's own cache."""
import json
from urllib.parse import parse_qs

import numpy as np
import pytest

from coreclean.analysis import explore_queries as q
from coreclean.review.log import ReviewLog
from ui.map_colours import COLOUR_FIELDS


@pytest.fixture
def a(digits_analysis):
    """This test's own copy of the digits analysis (and so its own review log)."""
    return digits_analysis


def tile_ids(at) -> list[int]:
    return [int(w.key.split("_")[1]) for w in at.segmented_control]


def chart_spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def links(at, label: str) -> list[dict]:
    return [parse_qs(link.proto.query_string) for link in at.get("page_link") if link.proto.label == label]


def a_box(a) -> tuple[float, float, float, float]:
    _, xy = q.map_points(a)
    (x0, x1), (y0, y1) = np.quantile(xy[:, 0], [0.1, 0.7]), np.quantile(xy[:, 1], [0.2, 0.8])
    return tuple(round(float(v), 4) for v in (x0, x1, y0, y1))


def test_map_renders_every_colour_as_webgl_and_restores_the_colour_from_the_link(a, run_app):
    at = run_app({"colour": "outlier"}, "pages/map.py")
    assert at.selectbox(key="colour").value == "outlier"
    spec = chart_spec(at)
    assert {t["type"] for t in spec["data"]} == {"scattergl", "scatter"}  # points, and the colour bar's trace
    assert "outlier" in json.dumps(spec["data"][0]) and at.radio(key="draw").value == "points"  # digits: 1,797
    for field in COLOUR_FIELDS:
        at.selectbox(key="colour").select(field).run()
        assert not at.exception, field
        traces = chart_spec(at)["data"]
        assert sum(len(t.get("customdata", {}).get("bdata", "")) > 0 for t in traces) >= 1  # (not the colour bar)
    assert any("Select samples on the map" in c.value for c in at.caption)
    assert not at.segmented_control  # nothing selected: no grid


def test_box_in_the_link_reopens_the_selection_and_its_grid_page(a, run_app):
    box = a_box(a)
    expected = q.samples_in_box(a, *box)
    sel = "box:" + ",".join(f"{v:g}" for v in box)
    at = run_app({"sel": sel, "mpage": "2", "colour": "label"}, "pages/map.py")
    assert at.text_input(key="sel").value == sel and at.number_input(key="mpage").value == 2
    assert tile_ids(at) == [int(i) for i in expected[8:16]]  # 4 x 2 tiles a page by default
    assert any(s.value.startswith(f"{len(expected):,} samples in the selection") for s in at.subheader)
    (shape,) = chart_spec(at)["layout"]["shapes"]
    assert shape["type"] == "rect" and [shape["x0"], shape["x1"], shape["y0"], shape["y1"]] == list(box)
    assert [d["i"] for d in links(at, "details")] == [[str(i)] for i in tile_ids(at)]


def test_image_drawing_from_the_link_keeps_selection_and_grid(a, run_app):
    box = a_box(a)
    expected = q.samples_in_box(a, *box)
    at = run_app({"draw": "image", "sel": "box:" + ",".join(f"{v:g}" for v in box)}, "pages/map.py")
    assert not at.exception and at.radio(key="draw").value == "image"
    spec = chart_spec(at)
    assert spec["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert "scattergl" not in {t["type"] for t in spec["data"]}
    assert spec["layout"]["shapes"][0]["type"] == "rect" and tile_ids(at) == [int(i) for i in expected[:8]]
    at.radio(key="draw").set_value("points").run()
    assert "scattergl" in {t["type"] for t in chart_spec(at)["data"]} and not chart_spec(at)["layout"].get("images")
    bad = run_app({"draw": "svg"}, "pages/map.py")
    assert any("draw=svg" in w.value for w in bad.warning) and bad.radio(key="draw").value == "points"


def test_lasso_and_near_links_select_their_samples(a, run_app):
    x0, x1, y0, y1 = a_box(a)
    lasso = f"lasso:{x0},{y0},{x1},{y0},{x0},{y1}"  # a triangle
    at = run_app({"sel": lasso}, "pages/map.py")
    expected = q.samples_in_polygon(a, [x0, x1, x0], [y0, y0, y1])
    assert 0 < len(expected) and tile_ids(at) == [int(i) for i in expected[:8]]
    three_rows = run_app({"sel": lasso, "mrows": "3"}, "pages/map.py")
    assert tile_ids(three_rows) == [int(i) for i in expected[:12]]
    three_rows.number_input(key="mrows").set_value(1).run()
    assert tile_ids(three_rows) == [int(i) for i in expected[:4]]
    assert chart_spec(at)["layout"]["shapes"][0]["type"] == "path"
    near = run_app({"sel": "near:7"}, "pages/map.py")
    assert tile_ids(near) == [7, *q.neighbors_of(a, 7)[0]]
    assert len(chart_spec(near)["data"]) >= 2  # the ringed neighbours are drawn over the map


def test_bad_selection_links_warn_and_show_no_grid(a, run_app):
    for sel in ("box:1,2", "near:99999"):
        at = run_app({"sel": sel}, "pages/map.py")
        assert any("Selection" in w.value for w in at.warning), sel
        assert not at.segmented_control


def test_a_selection_without_samples_says_so_and_shows_no_grid(a, run_app):
    _, xy = q.map_points(a)
    far = float(np.abs(xy).max()) * 10
    at = run_app({"sel": f"box:{far},{far + 1},{far},{far + 1}"}, "pages/map.py")
    assert not at.exception and any("No sample of the map lies inside" in i.value for i in at.info)
    assert not at.segmented_control and not any("Showing" in c.value for c in at.caption)


def test_decisions_made_on_the_map_grid_land_in_the_review_log(a, run_app):
    log = ReviewLog(a.directory, len(a.y_train))
    box = a_box(a)
    at = run_app({"sel": "box:" + ",".join(map(str, box)), "reviewer": "mo"}, "pages/map.py")
    first, second, *rest = tile_ids(at)
    at.segmented_control(key=f"decision_{first}").set_value("remove").run()
    at.button(key=f"flip_{second}").click().run()
    current = log.current()
    assert current[first].decision == "remove" and current[first].reviewer == "mo"
    assert current[second].decision == "mislabeled" and current[second].new_label == a.suggested_label(second)
    next(b for b in at.button if b.label.startswith("Accept page")).click().run()
    current = log.current()
    assert all(current[i].decision == "ok" for i in rest) and current[first].decision == "remove"
    assert "0 mislabeled" not in " ".join(c.value for c in at.caption)


def test_sample_page_from_a_link(a, run_app):
    at = run_app({"i": "7"}, "pages/sample.py")
    assert at.number_input(key="sample_i").value == 7 and at.radio(key="sample_split").value == "train"
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    classes, _ = q.top_classes(a, 7)
    names = [str(c) for c in a.classes]
    assert bars["y"] == [names[c] for c in classes]
    why = " ".join(m.value for m in at.markdown)
    assert "p(label)" in why and "importance rank" in why and "not reviewed yet" in why
    neighbours = [int(j) for j in q.neighbors_of(a, 7)[0]]
    assert [b.key for b in at.button if b.key and b.key.startswith("open_")] == [f"open_{j}" for j in neighbours]
    (more,) = links(at, "More like this: review them on the map")
    assert more["sel"] == ["near:7"] and more["colour"] == ["label"]
    at.button(key=f"open_{neighbours[1]}").click().run()  # a neighbour's details: this page, that sample
    assert at.number_input(key="sample_i").value == neighbours[1]
    assert at.query_params["i"] in (str(neighbours[1]), [str(neighbours[1])])  # the address bar follows
    at.number_input(key="sample_i").set_value(9).run()
    assert at.query_params["i"] in ("9", ["9"])
    at.query_params["i"] = "12"  # a link to this page with another sample
    at.run()
    assert at.number_input(key="sample_i").value == 12
    test = run_app({"i": "3", "split": "test"}, "pages/sample.py")
    assert test.number_input(key="sample_i").value == 3 and test.radio(key="sample_split").value == "test"
    test_neighbours = [int(j) for j in q.neighbors_of(a, 3, "test")[0]]
    test.button(key=f"open_{test_neighbours[0]}").click().run()  # neighbours are training samples
    assert test.radio(key="sample_split").value == "train" and test.number_input(key="sample_i").value == \
        test_neighbours[0]
    bad = run_app({"i": "99999"}, "pages/sample.py")
    assert any("i=99999" in w.value for w in bad.warning) and bad.number_input(key="sample_i").value == 0


def test_duplicates_threshold_from_link_and_keep_one_writes_decisions(a, run_app):
    log = ReviewLog(a.directory, len(a.y_train))
    groups = q.duplicate_group_list(a, 0.99)
    assert 2 < len(groups[0]) <= 20 and len(groups) > 8  # digits at 0.99: small groups, more than one page
    at = run_app({"threshold": "0.99", "reviewer": "kim"}, "pages/duplicates.py")
    assert at.number_input(key="threshold").value == 0.99
    assert any(f"**{len(groups):,}** duplicate" in m.value for m in at.markdown)
    first = [int(i) for i in groups[0]]
    at.button(key=f"keep_{first[0]}").click().run()
    current = log.current()
    assert first[0] not in current and all(current[i].decision == "remove" for i in first[1:])
    assert {current[i].reviewer for i in first[1:]} == {"kim"}
    assert any(f"{len(first) - 1} samples marked" in s.value for s in at.success)
    at.button(key="keep_page").click().run()  # the rest of the page; the first group is not written twice
    page = [int(i) for g in groups[:8] for i in g[1:]]
    assert all(log.current()[i].decision == "remove" for i in page)
    assert len(log.history()) == len(page) and not any(int(g[1]) in log.current() for g in groups[8:])


def test_chained_groups_are_never_removed_in_one_click(a, run_app):
    groups = q.duplicate_group_list(a, 0.95)  # loose: members chain into groups of hundreds
    at = run_app({"threshold": "0.95"}, "pages/duplicates.py")
    keys = {b.key for b in at.button}
    big = [g for g in groups[:8] if len(g) > 20]
    assert big and not any(f"keep_{g[0]}" in keys for g in big)
    assert at.button(key="keep_page").disabled == all(len(g) > 20 for g in groups[:8])
    assert any("Too large to remove in one click" in c.value for c in at.caption)


def test_exact_only_switch(a, run_app):
    exact = run_app({"exact": "true", "threshold": "0.95"}, "pages/duplicates.py")
    assert exact.toggle(key="exact").value and exact.number_input(key="threshold").disabled
    n_exact = len(q.duplicate_group_list(a, exact_only=True))
    assert any(f"**{n_exact}** exact-copy groups" in m.value for m in exact.markdown)


def test_leaks_on_the_overview_and_the_duplicates_page(a, run_app):
    n = q.leak_count(a)
    at = run_app()
    assert {m.label: m.value for m in at.metric}["Test samples with a near-duplicate in train"] == f"{n:,}"
    dup = run_app(page="pages/duplicates.py")
    assert any(m.value.startswith(f"**{n:,}** test samples have") for m in dup.markdown)
    test, _ = q.leak_pairs(a)
    test_links = [l for l in links(dup, "details") if l.get("split") == ["test"]]
    assert [l["i"][0] for l in test_links] == [str(i) for i in test[:5]]


def test_every_image_tile_links_to_its_sample_page(a, run_app):
    at = run_app(page="pages/confusion.py")
    details = links(at, "details")
    assert len(details) == len(at.get("image")) > 12 and sum(d.get("split") == ["test"] for d in details) >= 1
    assert all(d["i"][0].isdigit() for d in details)
