"""Streamlit helpers of the exploration pages (Map, Sample, Duplicates): the selection's review grid, "keep one"
of a duplicate group, and links that carry the dataset along.

The review grid reuses :mod:`ui.review_grid` as it is (its tile, keys 1–9, decision control, why flagged); the one
thing added is a *details* link under each tile. ``review_grid.review_tiles`` takes no per-tile footer, so
:func:`selection_tiles` lays the tiles out itself around ``review_grid._tile`` — if ``review_tiles`` gains a
``footer=`` argument (as ``widgets.image_grid`` has), this wrapper can become that one call.
"""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from coreclean import Analysis
from coreclean.review import ReviewLog

from . import review_grid
from .widgets import LINK_PARAMS, details_link


def link_params(**extra: str) -> dict[str, str]:
    """Query params for a page link: the current dataset, round and reviewer, plus ``extra``."""
    params = {k: st.query_params[k] for k in LINK_PARAMS if st.query_params.get(k)}
    params.update({k: str(v) for k, v in extra.items()})
    return params


def selection_tiles(analysis: Analysis, log: ReviewLog, names: Sequence[str], indices: Sequence[int],
                    decided: dict, *, columns: int, reviewer: str | None, why: bool = True) -> None:
    """``review_grid.review_tiles`` with a details link under each tile: the same keys 1–9, decision controls and
    why-flagged line as the Review page."""
    indices = [int(i) for i in indices]
    explained = review_grid.reasons(analysis, indices) if why else {}
    columns = max(1, int(columns))
    for start in range(0, len(indices), columns):
        for slot, (cell, index) in enumerate(zip(st.columns(columns), indices[start:start + columns]), start):
            with cell:
                review_grid._tile(analysis, log, names, index, slot, decided.get(index), explained.get(index),
                                  reviewer)
                details_link(index)


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
