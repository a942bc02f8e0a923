"""The dashboard served for real and a real browser (fixtures for tests/conftest.py, documented there):
``serve_dashboard``, ``server`` (module) and ``browser`` (module)."""
import os
import shutil
from pathlib import Path

import pytest

from bench.server import WAIT_MS, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI: .ci/run must apt-get install chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")


@pytest.fixture(scope="session")
def serve_dashboard():
    """``with serve_dashboard(cache_dir) as url:`` — a real `streamlit run` server on a free port (bench.server)."""
    _require_chromium()
    return serve


@pytest.fixture(scope="module")
def server(module_cache, module_digits, serve_dashboard):
    """A dashboard server on this module's cache (holding ``module_digits``), for the module's browser tests."""
    with serve_dashboard(module_cache) as url:
        yield url


class _PatientBrowser:
    """A Playwright browser whose pages and contexts wait up to ``WAIT_MS`` for anything (selectors, functions,
    navigation): tests wait for the app's own state, never for a short clock."""

    def __init__(self, browser):
        self._browser = browser

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        page.set_default_timeout(WAIT_MS)
        return page

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        context.set_default_timeout(WAIT_MS)
        return context

    def __getattr__(self, name):
        return getattr(self._browser, name)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright (every wait capped at ``WAIT_MS``). Module-scoped on purpose:
    while Playwright's sync API is open, the main thread has a running asyncio loop, and code under test that calls
    ``asyncio.run`` (the Dask handshake) fails in later modules."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield _PatientBrowser(instance)
        instance.close()
