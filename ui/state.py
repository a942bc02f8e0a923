"""Loading and session state: configuration, the shared build runner, cached loaders, the source picker."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import streamlit as st

from coreclean import Analysis, config
from coreclean.importance.backends import IMPORTANCE_BACKENDS, IMPORTANCE_HELP
from coreclean.analysis.labels import unique_labels
from coreclean.review.log import ReviewLog, ReviewLogError
from coreclean.build.rounds import list_rounds

from .widgets import notice_invalid

BUILTIN_SOURCES = ["digits", "fashion-mnist"]


def read_only() -> bool:
    """``CORECLEAN_READONLY=1``: viewers explore and review, but cannot point the server at paths or build."""
    return os.environ.get("CORECLEAN_READONLY", "") not in ("", "0", "false")


def dashboard_weights() -> str | None:
    """ResNet18 weights for image folders the dashboard builds: ``CORECLEAN_WEIGHTS`` (set by the operator to a
    state_dict file for offline use), default the ImageNet enum — the same policy as the CLI."""
    value = os.environ.get("CORECLEAN_WEIGHTS", "imagenet").strip()
    return None if value == "none" else value


def prebuilt_caches() -> list[str]:
    root = config.cache_dir()
    try:
        return sorted(f"cache:{d.name}" for d in root.iterdir() if (d / "meta.json").is_file())
    except OSError:
        return []


class Builds:
    """Analyses built in a background thread shared by every session of this server.

    A build outlives the browser tab that started it, runs once however many sessions ask for it, and its progress
    is visible to all of them.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coreclean-build")
        self.futures: dict[tuple, Future] = {}
        self.progress: dict[tuple, tuple[str, int, int]] = {}

    def get(self, source: str, backend: str, directory: Path, weights: str | None) -> tuple[tuple, Future]:
        key = (source, backend, str(directory), weights)
        with self.lock:
            future = self.futures.get(key)
            if future is None or (future.done() and future.exception() is not None):  # retry failures
                def report(stage: str, done: int, total: int) -> None:
                    self.progress[key] = (stage, done, total)

                future = self.pool.submit(Analysis.build, source, cache_dir=directory, importance=backend,
                                          weights=weights, progress=report)
                self.futures[key] = future
            return key, future


@st.cache_resource(show_spinner=False)
def _builder() -> Builds:
    return Builds()


@st.cache_resource(show_spinner=False, max_entries=32)
def _load(directory: str) -> Analysis:
    return Analysis.load(directory)


def analysis_for(source: str, backend: str = "coreclean") -> Analysis:
    """The analysis of ``source``: a prebuilt cache, or built once per server (waiting with a progress bar)."""
    if source.startswith("cache:"):
        name = source.partition(":")[2]
        if f"cache:{name}" not in prebuilt_caches():  # only names listed in the cache directory, never a path
            raise ValueError(f"{name!r} is not a built analysis in the cache")
        return _load(str(config.cache_dir() / name))
    builds = _builder()
    key, future = builds.get(source, backend, config.cache_dir(), dashboard_weights())
    if not future.done():
        bar = st.progress(0.0, text="Preparing analysis…")
        while not future.done():
            stage, done, total = builds.progress.get(key, ("starting", 0, 1))
            bar.progress(min(done / max(total, 1), 1.0), text=f"Building analysis: {stage} {done:,}/{total:,}")
            time.sleep(0.25)
        bar.empty()
    try:
        return future.result()  # re-raises the build's ValueError for the caller to show
    except OSError as err:  # a user path the server cannot read: a notice, not a traceback
        raise ValueError(f"cannot read it ({err.strerror or err})") from err


def select_source() -> Analysis:
    """Sidebar source picker (bound to ``?source=``); builds with a progress bar the first time.

    In read-only mode (``CORECLEAN_READONLY=1``, for hosting) only analyses the operator built into
    ``CORECLEAN_CACHE`` are offered, and no path can be typed."""
    options = prebuilt_caches() if read_only() else BUILTIN_SOURCES + prebuilt_caches()
    if not options:
        st.error("Read-only mode and no built analysis in the cache: run `python -m coreclean build SOURCE "
                 "--cache DIR` on the server first, with CORECLEAN_CACHE=DIR.")
        st.stop()
    backend = "coreclean"
    with st.sidebar:
        notice_invalid("source", options)
        source = st.selectbox("Dataset", options, key="source", bind="query-params",
                              help="Built-in demo sets, or an analysis built with `python -m coreclean build`.")
        if not read_only():
            path = st.text_input("…or a dataset path", key="path", bind="query-params",
                                 help="ImageFolder or embeddings directory on the server").strip()
            source = path or source
            notice_invalid("backend", list(IMPORTANCE_BACKENDS))
            backend = st.selectbox("Importance backend", list(IMPORTANCE_BACKENDS), key="backend",
                                   bind="query-params", help="; ".join(f"{k}: {v}" for k, v in IMPORTANCE_HELP.items()))
    try:
        return analysis_for(source, backend)
    except ValueError as err:
        st.error(f"Could not open `{source[:200]}` with the {backend} backend: {err}")
    for fallback in ([source] if backend != "coreclean" else []) + options:  # same data, built-in importance
        try:
            return analysis_for(fallback)
        except ValueError:
            continue
    st.stop()


ORIGINAL = "original"


def select_round(base: Analysis) -> Analysis:
    """Sidebar picker of the cleaning round (``?round=`` in the URL): the original build or a retrain revision.

    Not a ``bind="query-params"`` widget: a bound parameter cannot be changed by code, and after Apply & retrain the
    dashboard must move to the new round (:func:`continue_on_round`) and the URL must name it."""
    rounds = {r.label: r for r in list_rounds(base.directory)}
    wanted = st.session_state.pop("pending_round", None)
    if wanted is not None:
        st.session_state["round"] = next((label for label, r in rounds.items() if r.id == wanted), ORIGINAL)
    elif "round" not in st.session_state:
        notice_invalid("round", list(rounds))
        raw = st.query_params.get("round")
        st.session_state["round"] = raw if raw in rounds else ORIGINAL
    elif st.session_state["round"] not in rounds:  # another dataset was picked
        st.session_state["round"] = ORIGINAL
    with st.sidebar:
        chosen = st.selectbox("Cleaning round", list(rounds), key="round",
                              help="Each Apply & retrain makes a new round; earlier rounds stay selectable and the "
                                   "review log is shared by all of them.")
    if chosen == ORIGINAL:
        st.query_params.pop("round", None)
        return base
    st.query_params["round"] = chosen
    return _load(str(rounds[chosen].directory))


def continue_on_round(round_id: str) -> None:
    """Rerun the app on round ``round_id`` (the sidebar picker and the URL follow)."""
    st.session_state["pending_round"] = round_id
    st.rerun()


def parent(analysis: Analysis) -> Analysis:
    """The round ``analysis`` was retrained from."""
    return _load(str((analysis.directory / analysis.meta["lineage"]["parent"]).resolve()))


def current() -> Analysis:
    """The analysis chosen in dashboard.py for this session."""
    if "analysis" not in st.session_state:
        # The first request a fresh server gets is routed through Streamlit's legacy pages/ mode, which runs a
        # deep-linked page without dashboard.py. Switch that mode off (what st.navigation does) and rerun the
        # entry script; the URL path and query string are kept. This private setting is used here and only here.
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()
    return st.session_state["analysis"]


def labels(analysis: Analysis) -> list[str]:
    return unique_labels(analysis.classes)


@st.cache_resource(show_spinner=False, max_entries=16)
def _review_log(directory: str, n_samples: int, n_classes: int) -> ReviewLog:
    return ReviewLog(directory, n_samples, n_classes)


def current_log() -> ReviewLog:
    """The review log of the current analysis's lineage (one log for a build and all its revisions)."""
    analysis = current()
    try:
        log = _review_log(str(analysis.root_analysis), len(analysis.y_train), analysis.n_classes)
        log.check()
        return log
    except ReviewLogError as err:  # this page needs the log; the other pages keep working
        st.error(f"Review decisions are unavailable: {err}")
        st.stop()


def reviewer() -> str | None:
    return st.session_state.get("reviewer") or None
