"""Keyboard review in a real browser: `streamlit run` on a free port, headless Chromium through Playwright."""
from urllib.parse import quote

import pytest

from bench.server import settle, wait_until
from coreclean.review import queue as review_queue
from coreclean.review.log import ReviewLog


@pytest.fixture(scope="module")
def analysis(module_digits):
    return module_digits


@pytest.fixture
def log(analysis):
    """The review log with no current decision at the start of the test (earlier ones undone, as a user would)."""
    review_log = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes)
    while review_log.current():
        for sample in review_log.current():
            review_log.undo(sample)
    return review_log


def open_grid(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.get_by_text("Showing 1–", exact=False).wait_for()
    page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 6")
    settle(page)
    return page


def shown_samples(page, count: int = 6) -> list[int]:
    """The grid's sample indices once ``count`` tiles show (a caption appears when its image is decoded, which can
    be just after the run has finished)."""
    page.wait_for_function("(n) => document.querySelectorAll('[data-testid=stImageCaption]').length >= n", arg=count)
    return [int(c.split(" ·")[0].lstrip("#")) for c in page.locator("[data-testid=stImageCaption]").all_inner_texts()]


def test_key_1_then_a_reviews_a_page(server, browser, analysis, log, tmp_path):
    ranked = analysis.ranked(3)
    page = open_grid(browser, f"{server}/review?cls=3")
    assert shown_samples(page) == ranked[:6].tolist()
    page.keyboard.press("1")
    page.get_by_role("button", name="Undo mislabeled").wait_for()
    wait_until(lambda: len(log.current()) == 1, "the first decision in the log")
    settle(page)
    page.keyboard.press("a")
    page.get_by_text("Showing 7–12 of", exact=False).wait_for()
    wait_until(lambda: len(log.current()) == 6, "six decisions in the log")
    decided = log.current()
    assert set(decided) == set(ranked[:6].tolist())
    assert decided[int(ranked[0])].decision == "mislabeled"
    assert decided[int(ranked[0])].new_label == analysis.suggested_label(int(ranked[0]))
    assert sorted(d.decision for d in decided.values()) == ["mislabeled"] + ["ok"] * 5
    page.wait_for_function(f"document.querySelector('[data-testid=stImageCaption]').innerText.startsWith("
                           f"'#{int(ranked[6])} ')")
    settle(page)
    assert shown_samples(page) == ranked[6:12].tolist()
    page.screenshot(path=str(tmp_path / "keyboard-next-page.png"), full_page=True)
    page.close()


def test_arrow_keys_page_without_deciding(server, browser, analysis, log):
    ranked = analysis.ranked(5)
    page = open_grid(browser, f"{server}/review?cls=5")
    page.keyboard.press("ArrowRight")
    page.get_by_text("Showing 7–12 of", exact=False).wait_for()
    page.wait_for_function(f"document.querySelector('[data-testid=stImageCaption]').innerText.startsWith("
                           f"'#{int(ranked[6])} ')")
    settle(page)
    page.keyboard.press("ArrowLeft")
    page.get_by_text("Showing 1–6 of", exact=False).wait_for()
    settle(page)
    page.keyboard.press("2")  # toggles tile 2 on, then off again
    page.get_by_role("button", name="Undo mislabeled").wait_for()
    settle(page)
    page.keyboard.press("2")
    page.get_by_role("button", name="Undo mislabeled").wait_for(state="detached")
    page.close()
    assert log.current() == {}


def test_all_classes_queue_mixes_classes_in_importance_order(server, browser, analysis, log):
    queue = review_queue.all_classes(analysis.class_importance, analysis.removed_train)
    page = open_grid(browser, f"{server}/review?cls={quote('All classes')}&rows=3&cols=4")
    page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 12")
    shown = shown_samples(page, 12)
    assert shown == queue[:12].tolist()
    assert len({int(analysis.y_train[i]) for i in shown}) >= 3
    scores = [float(analysis.class_importance[i]) for i in shown]
    assert scores == sorted(scores, reverse=True)
    assert "of all classes" in page.get_by_text("Showing 1–12 of", exact=False).inner_text()
    page.close()
