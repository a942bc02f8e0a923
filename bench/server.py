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


def answers(url: str, expected: bytes | None = None) -> bool:
    """True when ``url`` answers HTTP 200 (with body ``expected`` if given)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status == 200 and (expected is None or reply.read() == expected)
    except OSError:
        return False


@contextlib.contextmanager
def running(command: list[str], health_url: str, what: str, *, env: dict | None = None, cwd: Path | None = None,
            log=subprocess.DEVNULL, expected: bytes | None = None, timeout: float = WAIT_S):
    """Start the server ``command`` and wait until ``health_url`` answers (``what`` names it in errors); stop it
    (and kill it if it hangs) when the block ends. The one start-and-poll helper of tests and benches."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: proc.poll() is not None or answers(health_url, expected), f"{what} to answer {health_url}",
                   timeout=timeout, interval=0.3)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it answered {health_url}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve(cache: Path | str, *, address: str | None = "127.0.0.1", env: dict | None = None,
          timeout: float = WAIT_S):
    """`streamlit run dashboard.py` on a free port with ``CORECLEAN_CACHE=cache`` until the block ends; yields the
    base URL once ``/_stcore/health`` answers. ``address=None`` leaves Streamlit's own default in place
    (the test that the default listens on loopback only). The server is stopped (and killed if it hangs) on exit."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
               "--server.headless", "true"]
    if address is not None:
        command += ["--server.address", address]
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/_stcore/health", "streamlit", cwd=ROOT, expected=b"ok", timeout=timeout,
                 env={**os.environ, **(env or {}), "CORECLEAN_CACHE": str(cache)}):
        yield url


def settle(page, timeout_ms: float = WAIT_MS) -> None:
    """Wait until the dashboard's current run has finished (Streamlit's 'notRunning' state): a key pressed while the
    page still re-renders can be dropped by Streamlit's frontend, and a grid read mid-run is half drawn."""
    page.wait_for_function(APP_IDLE, timeout=timeout_ms)
