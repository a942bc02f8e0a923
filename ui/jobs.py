"""The background runner: builds, Apply & retrain and the dataset audit run as jobs of one worker thread shared by
every session of the server, each followed by any session with a progress bar."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import streamlit as st

from coreclean import Analysis
from coreclean.build.params import BuildParams


class Builds:
    """The background runner: analysis builds and Apply & retrain run in one worker thread shared by every session
    of this server (one job at a time: two would compete for the same cores and memory).

    A job outlives the browser tab that started it, runs once however many sessions ask for it, and its progress
    (``progress[key]``: stage, done, total) is visible to all of them.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coreclean-build")
        self.futures: dict[tuple, Future] = {}
        self.progress: dict[tuple, tuple[str, int, int]] = {}

    def start(self, key: tuple, task: Callable[..., Any], *args, again: bool = False, **kwargs) -> Future:
        """Run ``task(*args, progress=report, **kwargs)`` as the job ``key``: once however many sessions ask for it
        while it runs or after it succeeded; a failed job, or with ``again`` a finished one, runs anew."""
        with self.lock:
            future = self.futures.get(key)
            if future is None or (future.done() and (again or future.exception() is not None)):
                def report(stage: str, done: int, total: int) -> None:
                    self.progress[key] = (stage, done, total)

                self.progress.pop(key, None)
                future = self.pool.submit(task, *args, progress=report, **kwargs)
                self.futures[key] = future
            return future

    def running(self, kind: str) -> bool:
        """Whether a job whose key starts with ``kind`` is queued or running."""
        with self.lock:
            return any(key[0] == kind and not future.done() for key, future in self.futures.items())

    def get(self, source: str, params: BuildParams, directory: Path) -> tuple[tuple, Future]:
        key = (source, params, str(directory))
        return key, self.start(key, Analysis.build, source, params, cache_dir=directory)


@st.cache_resource(show_spinner=False)
def runner() -> Builds:
    """The server's one background runner (shared by every session)."""
    return Builds()


def follow(key: tuple, future: Future, slot, doing: str) -> None:
    """Show the progress of the runner's job ``key`` as a bar in ``slot`` (an ``st.empty()``) until it is done,
    then clear it. A rerun (a click, another page) interrupts the wait, never the job."""
    builds = runner()
    bar = slot.progress(0.0, text=f"{doing}…")
    while not future.done():
        if key in builds.progress:
            stage, done, total = builds.progress[key]
            bar.progress(min(done / max(total, 1), 1.0), text=f"{doing}: {stage} {done:,}/{total:,}")
        elif not future.running():  # queued behind another session's build or retrain
            bar.progress(0.0, text=f"{doing}: waiting for the job before it to finish…")
        time.sleep(0.25)
    slot.empty()
