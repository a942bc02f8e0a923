"""Real browser: Apply & retrain continues on the new round (issue 18)."""
from urllib.parse import parse_qs, quote

import pytest

from coreclean import Analysis
from coreclean.review.log import ReviewLog, reviewable
from coreclean.build.rounds import list_rounds


@pytest.fixture(scope="module")
def analysis(module_digits):
    return module_digits


def test_apply_and_retrain_continues_on_the_new_round(server, browser, analysis, tmp_path):
    log = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes)
    top = analysis.ranked(3)[:3]
    log.record(int(top[0]), 3, "mislabeled", new_label=5)
    log.record(int(top[1]), 3, "remove")
    log.record(int(top[2]), 3, "ok")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/decisions")
    page.get_by_role("button", name="Apply & retrain").click()
    page.wait_for_function("location.search.includes('round=')")
    page.get_by_text("Worst confusions before").wait_for()
    chosen = parse_qs(page.evaluate("location.search").lstrip("?"))["round"][0]
    revision = next(r for r in list_rounds(analysis.directory) if r.label == chosen)
    assert revision.number == 1
    page.goto(f"{server}/review?round={quote(revision.label)}&cls=3")  # a link reopens the round
    page.get_by_text("samples labelled 3", exact=False).wait_for()
    page.wait_for_function("document.querySelectorAll('[data-testid=stImageCaption]').length >= 6")
    captions = page.locator("[data-testid=stImageCaption]").all_inner_texts()
    shown = [int(c.split(" ·")[0].lstrip("#")) for c in captions]
    round_one = Analysis.load(revision.directory)
    expected = reviewable(round_one.ranked(3), log.current())[:6]
    assert shown == expected.tolist()  # the revision's ranking, reviewed samples skipped
    assert int(top[0]) not in shown and int(top[1]) not in shown
    page.screenshot(path=str(tmp_path / "round-review.png"), full_page=True)
    page.close()
