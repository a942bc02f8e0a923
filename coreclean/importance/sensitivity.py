r"""Label-aware coreset sensitivity ("importance") for multinomial logistic regression.

The *sensitivity* of sample i for a loss :math:`f(\theta) = \sum_j \ell_j(\theta)` is
:math:`\sigma_i = \sup_\theta \ell_i(\theta) / f(\theta)` (Langberg & Schulman 2010). Sampling proportionally to an
upper bound of :math:`\sigma_i` gives a coreset (Feldman & Langberg 2011). For logistic regression no bounded
sensitivity exists in the worst case; Munteanu et al. (2018, "On coresets for logistic regression") bound it by
:math:`\mu`-complexity times the (square-root) leverage of the *label-signed* data plus :math:`1/n`, Huggins et al.
(2016) by distances to label-signed cluster centres, and Mai, Musco & Rao (2021) by Lewis weights / leverage plus a
uniform term. Those bounds hold over all of parameter space and so ignore where the fitted model is; a leverage
score alone (what DataHeroes' cleaning mode ranks by) never sees whether a sample's label agrees with the rest.

We bound sensitivity *locally*, over a trust region around the fitted model :math:`\hat\theta`:
for :math:`\|\Delta\|_H \le 1` with :math:`H` the Hessian of :math:`f`, first-order Taylor expansion gives
:math:`\ell_i(\hat\theta+\Delta) \le \ell_i(\hat\theta) + \|\nabla\ell_i\|_{H^{-1}}` and
:math:`f(\hat\theta+\Delta) \ge f(\hat\theta)` (it is the minimum), so

.. math:: \sigma_i^{loc} \le \frac{\ell_i(\hat\theta) + \|\nabla \ell_i(\hat\theta)\|_{H^{-1}}}{f(\hat\theta)}.

For softmax regression :math:`\nabla\ell_i = (p_i - e_{y_i}) \otimes \tilde x_i` with :math:`\tilde x = [x, 1]`;
with the Kronecker (K-FAC style) approximation of :math:`H`,
:math:`\|\nabla\ell_i\|_{H^{-1}} \approx \|p_i - e_{y_i}\|_2 \sqrt{h_i / \bar c}` where
:math:`h_i = \tilde x_i^\top(\tilde X^\top\tilde X)^{-1}\tilde x_i` is the leverage (the term DataHeroes uses) and
:math:`\bar c` the mean softmax curvature. Adding the uniform :math:`1/n` term of Mai–Musco–Rao gives

.. math:: b_i = \ell_i + \|p_i - e_{y_i}\| \sqrt{h_i/\bar c}, \qquad
          s_i = \tfrac12 \frac{b_i}{\sum_j b_j} + \tfrac12 \frac{1}{n},

which sums to 1. Both terms depend on the label: :math:`\ell_i = -\log p_{i,y_i}` is large for a sample
whose label disagrees with its neighbourhood, the leverage term for one that is also an outlier.

Robust centre. Mislabeled samples pull :math:`\hat\theta` toward themselves (in-sample losses understate them).
We therefore evaluate the bound at a robust centre: fit once, drop the ``trim`` fraction of samples with the
lowest label probability (a trimmed-likelihood step, as in least-trimmed-squares / Shen & Sanghavi 2019) and refit
warm-started; dropped samples are then scored out-of-sample.

The fits (:func:`coreclean.classifier.solver.fit_softmax`) use every row: a ridge in the features' own geometry
(so nothing depends on their common scale, offset or rotation), a closed-form LDA start, whitened L-BFGS streamed
over the rows, and on large sets early stopping on a held-out slice. Where that keeps the LDA start (Gaussian-like
classes with few rows per parameter, where logistic regression overfits) :math:`\hat\theta` is not the minimizer
of :math:`f`, and the bound is read as a local sensitivity around the selected model; where L-BFGS runs to
convergence it is the derivation above.
Measured numbers (flip detection against cleanlab, ImageNet-scale accuracy against the Bayes-optimal rule) are in
the benchmark documents under ``docs/``, with the commands that produced them.
"""
from __future__ import annotations

import numbers
import time

import numpy as np

from .leverage import leverage
from ..classifier.model import label_statistics  # noqa: F401 (also a public name of this module)
from ..classifier.row_passes import BATCH, Moments, moments, resolve_device, threads_for
from .sampling import sensitivity_sample
from ..classifier.solver import fit_softmax, lda_start, to_raw
from ..data.validation import check_coef, check_features_labels, check_n_classes

# Multiply-adds for both fits together, n (d + 1) K per streamed pass, above which "auto" caps the passes: all of
# Fashion-MNIST runs to convergence (~200 passes); ImageNet (1.28M x 513 x 1000 = 6.6e11 per pass, ~25 s on 2
# cores) gets 3, which go to the refit (the start and two L-BFGS steps) while the plain fit is the LDA start; the
# plain fit gets a third of the budget when that is at least 2 passes.
FIT_BUDGET = 2_000_000_000_000
MIN_PASSES = 3
MAX_VALIDATION = 10_000  # rows held out for early stopping, at most (0.8% of ImageNet)
EARLY_STOPPING_MIN_ROWS = 20_000  # "auto" early stopping from this many rows on (a slice of >= 2,000)


def bound_terms(stats: dict[str, np.ndarray], leverage_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of the sensitivity bound ``b_i = loss_i + ||p_i - e_{y_i}|| sqrt(h_i / c)``, the one place
    the formula lives (the estimator ranks by it, :mod:`coreclean.importance.explain` shows its shares).

    stats : :func:`label_statistics` of the rows (``p_label``, ``residual_norm``, ``curvature``, each (n,)).
    leverage_scores : (n,) leverage ``h`` of ``[X, 1]`` over the same rows.
    Returns (loss (n,), leverage_term (n,)) float64; ``c`` is the rows' mean softmax curvature.
    """
    curvature = float(np.mean(stats["curvature"])) + 1e-12
    loss = -np.log(np.clip(np.asarray(stats["p_label"], dtype=np.float64), 1e-12, None))
    lev = np.asarray(stats["residual_norm"], dtype=np.float64) * np.sqrt(np.asarray(leverage_scores, np.float64)
                                                                          / curvature)
    return loss, lev


class CoresetSensitivity:
    """Label-aware local coreset sensitivity of every training sample (see module docstring).

    Parameters
    ----------
    C : inverse L2 regularization of the logistic regression, in units of the mean feature variance, > 0.
    trim : fraction of lowest-label-probability samples left out of the robust refit, in [0, 1) (0 disables it).
    max_iter : L-BFGS iterations of the refit, >= 1 (the plain fit gets a quarter).
    max_fit_samples : ``"auto"`` (default) fits on every row and caps both fits together at about ``FIT_BUDGET``
        multiply-adds (the refit gets at least ``MIN_PASSES`` passes); ``None`` fits on every row without a cap;
        an integer m fits on a weighted sensitivity coreset of m rows when there are more (sampled with the
        gradient norms of the LDA start), a quick, approximate classifier. Importance is always computed for
        every row.
    early_stopping : hold out a validation slice (``validation_fraction`` of the rows, at most
        ``MAX_VALIDATION``) and keep the iterate with the fewest validation errors (see
        :func:`~coreclean.classifier.solver.fit_softmax`); ``"auto"``: from ``EARLY_STOPPING_MIN_ROWS`` rows on, without a
        coreset.
    validation_fraction : in (0, 1).
    random_state : seed of the validation slice and coreset sampling (int or None).
    device : ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or any ``torch.device`` string.

    Attributes (after ``fit``)
    --------------------------
    importance_ : (n,) float64, sums to 1; higher = harder, odder or more likely mislabeled.
    initial_coef_ : (d + 1, K) float32, the first, plain fit (on raw features; last row is the intercept).
    coef_ : (d + 1, K) float32, the robust refit the sensitivity is evaluated at; also the better classifier.
    stats_ : :func:`label_statistics` of every sample under ``coef_``.
    loss_ : (n,) per-sample cross-entropy at the robust centre, the *loss term* of the bound.
    leverage_term_ : (n,) ``||p_i - e_{y_i}|| sqrt(h_i / c)``, the *leverage term* of the bound.
    residual_norm_ : (n,) ``||p_i - e_{y_i}||`` at the robust centre.
    leverage_ : (n,) leverage scores of ``[X, 1]``.
    suspect_ : (n,) bool, samples left out of the robust refit.
    fit_indices_ : (m,) rows the classifier was fit on (all rows but the validation slice, or the coreset).
    validation_indices_ : (v,) rows held out for early stopping (empty without it).
    n_iter_ : (2,) L-BFGS iterations of the plain fit and the refit (0 where skipped).
    n_passes_ : (2,) streamed passes over the data of each fit.
    timings_ : list of (stage, start, stop) ``time.perf_counter`` spans: "moments", "leverage", "plain fit",
        "trim", "refit", "statistics" (for benchmarks: per-stage time and memory).
    """

    def __init__(self, *, C: float = 1.0, trim: float = 0.15, max_iter: int = 100,
                 max_fit_samples: int | str | None = "auto", early_stopping: bool | str = "auto",
                 validation_fraction: float = 0.1, random_state: int | None = 0, device: str = "auto"):
        self.C = C
        self.trim = trim
        self.max_iter = max_iter
        self.max_fit_samples = max_fit_samples
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device

    def fit(self, X, y, *, n_classes: int | None = None, coef: np.ndarray | None = None,
            init: np.ndarray | None = None) -> "CoresetSensitivity":
        """Compute importance for features ``X`` (n, d) and labels ``y`` (n,). ``X`` may be a memmap.

        ``n_classes`` defaults to ``y.max() + 1``. ``coef`` may pass an already-fitted plain model (d + 1, K) to
        skip the first fit; ``init`` warm-starts it instead (e.g. from the model before a few labels were
        corrected).
        """
        self._validate_params()
        if n_classes is not None and (not isinstance(n_classes, numbers.Integral) or isinstance(n_classes, bool)):
            raise ValueError(f"n_classes={n_classes!r}: must be an integer.")
        X, y = check_features_labels(X, y, n_classes=n_classes)
        return self._fit_validated(X, y, n_classes=n_classes, coef=coef, init=init)

    def _validate_params(self) -> None:
        """Raise ValueError for a hyper-parameter out of range (scikit-learn checks these in ``fit``)."""
        if not (isinstance(self.C, numbers.Real) and np.isfinite(self.C) and self.C > 0):
            raise ValueError(f"C={self.C!r}: must be a finite number > 0 (inverse regularization strength).")
        if not (isinstance(self.trim, numbers.Real) and 0 <= self.trim < 1):
            raise ValueError(f"trim={self.trim!r}: must be in [0, 1) (0 disables the robust refit).")
        if not (isinstance(self.max_iter, numbers.Integral) and self.max_iter >= 1):
            raise ValueError(f"max_iter={self.max_iter!r}: must be an integer >= 1.")
        m = self.max_fit_samples
        if not (m is None or m == "auto" or (isinstance(m, numbers.Integral) and not isinstance(m, bool) and m >= 2)):
            raise ValueError(f"max_fit_samples={m!r}: must be None, 'auto' or an integer >= 2.")
        if self.early_stopping not in (True, False, "auto"):
            raise ValueError(f"early_stopping={self.early_stopping!r}: must be True, False or 'auto'.")
        if not (isinstance(self.validation_fraction, numbers.Real) and 0 < self.validation_fraction < 1):
            raise ValueError(f"validation_fraction={self.validation_fraction!r}: must be in (0, 1).")
        if not (self.random_state is None or isinstance(self.random_state, numbers.Integral)):
            raise ValueError(f"random_state={self.random_state!r}: must be an integer or None.")
        try:
            resolve_device(self.device)
        except RuntimeError as error:
            raise ValueError(f"device={self.device!r}: {error}; use 'auto', 'cpu' or 'cuda'.") from None

    def _fit_validated(self, X: np.ndarray, y: np.ndarray, *, n_classes: int | None = None,
                       coef: np.ndarray | None = None, init: np.ndarray | None = None) -> "CoresetSensitivity":
        """``fit`` for arrays that already passed :func:`check_features_labels` (float32 (n, d), int64 (n,))."""
        self._validate_params()
        n, d = X.shape
        K = check_n_classes(y, n_classes, n)
        coef = check_coef(coef, "coef", d, K)
        init = check_coef(init, "init", d, K)
        device = resolve_device(self.device)
        with threads_for(min(BATCH, n) * (d + 1) * K, device):
            return self._fit_all(X, y, K, coef, init, device)

    def _fit_all(self, X, y, K, coef, init, device) -> "CoresetSensitivity":
        n, d = X.shape
        rng = np.random.default_rng(self.random_state)
        self.timings_ = []
        mark = self._stage
        mark("moments")
        everything = moments(X, y, K, gram=d < n, device=device)  # one pass: standardization, Gram, class sums
        mark("leverage")
        self.leverage_ = leverage(X, moments_of_rows=everything, device=device)
        mark("plain fit")
        base, validation = self._fit_weights(X, y, K, everything, rng)
        fit_rows = np.flatnonzero(base > 0)
        self.fit_indices_ = fit_rows
        self.validation_indices_ = np.zeros(0, np.int64) if validation is None else validation
        m_fit = None  # moments of the fitted rows: a coreset gets its own inside the fit
        if validation is None and self._coreset_size(n) is None:
            m_fit = everything
        elif self._coreset_size(n) is None:
            m_fit = everything - moments(X, y, K, sample_weight=_indicator(n, validation), reference=everything,
                                         gram=everything.second is not None, device=device)
        options = dict(C=self.C, max_iter=self.max_iter, validation_rows=validation, device=device)
        budget = self._max_passes(len(fit_rows), d, K)
        self.n_iter_, self.n_passes_ = np.zeros(2, int), np.zeros(2, int)
        if coef is None:
            plain_passes = None if budget is None else (budget // 3 if budget // 3 >= 2 else 0)
            # The plain fit only picks the rows to trim and starts the refit: a quarter of the iterations do
            # (Fashion-MNIST, 10% flips: flip AP 0.9240 with 20, 0.9237 with 100; 5.5 s instead of 9.1 s).
            plain = fit_softmax(X, y, K, sample_weight=base, init=init, moments_of_fit=m_fit,
                                max_passes=plain_passes, **{**options, "max_iter": max(1, self.max_iter // 4)})
            coef, self.n_iter_[0], self.n_passes_[0] = plain.coef, plain.n_iter, plain.n_passes
        self.initial_coef_ = coef
        mark("trim")
        p_label = label_statistics(X, y, coef, device=device)["p_label"]
        drop = np.zeros(n, dtype=bool)
        drop[fit_rows[_lowest(p_label[fit_rows], self.trim)]] = True
        mark("refit")
        if drop.any():
            kept = np.where(drop, 0.0, base)
            m_kept = None if m_fit is None else m_fit - moments(
                X, y, K, sample_weight=drop * base, reference=everything, gram=m_fit.second is not None,
                device=device)
            passes = None if budget is None else max(MIN_PASSES, budget - int(self.n_passes_[0]))
            refit = fit_softmax(X, y, K, sample_weight=kept, init=coef, moments_of_fit=m_kept, max_passes=passes,
                                **options)
            self.coef_, self.n_iter_[1], self.n_passes_[1] = refit.coef, refit.n_iter, refit.n_passes
        else:
            self.coef_ = coef
        self.suspect_ = drop
        mark("statistics")
        self.stats_ = stats = label_statistics(X, y, self.coef_, device=device)
        self.residual_norm_ = stats["residual_norm"]
        self.loss_, self.leverage_term_ = bound_terms(stats, self.leverage_)
        bound = self.loss_ + self.leverage_term_
        self.importance_ = 0.5 * bound / bound.sum() + 0.5 / n
        mark(None)
        return self

    def _stage(self, name: str | None) -> None:
        """Close the running stage of ``timings_`` and open ``name`` (None: just close)."""
        now = time.perf_counter()
        if self.timings_:
            stage, start, _ = self.timings_[-1]
            self.timings_[-1] = (stage, start, now)
        if name is not None:
            self.timings_.append((name, now, now))

    def _coreset_size(self, n: int) -> int | None:
        m = self.max_fit_samples
        return m if isinstance(m, numbers.Integral) and n > m else None

    def _max_passes(self, rows: int, d: int, K: int) -> int | None:
        """Streamed passes both fits may take together (None: no cap)."""
        if self.max_fit_samples is None:
            return None
        return max(MIN_PASSES, int(FIT_BUDGET // (rows * (d + 1) * K)))

    def _fit_weights(self, X, y, K, everything: Moments, rng) -> tuple[np.ndarray, np.ndarray | None]:
        """Row weights (n,) of the fits (0 = not fitted) and the validation slice (sorted rows) or None."""
        n, d = X.shape
        size = self._coreset_size(n)
        if size is not None:  # coreset: sample by the gradient norms under the LDA start
            start = to_raw(*lda_start(everything), everything.mean, everything.scale) \
                if everything.second is not None else np.zeros((d + 1, K), np.float32)
            residual = label_statistics(X, y, start, device=resolve_device(self.device))["residual_norm"]
            rows, weight = sensitivity_sample(residual, self.leverage_, y, size, (d + 1) * K, rng)
            base = np.zeros(n)
            base[rows] = weight
            return base, None
        early = self.early_stopping
        if early is False or (early == "auto" and n < EARLY_STOPPING_MIN_ROWS):
            return np.ones(n), None
        validation = np.sort(rng.choice(n, min(MAX_VALIDATION, max(1, int(self.validation_fraction * n))),
                                        replace=False))
        return 1.0 - _indicator(n, validation), validation


def _indicator(n: int, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(n)
    out[rows] = 1.0
    return out


def _lowest(p_label: np.ndarray, fraction: float) -> np.ndarray:
    """Mask (n,) of the ``fraction`` of samples whose given label has the lowest probability."""
    mask = np.zeros(len(p_label), dtype=bool)
    n_drop = int(fraction * len(p_label))
    if n_drop:
        mask[np.argsort(p_label, kind="stable")[:n_drop]] = True
    return mask


def importance(X, y, *, random_state: int = 0) -> np.ndarray:
    """Importance (n,) of every sample of ``X`` (n, d) with labels ``y`` (n,); see :class:`CoresetSensitivity`."""
    return CoresetSensitivity(random_state=random_state).fit(X, y).importance_


def normalize_per_class(scores: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Scale scores within each class to (0, 1] by the class maximum (DataHeroes' display convention).

    scores : (n,) non-negative.  y : (n,) int labels.  Returns (n,) float64.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    top = np.zeros(int(y.max()) + 1)
    np.maximum.at(top, y, scores)
    return scores / np.where(top[y] > 0, top[y], 1.0)
