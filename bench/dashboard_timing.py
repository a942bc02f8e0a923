"""Dashboard speed, server side: analysis load, cold start and each interaction, measured with AppTest.

    python bench/dashboard_timing.py --source fashion-mnist        # builds the analysis first if needed
    python bench/dashboard_timing.py --source cache:NAME --cache DIR

Cold start = a fresh AppTest session running dashboard.py with the analysis already on disk but not in the
Streamlit resource cache (first session after a server start). Interactions are reruns of a warm session.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table  # noqa: E402
from bench.server import WAIT_S  # noqa: E402


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="fashion-mnist")
    parser.add_argument("--cache", default=os.environ.get("CORECLEAN_CACHE", ".coreclean-cache"))
    args = parser.parse_args(argv)
    os.environ["CORECLEAN_CACHE"] = str(Path(args.cache).resolve())
    from streamlit.testing.v1 import AppTest

    from coreclean import Analysis

    if args.source.startswith("cache:"):
        directory = Path(args.cache) / args.source.partition(":")[2]
    else:
        directory = Analysis.build(args.source, cache_dir=args.cache).directory
    load_median, load_max = timed(lambda: Analysis.load(directory).ranked(0)[:6], repeat=5)
    query = {"source": f"cache:{directory.name}"}
    rows = [("Analysis.load + first ranking", load_median, load_max)]

    start = time.perf_counter()
    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=WAIT_S)
    at.query_params.update(query)
    at.run()
    rows.append(("cold start (first session, overview)", time.perf_counter() - start, float("nan")))
    assert not at.exception, at.exception
    at.switch_page("pages/review.py").run()
    classes = [o for o in at.selectbox(key="cls").options if " → " not in o]  # class queues, not pairs

    def cycle(key: str, options: list, step: int):
        """A step that selects the next option (``step`` further each time) in selectbox ``key`` and reruns."""
        position = iter(range(step, 10**9, step))
        return lambda: at.selectbox(key=key).select(options[next(position) % len(options)]).run()

    switch_class = cycle("cls", classes, 7)

    def move_slider():
        at.slider(key="pos").set_value(move_slider.i).run()
        move_slider.i += 6
    move_slider.i = 6

    rows.append(("review: switch class", *timed(switch_class)))
    rows.append(("review: move the position slider", *timed(move_slider)))
    at.switch_page("pages/confusion.py").run()
    select_pair = cycle("pair", at.selectbox(key="pair").options, 1)
    rows.append(("confusion: select a pair", *timed(select_pair)))
    print(f"# Dashboard timing: {directory.name} (server side, AppTest)\n")
    print(markdown_table([(name, f"{1000 * median:.0f}", "" if worst != worst else f"{1000 * worst:.0f}")
                          for name, median, worst in rows], ["step", "median (ms)", "max (ms)"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
