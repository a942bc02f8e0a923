"""Streamlit helpers of the exploration pages (Map, Sample, Duplicates): the Sample page's picker, "keep one" of a
duplicate group, and links that carry the round along. The Map page's grid is ``review_grid.review_tiles`` as is."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from coreclean import Analysis
from coreclean.review.log import ReviewLog

from . import widgets
from .widgets import LINK_PARAMS


def link_params(**extra: str) -> dict[str, str]:
    """Query params for a page link: the current dataset, round and reviewer, plus ``extra``."""
    params = {k: st.query_params[k] for k in LINK_PARAMS if st.query_params.get(k)}
    params.update({k: str(v) for k, v in extra.items()})
    return params


def keep_first(analysis: Analysis, log: ReviewLog, groups: Sequence[Sequence[int]], reviewer: str | None) -> int:
    """"Keep one, remove the rest": every member of each group but its first gets a ``remove`` decision (members
    already marked ``remove`` are left as they are), in one transaction of the log. Returns how many decisions were
    written."""
    return len(log.keep_first(groups, analysis.y_train, reviewer=reviewer))


SPLITS = ("train", "test")


def sample_picker(analysis: Analysis) -> tuple[str, int]:
    """The Sample page's split and index, from ``?split=`` and ``?i=`` and kept in the URL.

    Not ``bind="query-params"`` widgets: the page's own buttons (:func:`open_sample`) change the sample, and code
    cannot set a bound parameter. A link that differs from the last one seen (or a first visit) sets both widgets;
    the widgets write the URL.
    """
    link = (st.query_params.get("split", "train"), st.query_params.get("i"))
    if link != st.session_state.get("sample_link") or "sample_i" not in st.session_state:  # (left the page)
        split, raw = link
        if split not in SPLITS:
            st.warning(f"Link parameter `split={split}` is not train or test; showing train.")
            split = "train"
        last = len(analysis.y_train if split == "train" else analysis.y_test) - 1
        index = widgets.link_int("i", last, default=f"showing sample 0 of the {split} split")
        st.session_state["sample_split"], st.session_state["sample_i"] = split, index or 0
    top = st.columns([1, 1, 3])
    split = top[0].radio("Split", SPLITS, horizontal=True, key="sample_split")
    last = len(analysis.y_train if split == "train" else analysis.y_test) - 1
    if st.session_state.get("sample_i", 0) > last:  # switched to a smaller split
        st.session_state["sample_i"] = 0
    index = int(top[1].number_input("Index", 0, last, 0, key="sample_i"))
    if split == "train":
        st.query_params.pop("split", None)
    else:
        st.query_params["split"] = split
    st.query_params["i"] = str(index)
    st.session_state["sample_link"] = (split, str(index))
    return split, index


def open_sample(index: int, split: str = "train") -> None:
    """Show sample ``index`` on the Sample page (a button's callback there; a page link to the page it is on would
    drop the sidebar's bound parameters, such as the reviewer, from the URL)."""
    st.session_state["sample_split"], st.session_state["sample_i"] = split, int(index)
