"""Loading and session state: configuration, the shared background runner (builds, Apply & retrain), cached
loaders, the source picker."""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import streamlit as st

from coreclean import Analysis, config
from coreclean.build.params import BuildParams
from coreclean.importance.backends import IMPORTANCE_BACKENDS, IMPORTANCE_HELP
from coreclean.analysis.labels import unique_labels
from coreclean.review.log import Decision, ReviewLog, ReviewLogError
from coreclean.build.retrain import Revision, retrain
from coreclean.build.rounds import list_rounds

from .widgets import notice_invalid

BUILTIN_SOURCES = ["digits", "fashion-mnist"]
_log = logging.getLogger(__name__)


def read_only() -> bool:
    """``CORECLEAN_READONLY=1``: viewers explore and review, but cannot point the server at paths or build."""
    return os.environ.get("CORECLEAN_READONLY", "") not in ("", "0", "false")


HOSTED_RETRAIN_ENV = "CORECLEAN_HOSTED_RETRAIN"


def hosted_retrain_rounds() -> int:
    """In read-only mode, how many cleaning rounds viewers may add to each analysis with Apply & retrain
    (``CORECLEAN_HOSTED_RETRAIN=N``, set by the operator). 0, the default (also for anything but ASCII digits):
    Apply & retrain is not offered, so viewers never write revisions into the operator's cache."""
    raw = os.environ.get(HOSTED_RETRAIN_ENV, "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else 0


def retrain_refusal(analysis: Analysis) -> str | None:
    """Why Apply & retrain of ``analysis`` cannot start now on this server, or ``None`` when it can. Only read-only
    hosting refuses: when the operator has not enabled it, when its lineage holds the operator's number of rounds
    (viewers cannot delete rounds, so they are bounded), or while another Apply & retrain runs (one at a time)."""
    if not read_only():
        return None
    limit = hosted_retrain_rounds()
    if limit == 0:
        return (f"Apply & retrain is off on this read-only server (the operator can allow it with "
                f"{HOSTED_RETRAIN_ENV}=N rounds per analysis); the decisions are kept in the review log.")
    made = len(list_rounds(analysis.root_analysis)) - 1
    if made >= limit:
        return (f"This analysis already has {made} retrained rounds, the most this server allows "
                f"({HOSTED_RETRAIN_ENV}={limit}); ask its operator to raise the limit.")
    if _builder().running("retrain"):
        return "Another Apply & retrain is running on this server; try again when it has finished."
    return None


def prebuilt_caches() -> list[str]:
    root = config.cache_dir()
    try:
        return sorted(f"cache:{d.name}" for d in root.iterdir() if (d / "meta.json").is_file())
    except OSError:
        return []


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
def _builder() -> Builds:
    return Builds()


@st.cache_resource(show_spinner=False, max_entries=32)
def _load(directory: str) -> Analysis:
    return Analysis.load(directory)


def follow(key: tuple, future: Future, slot, doing: str) -> None:
    """Show the progress of the runner's job ``key`` as a bar in ``slot`` (an ``st.empty()``) until it is done,
    then clear it. A rerun (a click, another page) interrupts the wait, never the job."""
    builds = _builder()
    bar = slot.progress(0.0, text=f"{doing}…")
    while not future.done():
        if key in builds.progress:
            stage, done, total = builds.progress[key]
            bar.progress(min(done / max(total, 1), 1.0), text=f"{doing}: {stage} {done:,}/{total:,}")
        elif not future.running():  # queued behind another session's build or retrain
            bar.progress(0.0, text=f"{doing}: waiting for the job before it to finish…")
        time.sleep(0.25)
    slot.empty()


def analysis_for(source: str, backend: str = "coreclean", backbone: str | None = None) -> Analysis:
    """The analysis of ``source``: a prebuilt cache, or built once per server (waiting with a progress bar)."""
    if source.startswith("cache:"):
        name = source.partition(":")[2]
        if f"cache:{name}" not in prebuilt_caches():  # only names listed in the cache directory, never a path
            raise ValueError(f"{name!r} is not a built analysis in the cache")
        return _load(str(config.cache_dir() / name))
    builds = _builder()
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


@dataclass(frozen=True)
class RetrainJob:
    """This session's Apply & retrain: the runner's job ``key`` and ``future`` (a :class:`Revision`), for the
    lineage of the original analysis ``root``."""

    key: tuple
    future: Future
    root: str


_RETRAIN_JOB, _RETRAIN_FAILED = "retrain_job", "retrain_failed"
_HOSTED_START = threading.Lock()


def start_retrain(analysis: Analysis, decisions: dict[int, Decision]) -> None:
    """Apply & retrain ``analysis`` with ``decisions`` (the log's current ones) as a job of the background runner,
    followed by this session (:func:`retrain_outcome`). The same round and decisions asked for again while the job
    runs (another click, another session) join it instead of queueing a copy."""
    key = ("retrain", str(analysis.directory), hash(tuple(sorted(d.id for d in decisions.values()))))
    builds = _builder()
    with _HOSTED_START:  # the check and the start as one step: two viewers' clicks never both pass the check
        refusal = retrain_refusal(analysis)
        if refusal is not None and not (builds.futures.get(key) and not builds.futures[key].done()):
            st.session_state[_RETRAIN_FAILED] = (str(analysis.root_analysis), refusal)
            return
        future = builds.start(key, retrain, analysis, dict(decisions), again=True)
    st.session_state[_RETRAIN_JOB] = RetrainJob(key, future, str(analysis.root_analysis))
    st.session_state.pop(_RETRAIN_FAILED, None)


def retrain_running(analysis: Analysis) -> bool:
    """Whether this session's Apply & retrain of ``analysis``'s lineage is still running."""
    job = st.session_state.get(_RETRAIN_JOB)
    return job is not None and job.root == str(analysis.root_analysis) and not job.future.done()


def retrain_outcome(analysis: Analysis, slot) -> tuple[Revision | None, str | None]:
    """(revision, failure) of this session's Apply & retrain of ``analysis``'s lineage: waits for a running job
    with a progress bar in ``slot``, then hands its revision over once; ``failure`` is a message for the page,
    kept until the next Apply & retrain. (None, None) when there is neither."""
    root = str(analysis.root_analysis)
    job = st.session_state.get(_RETRAIN_JOB)
    if job is not None and job.root == root:
        if not job.future.done():
            follow(job.key, job.future, slot, "Apply & retrain")
        del st.session_state[_RETRAIN_JOB]
        error = job.future.exception()
        if error is None:
            return job.future.result(), None
        if not isinstance(error, (ValueError, OSError)):  # a bug, not a refusal: the server log gets the traceback
            _log.error("Apply & retrain failed", exc_info=error)
        message = str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"
        st.session_state[_RETRAIN_FAILED] = (root, message)
    failed = st.session_state.get(_RETRAIN_FAILED)
    return None, failed[1] if failed and failed[0] == root else None


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
