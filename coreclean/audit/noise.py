"""How many labels are wrong, in which classes, and where they go: confident learning on out-of-fold probabilities.

Two estimators of the joint ``Q[given, true] = P(given g, true t)``, both on out-of-fold probabilities:
*anchors* (the default: each class's most probable rows, their given labels counted after a reference split that
keeps most of the classifier's own confusions out, :func:`anchor_votes`) and the *confident joint*. The confident joint
(Northcutt, Jiang & Chuang 2021, "Confident learning") counts, for every given label ``g``, the samples whose out-of-fold probability of some class ``t`` reaches that class's own threshold
``thr_t = mean(p_t | given t)`` (the most probable such class when several do). Rescaled so each given label keeps
its count, divided by ``n``, it estimates the joint distribution ``Q[g, t] = P(given g, true t)``; from it

* overall noise rate  ``1 - trace(Q)``,
* per class (of the samples *labelled* c, the share whose true class is another) ``1 - Q[c, c] / Q[c, :].sum()``,
* noise matrix (true class -> given label) ``M[t, g] = Q[g, t] / Q[:, t].sum()`` (each row sums to 1).

Intervals: a Poisson bootstrap over rows (each replicate reweights the rows with Poisson(1) counts and recounts
the joint, thresholds, anchors and reference cuts held at their full-data values), 2.5th and 97.5th percentiles. This is cleanlab's
``estimate_noise_matrices`` / ``compute_confident_joint`` computed in O(n K) without (n, K) temporaries beyond the
input; ``bench/audit.py`` compares the two on the same probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve
from scipy.sparse import csr_matrix


MIN_ANCHORS = 200


def class_thresholds(proba: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) ``thr_t``: mean out-of-fold probability of class t over the samples labelled t (1 where none is)."""
    sums = np.bincount(y, weights=proba[np.arange(len(y)), y].astype(np.float64), minlength=n_classes)
    counts = np.bincount(y, minlength=n_classes)
    return np.divide(sums, counts, out=np.ones(n_classes), where=counts > 0)


def confident_class(proba: np.ndarray, thresholds: np.ndarray, *, batch: int = 65536) -> np.ndarray:
    """(n,) int64: per row the most probable class whose probability reaches its threshold, -1 where none does."""
    out = np.empty(len(proba), dtype=np.int64)
    for start in range(0, len(proba), batch):
        p = np.asarray(proba[start:start + batch], dtype=np.float32)
        above = np.where(p >= thresholds.astype(np.float32) - 1e-6, p, -1.0)
        best = above.argmax(axis=1)
        out[start:start + batch] = np.where(above[np.arange(len(p)), best] >= 0, best, -1)
    return out


def calibrated_joint(y: np.ndarray, confident: np.ndarray, n_classes: int,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """(K, K) estimate of ``Q[given, true]`` (sums to 1) from the confident assignments of rows ``y``."""
    keep = confident >= 0
    w = None if weights is None else weights[keep]
    counts = np.bincount(y[keep] * n_classes + confident[keep], weights=w,
                         minlength=n_classes * n_classes).reshape(n_classes, n_classes).astype(np.float64)
    given = np.bincount(y, weights=weights, minlength=n_classes).astype(np.float64)
    rows = counts.sum(axis=1)
    # a given label no row is confident about keeps its count on the diagonal (nothing says it is wrong)
    empty = (rows == 0) & (given > 0)
    counts[empty, empty] = 1.0
    rows = counts.sum(axis=1)
    scaled = counts * np.divide(given, rows, out=np.zeros(n_classes), where=rows > 0)[:, None]
    return scaled / max(scaled.sum(), 1e-12)


def anchor_rows(proba: np.ndarray, y: np.ndarray, n_classes: int, *, anchor_share: float = 0.1) -> list[np.ndarray]:
    """Per class t the *anchors*: the rows whose out-of-fold probability of t is among the highest, read as
    "truly t": ``anchor_share`` times the number of rows labelled t, but at least ``MIN_ANCHORS`` (or half the
    class), so that the count's sampling error stays near 2 pp at 10% noise."""
    counts = np.bincount(y, minlength=n_classes)
    out = []
    for t in range(n_classes):
        take = min(max(int(np.ceil(anchor_share * counts[t])), min(MIN_ANCHORS, counts[t] // 2)), len(y))
        column = np.asarray(proba[:, t], dtype=np.float32)
        out.append(np.argpartition(-column, take - 1)[:take] if 0 < take < len(y) else np.arange(take))
    return out


ANCHOR_SHARE = 0.3
# chosen on Fashion-MNIST 20k, noise seed 0, with the audit's net (bench/audit.py; 0.3-1.0 compared): 0.7 put all
# ten settings within 1.5 pp, the median (the linear fit's choice) eight
REFERENCE_QUANTILE = 0.7


@dataclass(frozen=True)
class AnchorVotes:
    """What every anchor row counts for (:func:`anchor_votes`): per class t, ``rows[t]`` (m_t,) anchor rows,
    ``given[t]`` (m_t,) their given labels and ``weight[t]`` (m_t,) their vote (1 for a row labelled t, 0 or
    ``1 / quantile`` for a row labelled otherwise)."""

    rows: list[np.ndarray]
    given: list[np.ndarray]
    weight: list[np.ndarray]


def anchor_votes(proba: np.ndarray, y: np.ndarray, n_classes: int, *, anchor_share: float = ANCHOR_SHARE,
                 quantile: float = REFERENCE_QUANTILE) -> AnchorVotes:
    """Class t's anchors (:func:`anchor_rows`) split into flips and look-alikes by a *reference split*.

    An anchor labelled h != t is either a flip (a true t: under class-conditional noise its image is a typical
    anchor of t) or a look-alike (a true h the classifier confuses with t, the classifier's own confusion). The
    out-of-fold ``p(h | x)`` tells them apart in distribution: a flip's is distributed as that of the anchors
    labelled t (the reference), a look-alike's is higher. So only anchors labelled h whose ``p(h | x)`` is at most
    the reference's ``quantile`` vote, with weight ``1 / quantile`` (flips fall below it with that probability).
    On Fashion-MNIST 20k (seed 0, unflipped labels, the linear fit's probabilities, the median) this cut the
    anchors' excess from 3.6 to 2.2 pp (``bench/audit.py``; the constants were chosen there, on that seed and size
    only; with the audit's net the quantile became 0.7).
    """
    anchors = anchor_rows(proba, y, n_classes, anchor_share=anchor_share)
    rows, given, weight = [], [], []
    for t, members in enumerate(anchors):
        members = np.sort(members)
        labels = y[members]
        p = np.asarray(proba[members], dtype=np.float64)
        reference = labels == t
        vote = reference.astype(np.float64)
        if reference.any():
            cut = np.quantile(p[reference], quantile, axis=0)  # (K,) the reference's p(h | x) quantile per class
            other = ~reference
            vote[other] = np.where(p[other, labels[other]] <= cut[labels[other]], 1.0 / quantile, 0.0)
        else:
            vote[:] = 1.0  # no reference (every anchor relabelled): count the labels as they are
        rows.append(members), given.append(labels), weight.append(vote)
    return AnchorVotes(rows, given, weight)


def anchor_counts(votes: AnchorVotes, n_classes: int, weights: np.ndarray | None = None) -> np.ndarray:
    """(K, K) ``C[true, given]``: the anchor votes (:func:`anchor_votes`) summed per given label; ``weights`` (n,)
    reweights rows (bootstrap)."""
    counts = np.zeros((n_classes, n_classes))
    for t, (rows, given, vote) in enumerate(zip(votes.rows, votes.given, votes.weight)):
        w = vote if weights is None else vote * weights[rows]
        counts[t] = np.bincount(given, weights=w, minlength=n_classes)
    return counts


def anchor_noise_matrix(counts: np.ndarray, *, pseudo: float = 0.0) -> np.ndarray:
    """(K, K) ``M[true, given]`` from anchor counts ``C[true, given]`` (:func:`anchor_counts`): each row
    normalized, after ``pseudo`` counts are added to every off-diagonal cell (a flip never seen among a few hundred
    anchors is rare, not impossible); a row without counts is the identity row. Under class-conditional noise a
    label is flipped independently of the image, so easy images are flipped as often as hard ones: the anchor-point
    idea (Liu & Tao 2016; Patrini et al. 2017) with given labels counted instead of probabilities read."""
    K = len(counts)
    counts = np.asarray(counts, dtype=np.float64) + pseudo * (1.0 - np.eye(K))
    rows = counts.sum(axis=1, keepdims=True)
    return np.where(rows > 0, counts / np.where(rows > 0, rows, 1.0), np.eye(K))


PRIOR_RIDGE = 0.1


def joint_from_matrix(matrix: np.ndarray, y: np.ndarray, n_classes: int,
                      weights: np.ndarray | None = None, *, ridge: float = PRIOR_RIDGE) -> np.ndarray:
    """(K, K) ``Q[given, true] = pi_t M[t, given]`` with the true-class prior ``pi`` solving ``pi M = P(given)``
    by least squares with a ridge of weight ``ridge`` toward ``P(given)`` (clipped at 0, renormalized). The ridge
    keeps the solve stable where classes trade labels both ways (rows of M nearly dependent: with 45% of Shirt
    labelled T-shirt the plain solve put 20% of the data in Shirt and 4% in Coat, truth 10% each)."""
    given = np.bincount(y, weights=weights, minlength=n_classes).astype(np.float64)
    given /= max(given.sum(), 1e-12)
    # the least-squares problem [M^T; sqrt(ridge) I] pi = [P(given); sqrt(ridge) P(given)] through its normal
    # equations (M M^T + ridge I) pi = (M + ridge I) P(given): positive definite, and M (the anchors' counts, sparse
    # at many classes) multiplied as a sparse matrix: at 1000 classes 0.05 s where lstsq took 0.6 s (one thread),
    # and the bootstrap solves it 200 times
    sparse = csr_matrix(matrix)
    normal = (sparse @ sparse.T).toarray() + ridge * np.eye(n_classes)
    prior = np.clip(solve(normal, sparse @ given + ridge * given, assume_a="pos"), 0.0, None)
    prior = prior / prior.sum() if prior.sum() > 0 else given
    return (prior[:, None] * matrix).T


def rates_of(joint: np.ndarray) -> tuple[float, np.ndarray]:
    """(overall noise rate, (K,) per-given-label noise rate, NaN for a label no sample has) of a joint Q."""
    rows = joint.sum(axis=1)
    per_class = np.divide(rows - np.diag(joint), rows, out=np.full(len(rows), np.nan), where=rows > 0)
    return float(1.0 - np.trace(joint)), per_class


def noise_matrix_of(joint: np.ndarray) -> np.ndarray:
    """(K, K) ``M[true, given] = P(given | true)``; a true class without mass gets the identity row."""
    columns = joint.sum(axis=0)
    matrix = np.divide(joint.T, columns[:, None], out=np.zeros_like(joint), where=columns[:, None] > 0)
    matrix[columns <= 0, :] = 0.0
    matrix[columns <= 0, np.flatnonzero(columns <= 0)] = 1.0
    return matrix


@dataclass(frozen=True)
class NoiseEstimate:
    """Result of :func:`estimate_noise`.

    rate : overall estimated fraction of wrong labels.   rate_interval : (2,) bootstrap 95% interval.
    class_rates : (K,) per given label.   class_intervals : (K, 2).
    joint : (K, K) ``Q[given, true]``.   noise_matrix : (K, K) ``P(given | true)``, rows = true class.
    thresholds : (K,) per-class confidence thresholds.   confident : (n,) confident class per row (-1: none).
    counts : (K, K) anchor votes ``C[true, given]`` (:func:`anchor_counts`; ``None`` for the confident joint),
    from which :func:`smoothed_noise_matrix` builds the suggestions' matrices.
    """

    rate: float
    rate_interval: np.ndarray
    class_rates: np.ndarray
    class_intervals: np.ndarray
    joint: np.ndarray
    noise_matrix: np.ndarray
    thresholds: np.ndarray
    confident: np.ndarray
    counts: np.ndarray | None = None


METHODS = ("anchors", "confident-joint")


def smoothed_noise_matrix(estimate: NoiseEstimate, pseudo: float) -> np.ndarray:
    """(K, K) ``P(given | true)`` with ``pseudo`` counts on every off-diagonal anchor cell
    (:func:`anchor_noise_matrix`); the estimate's own matrix where it has no anchor counts."""
    if estimate.counts is None or pseudo <= 0:
        return estimate.noise_matrix
    return anchor_noise_matrix(estimate.counts, pseudo=pseudo)


def estimate_noise(proba: np.ndarray, y: np.ndarray, n_classes: int | None = None, *, method: str = "anchors",
                   anchor_share: float = ANCHOR_SHARE, quantile: float = REFERENCE_QUANTILE, bootstrap: int = 200,
                   seed: int = 0) -> NoiseEstimate:
    """Noise rates and matrix from out-of-fold probabilities ``proba`` (n, K) and given labels ``y`` (n,).

    method : ``"anchors"`` (default; :func:`anchor_votes`: anchors with the reference split, which leaves most of
        the classifier's own confusions out and came closest to injected noise rates in ``bench/audit.py``) or
        ``"confident-joint"`` (cleanlab's estimator, :func:`calibrated_joint`).
    anchor_share, quantile : see :func:`anchor_votes`.
    """
    y = np.asarray(y, dtype=np.int64)
    K = int(n_classes or proba.shape[1])
    if proba.shape != (len(y), K):
        raise ValueError(f"proba has shape {proba.shape}, expected ({len(y)}, {K})")
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {METHODS}")
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    thresholds = class_thresholds(proba, y, K)
    confident = confident_class(proba, thresholds)
    counts = None
    if method == "anchors":
        votes = anchor_votes(proba, y, K, anchor_share=anchor_share, quantile=quantile)
        counts = anchor_counts(votes, K)
        joint_of = lambda w: joint_from_matrix(  # noqa: E731
            anchor_noise_matrix(counts if w is None else anchor_counts(votes, K, w)), y, K, w)
    else:
        joint_of = lambda w: calibrated_joint(y, confident, K, w)  # noqa: E731
    joint = joint_of(None)
    rate, class_rates = rates_of(joint)
    rng = np.random.default_rng(seed)
    samples = np.empty((bootstrap, K + 1))
    for b in range(bootstrap):
        r, per = rates_of(joint_of(rng.poisson(1.0, len(y)).astype(np.float64)))
        samples[b, 0], samples[b, 1:] = r, per
    if bootstrap:
        with np.errstate(all="ignore"):
            low, high = (np.nanpercentile(samples, q, axis=0) for q in (2.5, 97.5))
    else:
        low = high = np.full(K + 1, np.nan)
    return NoiseEstimate(rate=rate, rate_interval=np.array([low[0], high[0]]), class_rates=class_rates,
                         class_intervals=np.stack([low[1:], high[1:]], axis=1), joint=joint,
                         noise_matrix=noise_matrix_of(joint), thresholds=thresholds, confident=confident,
                         counts=counts)
