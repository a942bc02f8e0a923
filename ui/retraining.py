"""Apply & retrain from the dashboard: a job of the background runner (:mod:`ui.jobs`) per session, refused on
read-only hosting unless the operator allows a bounded number of rounds."""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import streamlit as st

from coreclean import Analysis
from coreclean.build.retrain import Revision, retrain
from coreclean.build.rounds import list_rounds
from coreclean.review.log import Decision

from .jobs import follow, runner
from .state import read_only

_log = logging.getLogger(__name__)

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
    if runner().running("retrain"):
        return "Another Apply & retrain is running on this server; try again when it has finished."
    return None


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
    builds = runner()
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
