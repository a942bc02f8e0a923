"""Streamlit helpers shared by the pages: the cached analysis, URL-state notices and the image grid."""
from __future__ import annotations

import hmac
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from coreclean import Analysis
from coreclean.analysis import DEFAULT_CACHE
from coreclean.images import ImageUnavailable, image_for
from coreclean.review import ReviewLog
from coreclean.views import unique_labels

BUILTIN_SOURCES = ["digits", "fashion-mnist"]


def cache_dir() -> Path:
    """Where analyses live (``CORECLEAN_CACHE``); fixed by the operator when hosting."""
    return Path(os.environ.get("CORECLEAN_CACHE", DEFAULT_CACHE))


def read_only() -> bool:
    """``CORECLEAN_READONLY=1``: viewers explore and review, but cannot point the server at paths or build."""
    return os.environ.get("CORECLEAN_READONLY", "") not in ("", "0", "false")
TILE_PX = 180


def prebuilt_caches() -> list[str]:
    root = cache_dir()
    if not root.is_dir():
        return []
    return sorted(f"cache:{d.name}" for d in root.iterdir() if (d / "meta.json").is_file())


@st.cache_resource(show_spinner=False)
def _builder() -> "Builds":
    return Builds()


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

    def get(self, key: tuple) -> Future:
        source, backend, directory = key
        with self.lock:
            future = self.futures.get(key)
            if future is None or (future.done() and future.exception() is not None):  # retry failures
                report = lambda stage, done, total: self.progress.__setitem__(key, (stage, done, total))
                future = self.pool.submit(Analysis.build, source, cache_dir=directory, importance=backend,
                                          progress=report)
                self.futures[key] = future
            return future


@st.cache_resource(show_spinner=False, max_entries=32)
def _load(directory: str) -> Analysis:
    return Analysis.load(directory)


def _analysis_for(source: str, backend: str = "coreclean") -> Analysis:
    """The analysis of ``source``: a prebuilt cache, or built once per server (waiting with a progress bar)."""
    if source.startswith("cache:"):
        name = source.partition(":")[2]
        if f"cache:{name}" not in prebuilt_caches():  # only names listed in the cache directory, never a path
            raise ValueError(f"{name!r} is not a built analysis in {cache_dir()}")
        return _load(str(cache_dir() / name))
    builds = _builder()
    key = (source, backend, str(cache_dir()))
    future = builds.get(key)
    if not future.done():
        bar = st.progress(0.0, text="Preparing analysis…")
        while not future.done():
            stage, done, total = builds.progress.get(key, ("starting", 0, 1))
            bar.progress(min(done / max(total, 1), 1.0), text=f"Building analysis: {stage} {done:,}/{total:,}")
            time.sleep(0.25)
        bar.empty()
    return future.result()  # re-raises the build's ValueError for the caller to show


def notice_invalid(key: str, valid) -> None:
    """Say so when a deep link carried a value the widget will ignore (Streamlit drops it silently)."""
    raw = st.query_params.get(key)
    if raw is not None and raw != "" and raw not in valid:
        st.warning(f"Link parameter `{key}={raw}` is not valid here; showing the default instead.")


def _secret(name: str):
    try:
        return st.secrets.get(name)
    except (FileNotFoundError, KeyError, AttributeError):  # no secrets.toml: local use, access control off
        return None
    except Exception:  # a malformed secrets file must not lock the operator out silently
        st.error("`.streamlit/secrets.toml` could not be parsed; access control is not configured.")
        st.stop()


def require_access() -> None:
    """Optional access control for hosted use, configured by the operator in ``.streamlit/secrets.toml``:
    an ``[auth]`` section enables Streamlit's OIDC login (``st.login``); a top-level ``password`` enables a shared
    password. With neither (the local default) everyone gets in."""
    if _secret("auth"):
        if not st.user.is_logged_in:
            st.title("coreclean")
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        st.sidebar.button("Log out", on_click=st.logout)
        return
    password = _secret("password")
    if not password or st.session_state.get("access_granted"):
        return
    typed = st.text_input("Password", type="password", key="access_password")
    if typed and hmac.compare_digest(typed.encode(), str(password).encode()):
        st.session_state["access_granted"] = True
        st.session_state.pop("access_password", None)
        st.rerun()
    if typed:
        st.error("Wrong password.")
    st.stop()


def select_source() -> Analysis:
    """Sidebar source picker (bound to ``?source=``); builds with a progress bar the first time.

    In read-only mode (``CORECLEAN_READONLY=1``, for hosting) only analyses the operator built into
    ``CORECLEAN_CACHE`` are offered, and no path can be typed."""
    options = prebuilt_caches() if read_only() else BUILTIN_SOURCES + prebuilt_caches()
    if not options:
        st.error(f"Read-only mode and no built analysis under `{cache_dir()}`: run `python -m coreclean build SOURCE "
                 f"--cache {cache_dir()}` on the server first.")
        st.stop()
    with st.sidebar:
        notice_invalid("source", options)
        source = st.selectbox("Dataset", options, key="source", bind="query-params",
                              help="Built-in demo sets, or an analysis built with `python -m coreclean build`.")
        if not read_only():
            path = st.text_input("…or a dataset path", key="path", bind="query-params",
                                 help="ImageFolder or embeddings directory on the server").strip()
            source = path or source
            backend = st.selectbox("Importance backend", ["coreclean", "dataheroes"], key="backend",
                                   bind="query-params", help="dataheroes needs the optional package, an account "
                                                             "and internet (requirements-dataheroes.txt).")
        else:
            backend = "coreclean"
    try:
        return _analysis_for(source, backend)
    except ValueError as err:
        st.error(f"Could not open `{source}` with the {backend} backend: {err}")
    for fallback in ([source] if backend != "coreclean" else []) + options:  # same data, built-in importance
        try:
            return _analysis_for(fallback)
        except ValueError:
            continue
    st.stop()


def current() -> Analysis:
    """The analysis chosen in dashboard.py for this session."""
    if "analysis" not in st.session_state:
        # The first request a fresh server gets is routed through Streamlit's legacy pages/ mode, which runs a
        # deep-linked page without dashboard.py. Switch that mode off (what st.navigation does) and rerun the
        # entry script; the URL path and query string are kept.
        from streamlit.runtime.pages_manager import PagesManager

        PagesManager.uses_pages_directory = False
        st.rerun()
    return st.session_state["analysis"]


def labels(analysis: Analysis) -> list[str]:
    return unique_labels(analysis.classes)


def _tile(analysis: Analysis, index: int, split: str) -> Image.Image | str:
    try:
        image = image_for(analysis, index, split)
    except ImageUnavailable as err:
        return str(err)
    scale = max(1, TILE_PX // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def image_grid(analysis: Analysis, indices: np.ndarray, *, split: str = "train", columns: int = 3,
               caption=None, footer=None) -> None:
    """Render only the given samples as tiles; unreadable ones show a placeholder with the reason.

    ``footer(index)`` may render widgets under each tile (the review controls)."""
    columns = max(1, int(columns))
    for start in range(0, len(indices), columns):
        cells = st.columns(columns)
        for cell, index in zip(cells, indices[start:start + columns]):
            with cell:
                tile = _tile(analysis, int(index), split)
                text = caption(int(index)) if caption else f"#{index}"
                if isinstance(tile, str):
                    st.info(f"{text}\n\nimage unavailable: {tile}")
                else:
                    st.image(tile, caption=text, width=TILE_PX)
                if footer:
                    footer(int(index))


@st.cache_resource(show_spinner=False, max_entries=16)
def review_log(directory: str, n_samples: int) -> ReviewLog:
    return ReviewLog(directory, n_samples)


def current_log() -> ReviewLog:
    analysis = current()
    return review_log(str(analysis.directory), len(analysis.y_train))


def reviewer() -> str | None:
    return st.session_state.get("reviewer") or None
