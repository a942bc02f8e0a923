"""Real-browser tests of the Map page (issue 14): a box dragged with the mouse lists those samples, a decision made
on the map lands in the review log, and the page's URL reopens the same map view."""
import pytest

from bench.server import APP_IDLE, wait_until
from coreclean.analysis import explore_queries as q
from coreclean.review.log import ReviewLog
from ui.selection import parse_map_selection


@pytest.fixture(scope="module")
def analysis(module_digits):
    return module_digits


def open_map(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .nsewdrag")
    page.wait_for_function(APP_IDLE)
    return page


def drag(page, points: list[tuple[float, float]]) -> str:
    """Drag through ``points`` (fractions of the plot area); returns the ``sel`` the URL then holds."""
    before = page.evaluate("location.search")
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    at = [(area["x"] + fx * area["width"], area["y"] + fy * area["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.wait_for_function("(old) => location.search !== old && location.search.includes('sel=')", arg=before)
    return page.evaluate("new URLSearchParams(location.search).get('sel')")


def tiles(page, expected_first: int, count: int = 8) -> list[int]:
    """Sample indices of the grid's tiles, once the grid starts with ``expected_first`` and shows ``count`` tiles
    (an image's caption appears when the image is decoded, which can be just after the run has finished)."""
    page.wait_for_function("(s) => { const c = document.querySelector('[data-testid=stImageCaption]');"
                           " return c && c.innerText.startsWith('#' + s + ' '); }", arg=expected_first)
    page.wait_for_function(APP_IDLE)
    page.wait_for_function("(n) => document.querySelectorAll('[data-testid=stImageCaption]').length >= n", arg=count)
    return [int(c.split(" ·")[0][1:]) for c in page.locator("[data-testid=stImageCaption]").all_inner_texts()]


def test_dragging_a_box_lists_the_samples_inside_it(server, browser, analysis, tmp_path):
    page = open_map(browser, f"{server}/map")
    kind, values = parse_map_selection(drag(page, [(0.3, 0.3), (0.62, 0.66)]))
    assert kind == "box"
    expected = q.samples_in_box(analysis, *values)
    assert len(expected) > 8
    assert tiles(page, int(expected[0])) == [int(i) for i in expected[:8]]  # 4 x 2 tiles by default
    page.get_by_text(f"{len(expected):,} samples in the selection").wait_for()
    # what plotly itself marks as selected is what the grid lists (the same box, read back from the URL)
    selected = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].pop()._fullData"
                             ".flatMap(t => [...(t.selectedpoints || [])].map(i => t.customdata[i]))")
    assert sorted(int(i) for i in selected) == sorted(int(i) for i in expected)
    page.screenshot(path=str(tmp_path / "map-box.png"), full_page=True)
    page.get_by_role("button", name="Clear").click()  # forgets the selection, on the chart too
    page.wait_for_function("!location.search.includes('sel=')")
    page.get_by_text("Select samples on the map").wait_for()
    page.wait_for_function(APP_IDLE)
    assert page.locator("[data-testid=stImageCaption]").count() == 0
    assert page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].pop()._fullData"
                         ".every(t => !t.selectedpoints)")
    page.close()


def test_a_decision_made_on_the_map_lands_in_the_review_log(server, browser, analysis):
    log = ReviewLog(analysis.directory, len(analysis.y_train))
    page = open_map(browser, f"{server}/map?reviewer=map-test")
    kind, values = parse_map_selection(drag(page, [(0.2, 0.25), (0.7, 0.7)]))
    members = q.select_samples(analysis, kind, values)
    shown = tiles(page, int(members[0]), min(8, len(members)))
    target = shown[1]
    log.undo(target)
    tile = page.locator("[data-testid=stColumn]").filter(has_text=f"#{target} ·").last
    tile.get_by_role("radio", name="remove").click()
    wait_until(lambda: target in log.current(), f"the decision on #{target} in the log")
    decision = log.current()[target]
    assert decision.decision == "remove" and decision.reviewer == "map-test"
    page.close()
    log.undo(target)


def test_the_map_url_reopens_the_same_view(server, browser, analysis, tmp_path):
    page = open_map(browser, f"{server}/map?colour=outlier")
    page.locator(".js-plotly-plot").first.hover()
    page.locator('[data-title="Lasso Select"]').first.click()
    sel = drag(page, [(0.15, 0.2), (0.7, 0.25), (0.75, 0.8), (0.3, 0.7)])
    kind, values = parse_map_selection(sel)
    assert kind == "lasso"
    expected = q.samples_in_polygon(analysis, values[0::2], values[1::2])
    first_view = tiles(page, int(expected[0]), min(8, len(expected)))
    link = page.url
    page.close()

    reopened = open_map(browser, link)  # a deep link: a new session
    assert tiles(reopened, int(expected[0]), min(8, len(expected))) == first_view == [int(i) for i in expected[:8]]
    assert reopened.get_by_label("Selection", exact=True).input_value() == sel
    assert reopened.get_by_label("Colour by", exact=True).input_value() == "outlier"
    outline = reopened.evaluate("[...document.querySelectorAll('.js-plotly-plot')].pop().layout.shapes[0].path")
    vertices = outline.strip("MZ ").replace(" L", " ").split()
    assert [tuple(float(v) for v in p.split(",")) for p in vertices] == list(zip(values[0::2], values[1::2]))
    reopened.get_by_text("outlier (percentile)").first.wait_for()  # the colour bar's title
    reopened.screenshot(path=str(tmp_path / "map-deep-link.png"), full_page=True)
    reopened.close()


def test_a_lasso_on_the_map_drawn_as_an_image_lists_the_samples_inside(server, browser, analysis, tmp_path):
    page = open_map(browser, f"{server}/map?draw=image&colour=label&mrows=3")  # rows: kept until the grid shows
    assert page.evaluate("document.querySelectorAll('.js-plotly-plot canvas.gl-canvas').length") == 0  # no WebGL
    page.locator(".js-plotly-plot").first.hover()
    page.locator('[data-title="Lasso Select"]').first.click()
    sel = drag(page, [(0.2, 0.2), (0.75, 0.3), (0.7, 0.8), (0.25, 0.75)])
    kind, values = parse_map_selection(sel)
    assert kind == "lasso" and "draw=image" in page.url
    expected = q.samples_in_polygon(analysis, values[0::2], values[1::2])
    assert len(expected) > 12 and tiles(page, int(expected[0]), 12) == [int(i) for i in expected[:12]]
    page.get_by_text(f"{len(expected):,} samples in the selection").wait_for()
    page.screenshot(path=str(tmp_path / "map-image.png"), full_page=True)
    page.close()
