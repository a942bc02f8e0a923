"""Real-browser tests: `streamlit run` on a free port, driven by headless Chromium through Playwright."""
from urllib.parse import quote

import numpy as np
import pytest

from bench.server import wait_until
from coreclean.analysis.labels import unique_labels
from ui.selection import pair_label


@pytest.fixture(scope="module")
def analysis(module_digits):
    return module_digits


def test_deep_link_reopens_review_grid(server, browser, analysis, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/review?cls=3&pos=4&order={quote('least → most')}")
    caption = page.get_by_text("Showing 5–10 of", exact=False)
    caption.wait_for()
    assert "labelled 3" in caption.inner_text() and "least → most" in caption.inner_text()
    page.wait_for_function("document.querySelectorAll('[data-testid=stImageCaption]').length >= 6")
    expected = analysis.ranked(3, descending=False)[4:10]
    captions = page.locator("[data-testid=stImageCaption]").all_inner_texts()
    assert [c.split(" ·")[0] for c in captions] == [f"#{i}" for i in expected]
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    page.close()


def test_click_confusion_cell_selects_pair(server, browser, analysis, tmp_path):
    names = unique_labels(analysis.classes)
    pairs = analysis.pairs()
    target = pairs[1]
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{server}/confusion")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .trace:nth-child(2) path.point")
    # Off-diagonal markers are drawn in row-major order of (true, predicted) without the diagonal.
    cells = [(t, p) for t in range(analysis.n_classes) for p in range(analysis.n_classes) if t != p]
    marker = page.locator(".js-plotly-plot .scatterlayer .trace:nth-child(2) path.point").nth(
        cells.index((target.true, target.predicted)))
    page.screenshot(path=str(tmp_path / "confusion-before.png"))
    marker.click(force=True)
    label = pair_label(target.true, target.predicted, names)
    page.get_by_text(f"{names[target.true]} predicted as {names[target.predicted]}").wait_for()
    page.wait_for_function(f"decodeURIComponent(location.search.replace(/\\+/g, ' ')).includes({label!r})")
    page.screenshot(path=str(tmp_path / "confusion-after.png"), full_page=True)
    page.close()
    assert np.sum(analysis.confusion) > 0


def test_several_sessions_at_once(server, browser, analysis):
    contexts = [browser.new_context() for _ in range(4)]
    pages = [c.new_page() for c in contexts]
    for label, page in enumerate(pages):  # all four sessions are open before any is checked
        page.goto(f"{server}/review?cls={label}&pos=2", wait_until="commit")
    for label, page in enumerate(pages):
        caption = page.get_by_text("Showing 3–8 of", exact=False)
        caption.wait_for()
        assert f"labelled {label}" in caption.inner_text()
    for context in contexts:
        context.close()


def test_decision_made_in_browser_survives_restart(server, browser, analysis, module_cache, serve_dashboard,
                                                    tmp_path):
    from coreclean.review.log import ReviewLog

    log = ReviewLog(analysis.directory, len(analysis.y_train))
    target = int(analysis.ranked(9)[0])
    log.undo(target)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/review?cls=9")
    page.get_by_text(f"#{target} ·", exact=False).wait_for()
    tile = page.locator("[data-testid=stColumn]").filter(has_text=f"#{target} ·").last
    tile.get_by_role("radio", name="remove").click()
    wait_until(lambda: target in log.current(), f"the decision on #{target} in the log")
    page.close()
    assert log.current()[target].decision == "remove"
    with serve_dashboard(module_cache) as url:  # a fresh server process: only what was written to disk
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/review?cls=9&seen=true")
        page.get_by_text(f"#{target} ·", exact=False).wait_for()
        tile = page.locator("[data-testid=stColumn]").filter(has_text=f"#{target} ·").last
        selected = tile.locator("[role=radio][aria-checked=true]")
        selected.wait_for()
        assert selected.inner_text().strip() == "remove"
        page.screenshot(path=str(tmp_path / "after-restart.png"), full_page=True)
        page.close()
    log.undo(target)


def test_brushing_the_histogram_sets_the_range(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{server}/importance")
    page.wait_for_selector(".js-plotly-plot .nsewdrag")
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.2 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], y + 20, steps=10)
    page.mouse.up()
    page.wait_for_function("location.search.includes('range=')")
    low, high = [float(v) for v in page.evaluate("new URLSearchParams(location.search).getAll('range')")]
    assert 0.1 < low < 0.3 and 0.5 < high < 0.7
    page.get_by_text(f"in [{low:.2f}, {high:.2f}]", exact=False).wait_for()
    page.screenshot(path=str(tmp_path / "importance-brush.png"), full_page=True)
    page.close()
