"""Review speed in a real browser: decisions per minute with the keyboard flow against the click flow.

    python bench/review_speed.py                      # digits, 5 pages of 2x3 per flow
    python bench/review_speed.py --quick              # smoke test: 1 page per flow
    python bench/review_speed.py --pages 10 --think-ms 400 --source fashion-mnist

A `streamlit run dashboard.py` server and headless Chromium (Playwright, /usr/bin/chromium) review the same kind of
page three ways, each on its own class, from a log with no decisions on it:

* keyboard: ``1`` (tile 1 mislabeled, suggested class), then ``a`` (the other five ok, next page) — 2 actions/page;
* keyboard, clean page: ``a`` only — 1 action/page;
* click: the tile's "mislabeled" segment, "ok" on the five others, then "Next" — 7 actions/page.

After every action the bench waits until its effect is in the review log (for a page change, until the next page's
first image is shown) and the app's run has finished, so the numbers are what the app allows, not how fast a script
can fire events.
``--think-ms`` adds a fixed pause before every action, a crude stand-in for the reviewer's own time per action.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import server  # noqa: E402
from bench.common import markdown_table  # noqa: E402
from bench.server import WAIT_MS, serve, settle  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# Poll often: the bench times how long each action takes to land in the log.
wait_until = partial(server.wait_until, interval=0.02)


def first_shown(page, sample: int) -> None:
    page.wait_for_function("(s) => { const c = document.querySelector('[data-testid=stImageCaption]');"
                           " return c && c.innerText.startsWith('#' + s + ' '); }", arg=sample, timeout=WAIT_MS)


class Flow:
    """One way of reviewing ``pages`` pages of class ``label``; ``run`` returns the seconds it took."""

    def __init__(self, name: str, actions: int, mislabeled_per_page: int):
        self.name, self.actions, self.mislabeled_per_page = name, actions, mislabeled_per_page

    def run(self, page, log, queue, pages: int, think: float) -> float:
        started = time.perf_counter()
        for p in range(pages):
            tiles = [int(i) for i in queue[6 * p:6 * p + 6]]
            before = len(log.current())
            self.page(page, log, tiles, before, think)
            first_shown(page, int(queue[6 * (p + 1)]))
            settle(page)
        return time.perf_counter() - started

    def page(self, page, log, tiles, before, think):
        raise NotImplementedError


class Keyboard(Flow):
    def page(self, page, log, tiles, before, think):
        if self.mislabeled_per_page:
            time.sleep(think)
            page.keyboard.press("1")
            wait_until(lambda: len(log.current()) == before + 1, "key 1 in the log")
            settle(page)
        time.sleep(think)
        page.keyboard.press("a")
        wait_until(lambda: len(log.current()) == before + 6, "key a in the log")


class Clicks(Flow):
    def page(self, page, log, tiles, before, think):
        for k, sample in enumerate(tiles):
            choice = "mislabeled" if k < self.mislabeled_per_page else "ok"
            time.sleep(think)
            tile = page.locator("[data-testid=stColumn]").filter(has_text=f"#{sample} ·").last
            tile.get_by_role("radio", name=choice, exact=True).click()
            wait_until(lambda: len(log.current()) == before + k + 1, f"click {k + 1} in the log")
            settle(page)
        time.sleep(think)
        page.get_by_role("button", name="Next ▶").click()


FLOWS = [Keyboard("keyboard: 1, a", 2, 1), Keyboard("keyboard, clean page: a", 1, 0),
         Clicks("click: 6 segments + Next", 7, 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="digits")
    parser.add_argument("--cache", help="analysis cache (default: a temporary one)")
    parser.add_argument("--pages", type=int, default=5, help="2x3 pages per flow (default 5)")
    parser.add_argument("--think-ms", type=float, default=0.0, help="pause before every action (default 0)")
    parser.add_argument("--quick", action="store_true", help="one page per flow (smoke test)")
    args = parser.parse_args(argv)
    pages = 1 if args.quick else args.pages
    cache = Path(args.cache or tempfile.mkdtemp(prefix="review-speed-")).resolve()

    from playwright.sync_api import sync_playwright

    from coreclean import Analysis
    from coreclean.review.log import ReviewLog

    analysis = Analysis.build(args.source, cache_dir=cache)
    log = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes)
    for sample in list(log.current()):  # the flows start from undecided classes
        while log.undo(sample) is not None:
            pass
    labels = [k for k in range(analysis.n_classes) if len(analysis.ranked(k)) > 6 * pages + 6][:len(FLOWS)]
    if len(labels) < len(FLOWS):
        raise SystemExit(f"need {len(FLOWS)} classes with more than {6 * pages + 6} samples; use fewer --pages")
    rows = []
    with serve(cache) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            names = Analysis.load(analysis.directory).classes
            for flow, label in zip(FLOWS, labels):
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{url}/review?cls={label}&rows=2&cols=3")
                queue = analysis.ranked(label)
                first_shown(page, int(queue[0]))
                page.wait_for_function("document.querySelectorAll('[data-testid=stImage] img').length >= 6",
                                       timeout=WAIT_MS)
                seconds = flow.run(page, log, queue, pages, args.think_ms / 1000)
                decided = [log.current()[int(i)].decision for i in queue[:6 * pages]]
                assert decided.count("mislabeled") == flow.mislabeled_per_page * pages, (flow.name, decided)
                rows.append((flow, names[label], 6 * pages, seconds))
                page.close()
            browser.close()
    print(f"\nReview speed on {args.source}, 2x3 pages, think time {args.think_ms:.0f} ms/action, "
          f"{os.cpu_count()} CPUs\n")
    table = [(flow.name, flow.actions, name, decisions, f"{seconds:.1f}", f"{60 * decisions / seconds:.0f}",
              f"{seconds / (flow.actions * decisions / 6):.2f}") for flow, name, decisions, seconds in rows]
    print(markdown_table(table, ["flow", "actions/page", "class", "decisions", "seconds", "decisions/min",
                                 "s/action"]))
    keyboard, click = rows[0][3], rows[-1][3]
    print(f"\nkeyboard (1, a) vs click: {click / keyboard:.1f}x the decisions per minute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
