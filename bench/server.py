"""Start the dashboard as a real `streamlit run` server and wait for things — shared by bench/ and tests/.

Standard library only (no coreclean, no numpy): the test suite imports it cheaply, and it never imports tests/.

    with serve(cache) as url:                 # a server on a free port of 127.0.0.1, healthy when the block starts
        ...
    wait_until(lambda: ..., "the decision in the log")   # poll a condition, generous cap
    settle(page)                               # Playwright: wait until the app's run has finished

Waits are for the app's own state, with one generous cap (``WAIT_S``): on a loaded laptop a run can take a minute,
and a short clock only turns slowness into a failure.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard.py"
WAIT_S = 300  # the cap on every wait for the app (seconds)
WAIT_MS = WAIT_S * 1000  # the same, for Playwright
# Streamlit marks its root element while a script run is in progress; 'notRunning' once the run has finished.
APP_IDLE = ("document.querySelector('[data-testid=stApp]') && document.querySelector('[data-testid=stApp]')"
            ".getAttribute('data-test-script-state') === 'notRunning'")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, what: str, timeout: float = WAIT_S, interval: float = 0.05) -> None:
    """Poll ``condition()`` until it is true; raises ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read() == b"ok"
    except OSError:
        return False


@contextlib.contextmanager
def serve(cache: Path | str, *, address: str | None = "127.0.0.1", env: dict | None = None,
          timeout: float = WAIT_S):
    """`streamlit run dashboard.py` on a free port with ``CORECLEAN_CACHE=cache`` until the block ends; yields the
    base URL once ``/_stcore/health`` answers. ``address=None`` leaves ``--server.address`` to the app's own config
    (the test that the default listens on loopback only). The server is stopped (and killed if it hangs) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
               "--server.headless", "true"]
    if address is not None:
        command += ["--server.address", address]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {}), "CORECLEAN_CACHE": str(cache)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _healthy(url), "streamlit to answer /_stcore/health",
                   timeout=timeout, interval=0.3)
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode} before it became healthy")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settle(page, timeout_ms: float = WAIT_MS) -> None:
    """Wait until the dashboard's current run has finished (Streamlit's 'notRunning' state): a key pressed while the
    page still re-renders can be dropped by Streamlit's frontend, and a grid read mid-run is half drawn."""
    page.wait_for_function(APP_IDLE, timeout=timeout_ms)
