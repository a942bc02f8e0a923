"""Map page speed: how fast the 2-D map renders and how fast a selection lists its review grid.

    python bench/map_timing.py                                  # Fashion-MNIST (built first if needed)
    python bench/map_timing.py --source cache:NAME --cache DIR
    python bench/map_timing.py --source digits --quick          # smoke test

Three views of the same page, side by side:

* server (AppTest): the Map page's script run — first render in a session, a colour change, a selection (the same
  code path as a box drawn on the chart: the selection becomes ``?sel=``) listing its grid, the grid's next page;
* browser (`streamlit run` + headless Chromium, software WebGL), for each draw mode (``--draw``; ``image`` is the
  default past 20k points): opening ``/map`` until the plot is drawn and the run finished, and dragging a box with
  the mouse until the selection's first tile is shown and the run finished;
* plot only (plotly.js in Chromium, no Streamlit): ``Plotly.newPlot`` of the map's points as WebGL
  (``scattergl``, draw=points), as SVG (``scatter``), and painted into one PNG (draw=image).

The first Map run in a server process also computes the why-flagged terms once (``explain.bound_terms_of``, after
the map is sent), so that the first selection does not; it is reported on its own row.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import markdown_table  # noqa: E402
from bench.review_speed import CHROMIUM  # noqa: E402
from bench.server import WAIT_MS, WAIT_S, serve, settle  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float]:
    samples = []
    for k in range(repeat):
        start = time.perf_counter()
        fn(k)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), max(samples)


def boxes(analysis, n: int) -> list[tuple[float, float, float, float]]:
    """``n`` boxes around map points, each holding a few hundred samples (a typical drag)."""
    from coreclean.analysis import explore_queries as q
    import numpy as np

    rows, xy = q.map_points(analysis)
    span = np.ptp(xy, axis=0)
    out = []
    for k in range(n):
        cx, cy = xy[(k * 7919) % len(xy)]
        w, h = 0.06 * span
        out.append(tuple(round(float(v), 4) for v in (cx - w, cx + w, cy - h, cy + h)))
    return out


def server_side(directory: Path, analysis, repeat: int) -> list[tuple[str, float, float]]:
    from streamlit.testing.v1 import AppTest

    from coreclean.analysis import explore_queries as q

    from ui import map_colours
    from ui.map_figures import default_draw

    at = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=WAIT_S)
    at.query_params.update({"source": f"cache:{directory.name}"})
    at.run()
    print(f"(server rows: the default draw mode for {len(q.map_points(analysis)[0]):,} points, "
          f"{default_draw(len(q.map_points(analysis)[0]))})")
    rows = []
    start = time.perf_counter()
    at.switch_page("pages/map.py").run()
    assert not at.exception, at.exception
    rows.append(("server: map page, first run in a server (+ why-flagged terms, once)", time.perf_counter() - start,
                 float("nan")))
    fresh = AppTest.from_file(str(ROOT / "dashboard.py"), default_timeout=WAIT_S)
    fresh.query_params.update({"source": f"cache:{directory.name}"})
    fresh.run()
    start = time.perf_counter()
    fresh.switch_page("pages/map.py").run()
    rows.append(("server: map page, first render in a session", time.perf_counter() - start, float("nan")))
    fields = list(map_colours.COLOUR_FIELDS)
    rows.append(("server: change the colour field", *timed(
        lambda k: at.selectbox(key="colour").select(fields[(k + 1) % len(fields)]).run(), repeat)))
    chosen = boxes(analysis, repeat + 1)
    sel = lambda box: "box:" + ",".join(f"{v:g}" for v in box)  # noqa: E731
    start = time.perf_counter()
    at.text_input(key="sel").input(sel(chosen[-1])).run()
    rows.append(("server: first selection in a session", time.perf_counter() - start, float("nan")))
    sizes = []

    def select(k):
        at.text_input(key="sel").input(sel(chosen[k])).run()
        sizes.append(int(at.subheader[0].value.split(" ")[0].replace(",", "")))
    rows.append(("server: select a box → its grid (4 × 2 tiles)", *timed(select, repeat)))
    rows.append(("server: next page of the selection's grid", *timed(
        lambda k: at.number_input(key="mpage").increment().run(), min(repeat, 2))))
    assert not at.exception, at.exception
    print(f"(selections held {min(sizes)}–{max(sizes)} samples)")
    return rows


def browser_side(cache: Path, directory: Path, analysis, repeat: int,
                 draws: tuple[str, ...]) -> list[tuple[str, float, float]]:
    from playwright.sync_api import sync_playwright

    rows = []
    with serve(cache) as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{url}/map?source=cache:{directory.name}")  # loads the analysis into the server (unmeasured)
            page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=WAIT_MS)
            settle(page)

            def open_overview(k):
                page.goto(f"{url}/?source=cache:{directory.name}")
                page.get_by_text("Per-class accuracy").wait_for(timeout=WAIT_MS)
                settle(page)
            rows.append(("browser: open the Overview (reference: a page without the map)", *timed(open_overview, repeat)))
            for draw in draws:
                rows += browser_map(page, f"{url}/map?source=cache:{directory.name}&draw={draw}", draw, analysis,
                                    repeat)
            page.close()
            browser.close()
    return rows


def browser_map(page, base: str, draw: str, analysis, repeat: int) -> list[tuple[str, float, float]]:
    """Open ``base`` (the Map page in one draw mode) with each colour field, then drag boxes on it."""
    from ui import map_colours

    rows = []

    def open_map(k, fields=map_colours.COLOUR_FIELDS):
        page.goto(f"{base}&colour={fields[k % len(fields)]}")
        page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=WAIT_MS)
        settle(page)
    open_map(0)  # warm-up: this draw mode's first figure is built and cached on the server
    rows.append((f"browser, {draw}: open /map until the plot is drawn (colour fields in turn)",
                 *timed(open_map, repeat)))
    for field in ("label", "importance"):  # a categorical and a numeric colour
        rows.append((f"browser, {draw}: open /map?colour={field}", *timed(
            lambda k, one=(field,): open_map(k, one), repeat)))
    for grid_rows in (2, 3):  # the default 4 x 2 grid, and 4 x 3
        rows.append(browser_drag(page, f"{base}&mrows={grid_rows}", draw, grid_rows, analysis, repeat))
    return rows


def browser_drag(page, url: str, draw: str, grid_rows: int, analysis, repeat: int) -> tuple[str, float, float]:
    """Drag boxes on the Map page at ``url`` until each selection's first tile is shown and the run is done."""
    from coreclean.analysis import explore_queries as q
    from ui.selection import parse_map_selection

    page.goto(url)
    page.wait_for_selector(".js-plotly-plot .nsewdrag", timeout=WAIT_MS)
    settle(page)

    def drag(k):
        area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
        # consecutive boxes never overlap: a drag starting inside the current selection would move it
        fx, fy = [(0.15, 0.15), (0.55, 0.15), (0.15, 0.55), (0.55, 0.55), (0.35, 0.35), (0.75, 0.75)][k % 6]
        page.mouse.move(area["x"] + fx * area["width"], area["y"] + fy * area["height"])
        page.mouse.down()
        page.mouse.move(area["x"] + (fx + 0.12) * area["width"], area["y"] + (fy + 0.12) * area["height"],
                        steps=6)
        start = time.perf_counter()
        page.mouse.up()
        page.wait_for_function("(old) => location.search !== old", arg=drag.last, timeout=WAIT_MS)
        drag.last = page.evaluate("location.search")
        sel = page.evaluate("new URLSearchParams(location.search).get('sel')")
        members = q.select_samples(analysis, *parse_map_selection(sel))
        if len(members):
            page.wait_for_function(
                "(s) => [...document.querySelectorAll('[data-testid=stImageCaption]')]"
                ".some(c => c.innerText.startsWith('#' + s + ' '))", arg=int(members[0]), timeout=WAIT_MS)
        settle(page)
        drag.seconds.append(time.perf_counter() - start)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    drag.last, drag.seconds = page.evaluate("location.search"), []
    drag(5)  # warm-up: the page's first selection in this browser session
    drag.seconds.clear()
    for k in range(repeat):
        drag(k)
    return (f"browser, {draw}: drag a box → first tile shown, run done (4 × {grid_rows} tiles)",
            statistics.median(drag.seconds), max(drag.seconds))


def plot_only(analysis, repeat: int) -> list[tuple[str, float, float]]:
    """Plotly.newPlot of the map's points in Chromium: WebGL, SVG, and the points painted as one image."""
    import plotly
    from playwright.sync_api import sync_playwright

    from coreclean.analysis import explore_queries as q
    from ui import map_colours, map_figures

    rows_, xy = q.map_points(analysis)
    colour = map_colours.map_colour(analysis, "importance", rows_)
    webgl = map_figures.map_figure(xy, rows_, colour.values, colour.categories, colour.title)
    image = map_figures.map_figure(xy, rows_, colour.values, colour.categories, colour.title, draw="image")
    svg = json.loads(webgl.to_json())
    for trace in svg["data"]:
        trace["type"] = "scatter"
    plotly_js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for name, spec in (("scattergl (WebGL, draw=points)", json.loads(webgl.to_json())), ("scatter (SVG)", svg),
                           ("one PNG image (draw=image)", json.loads(image.to_json()))):
            seconds = []
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1200, "height": 800})
                page.set_content(f"<div id=g style='width:1100px;height:650px'></div><script>{plotly_js}</script>")
                ms = page.evaluate("""async (spec) => { const t0 = performance.now();
                    await Plotly.newPlot('g', spec.data, spec.layout);
                    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                    return performance.now() - t0; }""", spec)
                seconds.append(ms / 1000)
                page.close()
            out.append((f"plot only: {len(xy):,} points as {name}", statistics.median(seconds), max(seconds)))
        browser.close()
    return out


def figure_sizes(analysis, draw: str) -> dict[str, float]:
    """KiB of the map's figure JSON (what ``st.plotly_chart`` sends to the browser) for each colour field."""
    from coreclean.analysis import explore_queries as q
    from ui import map_colours, map_figures

    rows, xy = q.map_points(analysis)
    sizes = {}
    for field in map_colours.COLOUR_FIELDS:
        paint = map_colours.map_colour(analysis, field, rows, {})
        figure = map_figures.map_figure(xy, rows, paint.values, paint.categories, paint.title, draw=draw)
        sizes[field] = len(figure.to_json()) / 1024
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="fashion-mnist")
    parser.add_argument("--cache", help="analysis cache (default: a temporary one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats, no browser rows (smoke test)")
    parser.add_argument("--draw", choices=("image", "points", "both"), default="both",
                        help="the Map page's draw mode(s) timed in the browser")
    args = parser.parse_args(argv)
    cache = Path(args.cache or tempfile.mkdtemp(prefix="map-timing-")).resolve()
    os.environ["CORECLEAN_CACHE"] = str(cache)
    repeat = 2 if args.quick else args.repeat
    from coreclean import Analysis

    if args.source.startswith("cache:"):
        directory = cache / args.source.partition(":")[2]
    else:
        directory = Analysis.build(args.source, cache_dir=cache).directory
    analysis = Analysis.load(directory)
    load_before = os.getloadavg()
    rows = server_side(directory, analysis, repeat)
    if not args.quick and Path(CHROMIUM).exists():
        draws = ("image", "points") if args.draw == "both" else (args.draw,)
        rows += browser_side(cache, directory, analysis, repeat, draws)
        rows += plot_only(analysis, repeat)
    load_after = os.getloadavg()
    print(f"\n# Map page timing: {directory.name}, {len(analysis.y_train):,} training samples, "
          f"{os.cpu_count()} CPUs (targets: render ≤ 1500 ms, selection grid ≤ 500 ms)\n")
    print("load average (1/5/15 min) before: " + "/".join(f"{v:.2f}" for v in load_before)
          + ", after: " + "/".join(f"{v:.2f}" for v in load_after) + "; figure sent per colour field: " + "; ".join(
              f"{draw}: " + ", ".join(f"{field} {kib:,.0f} KiB" for field, kib in figure_sizes(analysis, draw).items())
              for draw in ("image", "points")) + "\n")
    print(markdown_table([(name, f"{1000 * median:.0f}", "" if worst != worst else f"{1000 * worst:.0f}")
                          for name, median, worst in rows], ["step", "median (ms)", "max (ms)"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
