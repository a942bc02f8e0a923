"""Streamlit helpers of the exploration pages (Map, Sample, Duplicates): "keep one" of a duplicate group, and
links that carry the dataset along. The Map page's grid is ``review_grid.review_tiles`` as it is."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from coreclean import Analysis
from coreclean.review import ReviewLog

from .widgets import LINK_PARAMS


def link_params(**extra: str) -> dict[str, str]:
    """Query params for a page link: the current dataset, round and reviewer, plus ``extra``."""
    params = {k: st.query_params[k] for k in LINK_PARAMS if st.query_params.get(k)}
    params.update({k: str(v) for k, v in extra.items()})
    return params


def keep_first(analysis: Analysis, log: ReviewLog, groups: Sequence[Sequence[int]], reviewer: str | None) -> int:
    """"Keep one, remove the rest": every member of each group but its first gets a ``remove`` decision (members
    already marked ``remove`` are left as they are). Returns how many decisions were written."""
    current = log.current()
    written = 0
    for group in groups:
        for index in [int(i) for i in group][1:]:
            if index in current and current[index].decision == "remove":
                continue
            log.decide(index, int(analysis.y_train[index]), "remove", reviewer=reviewer)
            written += 1
    return written
