"""A suggested label for every sample, with the probability that it is the true one.

Three steps, all on out-of-fold probabilities (the classifier never saw the sample it scores):

1. **Calibration** (:mod:`coreclean.audit.calibrate`): per class an isotonic map fitted on the given labels, so
   that ``p_c(g | x)`` is calibrated for the *given* label.
2. **Backward correction** (Patrini et al. 2017): with the estimated noise matrix ``M[t, g] = P(given g | true t)``
   (:mod:`coreclean.audit.noise`), ``p_c(. | x) = p*(. | x) M``, so ``p* = p_c M^-1`` (clipped at 0,
   renormalized) estimates the probability of the *true* class.
3. **Noise posterior**: Bayes' rule gives the probability that the true class is t for a sample labelled y:
   ``post(t) ∝ p*(t | x) M[t, y]``. The suggestion is the most probable class other than the given
   one, its confidence ``post(suggestion)``; ``1 - post(y)`` is the probability the given label is wrong.

The matrices are the anchor counts plus pseudo-counts (:func:`suggest_from_estimate`): the posterior's plus
``POSTERIOR_PSEUDO`` per off-diagonal cell; the suggestion is picked under plus ``CHOICE_PSEUDO`` (flatter), so that
a flip the anchors happened not to contain does not rule its true class out. Last, the posterior's total is matched
to the noise estimate (:func:`match_rate`): one shift of every row's odds of a wrong label.

Calibration is measured in ``bench/audit.py`` (expected calibration error on the samples a reviewer sees first,
against the injected truth; reliability table in docs/benchmarks.md).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit, logit

from .calibrate import EPS, Calibration
from .noise import NoiseEstimate, smoothed_noise_matrix


def _normalized(proba: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(proba, dtype=np.float32), EPS, None)
    return p / p.sum(axis=1, keepdims=True)


POSTERIOR_PSEUDO = 1.0
CHOICE_PSEUDO = 4.0


def suggest_labels(proba: np.ndarray, y: np.ndarray, noise_matrix: np.ndarray,
                   calibration: Calibration | None = None, *, choice_matrix: np.ndarray | None = None,
                   batch: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row the suggested label, its confidence and the probability that the given label is wrong.

    proba : (n, K) out-of-fold probabilities.   y : (n,) given labels.   noise_matrix : (K, K) ``P(given | true)``.
    calibration : the map of ``proba`` onto the given labels' frequencies (default: ``proba`` as it is).
    choice_matrix : (K, K) ``P(given | true)`` that picks the suggestion (default ``noise_matrix``): the same
        posterior, with a flatter matrix so that a flip the anchors happened not to see (an estimated 0) does not
        veto the true class; the confidence is always the posterior under ``noise_matrix``.
    batch : rows per step (default: about 2**23 cells, so that each (batch, K) float32 temporary stays ~32 MB).
    Returns suggested (n,) int64 (never the given label when K > 1), confidence (n,) float32 and
    p_wrong (n,) float32, all from the noise posterior (module docstring).
    """
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    batch = batch or max(1024, 2**23 // max(len(noise_matrix), 1))
    noise_matrix = np.asarray(noise_matrix, dtype=np.float64)
    choice = noise_matrix if choice_matrix is None else np.asarray(choice_matrix, dtype=np.float64)
    inverse, choice_inverse = (np.linalg.pinv(m).astype(np.float32) for m in (noise_matrix, choice))
    noise_matrix, choice = noise_matrix.astype(np.float32), choice.astype(np.float32)
    suggested, confidence, p_wrong = np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.float32)
    for start in range(0, n, batch):
        labels = y[start:start + batch]
        rows = np.arange(len(labels))
        chunk = proba[start:start + batch]
        calibrated = _normalized(chunk) if calibration is None else calibration.transform(chunk)
        post = _posterior(np.clip(calibrated @ inverse, EPS, None), noise_matrix, labels)
        given = post[rows, labels].copy()
        post[rows, labels] = 0.0  # the other classes' sum, not 1 - post(y): float32 keeps p(wrong) down to 1e-38
        p_wrong[start:start + batch] = post.sum(axis=1)
        post[rows, labels] = given
        clean = np.clip(calibrated @ choice_inverse, EPS, None)  # one product per matrix: (batch, K) x (K, K)
        pick = post.copy() if choice_matrix is None else _posterior(clean, choice, labels)
        pick[rows, labels] = -1.0
        # exact ties (classes the noise matrix never sends into the given label all have posterior 0; on clean data
        # every class does): the corrected probability p* decides, not the lowest class index
        tied = pick >= pick.max(axis=1, keepdims=True)
        best = np.where(tied, clean, -1.0).argmax(axis=1)
        suggested[start:start + batch] = best
        confidence[start:start + batch] = post[rows, best]
    return suggested, confidence, p_wrong


def _posterior(clean: np.ndarray, matrix: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(m, K) ``P(true t | x, given y)`` ∝ ``p*(t | x) M[t, y]``; ``clean`` = p* = p_c M^-1 clipped at ``EPS``."""
    post = clean * matrix[:, labels].T
    return post / np.clip(post.sum(axis=1, keepdims=True), np.finfo(post.dtype).tiny, None)


def suggest_from_estimate(proba: np.ndarray, y: np.ndarray, estimate: NoiseEstimate,
                          calibration: Calibration | None = None, *,
                          reference: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`suggest_labels` with the matrices of a :class:`~coreclean.audit.noise.NoiseEstimate`: the posterior
    under its anchor counts plus ``POSTERIOR_PSEUDO`` per off-diagonal cell, the suggestion picked under
    ``CHOICE_PSEUDO`` (both chosen on Fashion-MNIST 20k, noise seed 0, in ``bench/audit.py``: with no pseudo-counts
    a flip unseen among the anchors got probability 0 and 29% of the uniform 5% flips got a wrong suggestion); then
    matched to the estimate's rate (:func:`match_rate`) over the ``reference`` rows (default all: rows that stand
    for the whole set, e.g. a random sample of it)."""
    suggested, confidence, p_wrong = suggest_labels(proba, y, smoothed_noise_matrix(estimate, POSTERIOR_PSEUDO),
                                                    calibration,
                                                    choice_matrix=smoothed_noise_matrix(estimate, CHOICE_PSEUDO))
    shift = match_rate(p_wrong if reference is None else p_wrong[reference], estimate.rate)
    matched = _shifted(p_wrong, shift)
    with np.errstate(invalid="ignore", divide="ignore"):  # the suggestion keeps its share of the wrong-label mass
        share = np.where(p_wrong > 0, confidence / p_wrong, 0.0)
    return suggested, np.minimum(share * matched, matched).astype(np.float32), matched


SHIFT_BOUND = 20.0


def match_rate(p_wrong: np.ndarray, rate: float) -> float:
    """The shift ``b`` of every row's log-odds of a wrong label for which their mean equals ``rate``.

    The posterior and the noise estimate describe one model, so the expected number of wrong labels the
    posterior implies should be the estimate's; out-of-fold probabilities of a regularized net leave it short (on
    Fashion-MNIST 60k, mean p(wrong) 8.8% where the estimate read 10.3% and the truth was 10.2%), and the
    confidences among the rows ranked first are under-confident with it. One constant on the log-odds (the prior
    shift of Saerens et al. 2002) keeps every row's order and moves the total onto the estimate (0 when the rows
    already agree; clamped to +-SHIFT_BOUND)."""
    odds = _log_odds(p_wrong)
    odds = odds[np.isfinite(odds)]  # rows without a probability (NaN) do not count
    mean = lambda b: float(np.mean(expit(odds + b))) - rate  # noqa: E731 (increasing in b)
    if not len(odds) or mean(-SHIFT_BOUND) >= 0:
        return -SHIFT_BOUND if len(odds) else 0.0
    if mean(SHIFT_BOUND) <= 0:
        return SHIFT_BOUND
    return float(brentq(mean, -SHIFT_BOUND, SHIFT_BOUND, xtol=1e-6))


def _log_odds(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=np.float64), 1e-30, 1 - EPS))  # float32's p(wrong) reaches 1e-38


def _shifted(p_wrong: np.ndarray, shift: float) -> np.ndarray:
    """(n,) float32 p_wrong with ``shift`` added to its log-odds (NaN stays NaN)."""
    return expit(_log_odds(p_wrong) + shift).astype(np.float32)


def reliability(confidence: np.ndarray, correct: np.ndarray, *, bins: int = 10) -> tuple[float, list[dict]]:
    """(expected calibration error, one dict per non-empty bin: ``low``, ``high``, ``count``, ``confidence``
    (mean), ``accuracy``) of predictions with ``confidence`` (m,) and outcomes ``correct`` (m,) bool."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        members = which == b
        if not members.any():
            continue
        conf, acc = float(confidence[members].mean()), float(correct[members].mean())
        ece += members.mean() * abs(conf - acc)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": int(members.sum()),
                      "confidence": conf, "accuracy": acc})
    return float(ece), table
