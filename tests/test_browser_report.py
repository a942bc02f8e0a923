"""The audit report opens in headless Chromium offline: no request leaves the file, no console error, every
section present with its charts and thumbnails."""
from coreclean.audit.report_html import SECTIONS
from coreclean.cli.main import main


def test_report_opens_offline_with_every_section(browser, digits_build, copy_analysis, tmp_path):
    directory = copy_analysis(digits_build, tmp_path / "cache")
    out = tmp_path / "report.html"
    assert main(["report", str(directory), "--out", str(out), "--folds", "2"]) == 0  # a cheaper audit
    context = browser.new_context(offline=True)
    requests, errors = [], []
    context.route("**/*", lambda route: (requests.append(route.request.url), route.continue_())
                  if route.request.url.startswith(("file:", "data:")) else (requests.append(route.request.url),
                                                                         route.abort()))
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert errors == []
    for section in SECTIONS:
        assert page.locator(f"section#{section} h2").count() == 1, section
    assert page.locator("section#noise-matrix svg rect").count() == 100
    images = page.locator("section#flagged img")
    assert images.count() >= 12
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    context.close()
