"""Text search on the Map and Review pages: a query box ranks training samples by similarity to the text.

Only analyses built with a CLIP-style backbone have a text tower; for the others the box is not shown at all
(:func:`query_box` returns ""). The query is part of the URL (``?q=`` on Review, ``?mq=`` on Map).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from coreclean.analysis.text_query import search_text, text_tower
from . import review_grid, selection, widgets

TOP = 200  # matches listed per query: a review session's worth, and the exact search stays well under a second
EXAMPLE = "a photo of a dog wearing a hat"


def available(analysis) -> bool:
    """Whether ``analysis`` has a text tower (text search, zero-shot label check)."""
    return text_tower(analysis) is not None


def query_box(analysis, container=st, key: str = "q") -> str:
    """The query box in ``container`` (bound to ``?key=``), stripped; "" without a text tower (no box shown)."""
    if not available(analysis):
        return ""
    return container.text_input("Search by text", key=key, bind="query-params", placeholder=EXAMPLE,
                                help="Ranks the training samples by the similarity of their image embedding to "
                                     "this text (the backbone's text tower). Clear it to return.").strip()


@st.cache_data(show_spinner="Embedding the query…", max_entries=64)
def _matches(_analysis, directory: str, query: str, k: int) -> np.ndarray:
    return search_text(_analysis, query, k)[0]


def matches(analysis, query: str, k: int = TOP) -> np.ndarray:
    """Training indices (≤ k,) closest to ``query``, most similar first; empty (with the reason shown) when the
    query cannot be embedded (e.g. the text tower's weights changed since the build)."""
    try:
        return _matches(analysis, str(analysis.directory), query, int(k))
    except ValueError as err:
        st.error(str(err))
        return np.zeros(0, np.int64)


def results_grid(analysis, log, names, decided: dict, query: str, *, columns: int, reviewer: str | None,
                 why: bool, rows: int = 2) -> None:
    """The samples closest to ``query`` as review tiles, paged (``?tpage=``)."""
    found = matches(analysis, query)
    head = st.columns([4, 1])
    head[0].subheader(f"{len(found)} samples closest to “{query}”")
    size = int(columns * rows)
    pages = max(1, -(-len(found) // size))
    page = widgets.page_number(head[1], "Page", pages, key="tpage")
    start, stop = selection.page_bounds(len(found), (page - 1) * size, size)
    review_grid.review_tiles(analysis, log, names, [int(i) for i in found[start:stop]], decided, columns=columns,
                             reviewer=reviewer, why=why)
