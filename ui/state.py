"""Loading and session state: configuration, cached loaders, the source picker, the current analysis and review
log (builds run on the background runner of :mod:`ui.jobs`)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from coreclean import Analysis, config
from coreclean.build.params import BuildParams
from coreclean.importance.backends import IMPORTANCE_BACKENDS, IMPORTANCE_HELP
from coreclean.analysis.labels import unique_labels
from coreclean.review.log import ReviewLog, ReviewLogError
from coreclean.build.rounds import list_rounds

from .jobs import follow, runner
from .widgets import notice_invalid

BUILTIN_SOURCES = ["digits", "fashion-mnist"]


def read_only() -> bool:
    """``CORECLEAN_READONLY=1``: viewers explore and review, but cannot point the server at paths or build."""
    return os.environ.get("CORECLEAN_READONLY", "") not in ("", "0", "false")


def prebuilt_caches() -> list[str]:
    root = config.cache_dir()
    try:
        return sorted(f"cache:{d.name}" for d in root.iterdir() if (d / "meta.json").is_file())
    except OSError:
        return []


@st.cache_resource(show_spinner=False, max_entries=32)
def _load(directory: str) -> Analysis:
    return Analysis.load(directory)


def analysis_for(source: str, backend: str = "coreclean", backbone: str | None = None) -> Analysis:
    """The analysis of ``source``: a prebuilt cache, or built once per server (waiting with a progress bar)."""
    if source.startswith("cache:"):
        name = source.partition(":")[2]
        if f"cache:{name}" not in prebuilt_caches():  # only names listed in the cache directory, never a path
            raise ValueError(f"{name!r} is not a built analysis in the cache")
        return _load(str(config.cache_dir() / name))
    builds = runner()
    # the weights follow the one policy (CORECLEAN_WEIGHTS, set by the operator for offline use, else imagenet)
    key, future = builds.get(source, BuildParams(importance=backend, backbone=backbone or None), config.cache_dir())
    if not future.done():
        follow(key, future, st.empty(), "Building analysis")
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
    backend, backbone = "coreclean", ""
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
            backbone = st.text_input("Backbone", key="backbone", bind="query-params", placeholder="the source's default",
                                     help="Any name `--backbone` takes: pixels, cnn, precomputed, a torchvision "
                                          "model (resnet18, resnet50, convnext_tiny, vit_b_16 …), clip:ARCH (text "
                                          "search). Weights follow CORECLEAN_WEIGHTS (README: which backbone)."
                                     ).strip()
    try:
        return analysis_for(source, backend, backbone)
    except ValueError as err:
        st.error(f"Could not open `{source[:200]}` with the {backend} backend"
                 f"{f' and backbone {backbone[:80]}' if backbone else ''}: {err}")
    for fallback in ([source] if backend != "coreclean" or backbone else []) + options:  # same data, built-in importance
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


def open_round(round_id: str) -> None:
    """Have the next run open round ``round_id`` (the sidebar picker and the URL follow); a button callback."""
    st.session_state["pending_round"] = round_id


def continue_on_round(round_id: str) -> None:
    """Rerun the app on round ``round_id`` now."""
    open_round(round_id)
    st.rerun()


def parent(analysis: Analysis) -> Analysis:
    """The round ``analysis`` was retrained from."""
    return _load(str((analysis.directory / analysis.meta["lineage"]["parent"]).resolve()))


def current() -> Analysis:
    """The analysis chosen in dashboard.py for this session. Every page calls this first: it makes sure the page runs
    inside dashboard.py's navigation (and so inside :func:`page_errors`)."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory or "analysis" not in st.session_state:
        # The first request a fresh server gets is routed through Streamlit's legacy pages/ mode, which runs a
        # deep-linked page without dashboard.py (no analysis picked, no error handling). Switch that mode off (what
        # st.navigation does) and rerun the entry script; the URL path and query string are kept. This private
        # setting is used here and only here.
        PagesManager.uses_pages_directory = False
        st.rerun()
    return st.session_state["analysis"]


@contextmanager
def page_errors() -> Iterator[None]:
    """Show a ``ValueError`` the page raises as a message in the page, not a traceback: the store's loader names a
    damaged or hand-edited file and how to rebuild it (:func:`coreclean.build.store.load_array`), and the other
    pages keep working. dashboard.py runs every page inside it (:func:`current` sees to that)."""
    try:
        yield
    except ValueError as err:
        st.error(f"This page cannot be shown: {err}")


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
