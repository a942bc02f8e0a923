"""The review grid's controls: which queue feeds it, keyboard-first decisions on its tiles, why a tile is flagged.

Keys: ``1``–``9`` toggle "mislabeled" (with the suggested class: the dataset audit's calibrated suggestion where an
audit is stored, else the classifier's prediction or runner-up) on tile 1–9, ``a`` accepts the page (every tile
still undecided becomes ``ok``) and moves on, ``←``/``→`` page without deciding. Every decision is written to the
review log the moment it is made; the tile widgets read their state from the log when they first appear.
"""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from coreclean import Analysis
from coreclean.importance import explain
from coreclean.quality import issues
from coreclean.review import queue as review_queue
from coreclean.review import stats as review_stats
from coreclean.review.log import DECISIONS_SHOWN, ReviewLog
from coreclean.data.images import ImageUnavailable

from .audit_view import suggestion
from .selection import pair_label, parse_pair
from .widgets import TILE_PX, details_link, plain, tile_image

ALL_CLASSES = "All classes"
MAX_PAIRS = 100  # confusion pairs offered in the queue picker (most frequent first); deep links may name any
KEYS = "123456789"


# --- queues ----------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def _training_pairs(directory: str) -> list:
    """The training set's most frequent confusion pairs, once per analysis (a pass over every row)."""
    analysis = Analysis.load(directory)
    return review_queue.training_pairs(analysis.y_train, analysis.pred_train, analysis.n_classes,
                                       analysis.removed_train, limit=MAX_PAIRS)


def queue_options(analysis: Analysis, names: Sequence[str]) -> list[str]:
    """The queue picker: "All classes", every class, then the training set's most frequent confusion pairs."""
    pairs = _training_pairs(str(analysis.directory))
    return [ALL_CLASSES, *names, *(pair_label(p.true, p.predicted, names) for p in pairs)]


def valid_queue(choice: str | None, options: Sequence[str], names: Sequence[str]) -> bool:
    return choice in options or parse_pair(choice, names) is not None


def issue_from_link(analysis: Analysis) -> str | None:
    """The image-quality issue a link asks to review (``?issue=blurry``, from the Overview), or ``None``; an issue
    the analysis has no scores for gets a notice."""
    issue = st.query_params.get("issue")
    if not issue:
        return None
    try:
        return issues.check_issue(analysis, issue)
    except ValueError as err:
        st.warning(f"Link parameter {err} Showing the class queue instead.")
        return None


def leave_issue() -> None:
    st.query_params.pop("issue", None)


def queue_for(analysis: Analysis, choice: str, names: Sequence[str], *, descending: bool = True,
              issue: str | None = None):
    """(training indices in review order, a description for the caption) of the queue named ``choice``, or of the
    samples flagged for image-quality ``issue`` (most severe first; thresholds from ``t_<issue>`` link params)."""
    if issue is not None:
        flagged = issues.flagged_samples(analysis, issue, issues.thresholds_from_params(st.query_params.to_dict()))
        return flagged if descending else flagged[::-1], f"flagged **{issue}**"
    if choice == ALL_CLASSES:
        return (review_queue.all_classes(analysis.class_importance, analysis.removed_train, descending=descending),
                "of **all classes** (importance normalized within each class)")
    pair = parse_pair(choice, names)
    if pair is not None:
        true, predicted = pair
        return (review_queue.confusion_pair(analysis.y_train, analysis.pred_train, analysis.importance, true,
                                            predicted, analysis.removed_train, descending=descending),
                f"labelled **{plain(names[true])}** and predicted **{plain(names[predicted])}**")
    label = list(names).index(choice)
    return analysis.ranked(label, descending=descending), f"labelled **{plain(choice)}**"


def queue_class(choice: str, names: Sequence[str], issue: str | None = None) -> int | None:
    """The class a queue is about (a pair's label), or ``None`` for all classes and issue queues."""
    if choice == ALL_CLASSES or issue is not None:
        return None
    pair = parse_pair(choice, names)
    return pair[0] if pair else list(names).index(choice)


# --- why flagged and progress ----------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Computing the loss and leverage terms…", max_entries=8)
def _terms(directory: str) -> explain.BoundTerms:
    return explain.bound_terms_of(Analysis.load(directory))


def reasons(analysis: Analysis, indices) -> dict[int, explain.Reason]:
    terms = _terms(str(analysis.directory))
    found = explain.reasons(indices, terms, analysis.y_train, analysis.pred_train, analysis.p_label_train)
    return {r.index: r for r in found}


@st.cache_resource(show_spinner=False, max_entries=8)
def _ranking(directory: str):
    """The one full sort progress needs, once per analysis (its scores never change)."""
    return review_stats.ranking(Analysis.load(directory).class_importance)


@st.cache_resource(show_spinner=False, max_entries=8)
def _stretches(directory: str):
    """Each sample's stretch along its class's ranking, once per analysis (labels and scores never change)."""
    analysis = Analysis.load(directory)
    return review_stats.stretches(analysis.y_train, _ranking(directory), analysis.n_classes)


def progress_of(analysis: Analysis, decided: dict) -> review_stats.Progress:
    directory = str(analysis.directory)
    return review_stats.progress_of(analysis, decided, order=_ranking(directory), stretch=_stretches(directory))


def progress_caption(analysis: Analysis, decided: dict, choice: str, names: Sequence[str],
                     issue: str | None = None) -> str:
    """"Progress — <the queue's class> · <all classes>": reviewed, errors found, errors likely left."""
    progress = progress_of(analysis, decided)
    focus = queue_class(choice, names, issue)
    parts = [progress.line(None)] if focus is None else [progress.line(focus, names), progress.line(None)]
    return "Progress — " + " · ".join(parts)


# --- decisions -------------------------------------------------------------------------------------------------
def _mark(index: int) -> None:
    """A key changed the tile's decision: keep the tile on screen for this visit, and give its decision control a
    new key so it is redrawn from the log. (Writing the control's state instead races with fast reruns: the browser
    may still send the old value with the next key press, which would count as a click on the old value.)"""
    st.session_state.setdefault("decided_here", set()).add(index)
    versions = st.session_state.setdefault("tile_version", {})
    versions[index] = versions.get(index, 0) + 1


def decision_key(index: int) -> str:
    """The key of tile ``index``'s decision control: ``decision_<index>``, suffixed once a key press changed it."""
    version = st.session_state.get("tile_version", {}).get(index, 0)
    return f"decision_{index}" if not version else f"decision_{index}_v{version}"


def toggle_mislabeled(analysis: Analysis, log: ReviewLog, index: int, reviewer: str | None) -> None:
    """Key 1–9: mark the tile mislabeled with the suggested class, or undo that if it already is.

    The log reads and writes in one transaction (Streamlit's fast reruns can run the next key's callback, say ``a``,
    in a new thread while this one is still writing; other sessions and processes write too)."""
    _mark(index)
    log.toggle_mislabeled(index, int(analysis.y_train[index]), suggestion(analysis, index)[0], reviewer=reviewer)


def accept_page(analysis: Analysis, log: ReviewLog, indices: Sequence[int], reviewer: str | None) -> int:
    """Key a: every tile of the page without a current decision becomes ``ok`` (one transaction); returns how
    many."""
    written = log.accept_undecided([int(i) for i in indices], analysis.y_train, reviewer=reviewer)
    for index in written:
        _mark(index)
    return len(written)


def save_choice(analysis: Analysis, log: ReviewLog, names: Sequence[str], index: int, key: str,
                reviewer: str | None) -> None:
    """The tile's decision control (``key``) or class box changed: write it to the log."""
    choice = st.session_state.get(key)
    st.session_state.setdefault("decided_here", set()).add(index)
    chosen = st.session_state.get(f"new_{index}")
    new = list(names).index(chosen) if chosen else suggestion(analysis, index)[0]
    log.decide(index, int(analysis.y_train[index]), choice, new_label=new, reviewer=reviewer)


# --- tiles -----------------------------------------------------------------------------------------------------
def review_tiles(analysis: Analysis, log: ReviewLog, names: Sequence[str], indices: Sequence[int], decided: dict,
                 *, columns: int, reviewer: str | None, why: bool = True) -> None:
    """The grid of ``indices``: image, caption, the keyboard toggle (``1``–``9``), the decision control and, if
    ``why``, what puts the sample on top. ``decided`` is the log's current decisions (``log.current()``)."""
    indices = [int(i) for i in indices]
    explained = reasons(analysis, indices) if why else {}
    columns = max(1, int(columns))
    for start in range(0, len(indices), columns):
        for slot, (cell, index) in enumerate(zip(st.columns(columns), indices[start:start + columns]), start):
            with cell:
                _tile(analysis, log, names, index, slot, decided.get(index), explained.get(index), reviewer)


def _tile(analysis, log, names, index, slot, current, reason, reviewer) -> None:
    label = int(analysis.y_train[index])
    text = (f"#{index} · label {plain(names[label])} · pred {plain(names[analysis.pred_train[index]])}"
            f" · imp {analysis.class_importance[index]:.3f}")
    try:
        st.image(tile_image(analysis, index), caption=text, width=TILE_PX)
    except ImageUnavailable as err:
        st.info(f"{text}\n\nimage unavailable: {err}")
    details_link(index)
    if reason is not None:
        st.caption(reason.summary(names))
    key = decision_key(index)
    if key not in st.session_state:  # first time on screen: show what the log holds
        st.session_state[key] = current.decision if current else None
    flagged = st.session_state[key] == "mislabeled"
    suggested, confidence = suggestion(analysis, index)
    if flagged and current and current.new_label is not None:
        suggested = current.new_label
    sure = f" ({confidence:.0%})" if confidence is not None else ""  # the audit's probability it is the true class
    hint = (f"Key {KEYS[slot]}. " if slot < len(KEYS) else "") + \
        ("The dataset audit's suggestion and its calibrated confidence." if confidence is not None else
         "The classifier's prediction (its runner-up where it agrees with the label); run the dataset audit on the "
         "Overview for a calibrated suggestion.")
    st.button("Undo mislabeled" if flagged else f"Mislabeled → {plain(names[suggested])}{sure}", key=f"flip_{index}",
              shortcut=KEYS[slot] if slot < len(KEYS) else None, type="primary" if flagged else "secondary",
              on_click=toggle_mislabeled, args=(analysis, log, index, reviewer), help=hint)
    st.segmented_control("Decision", list(DECISIONS_SHOWN), key=key, on_change=save_choice,
                         args=(analysis, log, names, index, key, reviewer), label_visibility="collapsed")
    if flagged:
        others = [c for c in range(len(names)) if c != label]
        st.selectbox("Correct class", [names[c] for c in others], index=others.index(suggested), key=f"new_{index}",
                     on_change=save_choice, args=(analysis, log, names, index, key, reviewer))


def undo_decision(log: ReviewLog, sample: int | None) -> None:
    """Button callback: undo ``sample``'s current decision (the one before it comes back) and say so. A callback,
    so the click survives the rerun that brings a deep-linked page into the navigation (:func:`ui.state.current`)."""
    if sample is None:
        return
    restored = log.undo(sample)
    st.toast(f"Undid sample {sample}" + (f"; back to '{restored.decision}'" if restored else ""))
