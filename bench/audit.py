"""Dataset audit on injected label noise, side by side with cleanlab on the same out-of-fold probabilities.

    python bench/audit.py                 # Fashion-MNIST, 20k training samples, uniform/pair/asymmetric x 5/10/20%
    python bench/audit.py --n 60000       # the full training set (slow on 2 cores)
    python bench/audit.py --quick         # digits, one setting (smoke run)
    python bench/audit.py --n 60000 --cache /tmp/h3cache   # out-of-fold probabilities from bench/audit_cache.py
    python bench/audit.py --classifier linear              # the streamed softmax instead of the audit's choice

With ``--cache DIR`` a setting whose probabilities ``bench/audit_cache.py`` stored there (same n, seed, labels) is
read instead of cross-fitted again (its *cross-fit s* is the stored one); rate 0 (the unflipped labels, every
estimate there is bias) is added when cached.

Per setting: the injected (true) overall rate; coreclean's estimate (anchors) and cleanlab's
(``estimate_py_and_noise_matrices_from_probabilities``, the confident joint) with their errors in percentage
points (overall, and per-class mean absolute error over the given labels) and seconds (the shared 5-fold
cross-fit is timed once); then the suggestions: accuracy of the suggested label on the truly flipped samples among
the top 10% by p(wrong label), and the expected calibration error of its confidence there, plus a reliability table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import PCA_DIMS, Timer, features, inject_noise, machine, markdown_table  # noqa: E402
from coreclean.audit.audit import CLASSIFIERS, cross_fitted_proba, crossfit_classifier  # noqa: E402
from bench.audit_cache import cache_path  # noqa: E402
from coreclean.audit.noise import estimate_noise, rates_of  # noqa: E402
from coreclean.audit.calibrate import fit_calibration  # noqa: E402
from coreclean.audit.suggest import reliability, suggest_from_estimate, suggest_labels  # noqa: E402


def truth_rates(y_true, noisy, K):
    per = np.array([(y_true[noisy == c] != c).mean() if (noisy == c).any() else np.nan for c in range(K)])
    return float((noisy != y_true).mean()), per


def cleanlab_rates(noisy, proba):
    from cleanlab.count import estimate_py_and_noise_matrices_from_probabilities

    *_, confident_joint = estimate_py_and_noise_matrices_from_probabilities(noisy, proba)
    joint = confident_joint / confident_joint.sum()  # calibrated confident joint, Q[given, true]
    return rates_of(joint)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="folder of bench/audit_cache.py probabilities")
    parser.add_argument("--only-cached", action="store_true", help="skip the settings the cache does not hold")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=None,
                        help="the cross-fitted classifier (default: the audit's choice for the set's size)")
    args = parser.parse_args()
    dataset = "digits" if args.quick else "fashion-mnist"
    settings = [("uniform", 0.1)] if args.quick else \
        [(kind, rate) for kind in ("uniform", "pair", "asymmetric") for rate in (0.05, 0.1, 0.2)]
    if args.only_cached and (args.quick or not args.cache):
        raise SystemExit("error: --only-cached reads Fashion-MNIST probabilities from --cache DIR (not with --quick)")
    classifier = args.classifier or crossfit_classifier(args.n, PCA_DIMS, 10)  # Fashion-MNIST's PCA-128 features
    cached_files = sorted(args.cache.glob(f"{args.n}_{args.seed}_*_{classifier}.npz")) if args.only_cached else []
    if args.only_cached and not cached_files:
        raise SystemExit(f"error: {args.cache} holds no {args.n}_{args.seed}_*_{classifier}.npz "
                         "(bench/audit_cache.py writes them)")
    if cached_files:  # every number comes from the cache: the true labels are there, no features needed
        with np.load(cached_files[0]) as first:
            X, y = None, first["y"]
    else:
        X, y, _, _ = features(dataset, None if args.quick else args.n, seed=args.seed)
    K = int(y.max() + 1)
    if X is not None:
        classifier = args.classifier or crossfit_classifier(*X.shape, K)
    if args.cache and cache_path(args.cache, len(y), args.seed, "uniform", 0.0, classifier).exists():
        settings = settings + [("uniform", 0.0)]
    print(f"{dataset}, {len(y)} training samples, {K} classes, cross-fitted {classifier}; {machine()}")
    noise_rows, suggestion_rows, diagram = [], [], None
    for kind, rate in settings:
        noisy = inject_noise(y, kind, rate, dataset, args.seed) if rate else y.copy()
        true_rate, true_per = truth_rates(y, noisy, K)
        cached = cache_path(args.cache, len(y), args.seed, kind, rate, classifier) if args.cache else None
        if cached and cached.exists():
            with np.load(cached) as stored:
                if not (np.array_equal(stored["noisy"], noisy) and np.array_equal(stored["y"], y)):
                    raise SystemExit(f"error: {cached}: its labels are not this setting's (other n or seed?)")
                proba, cv = stored["proba"], argparse.Namespace(seconds=float(stored["seconds"]))
        elif args.only_cached:
            continue
        else:
            with Timer() as cv:
                proba = cross_fitted_proba(X, noisy, K, np.arange(len(y)), folds=5, seed=args.seed,
                                           classifier=classifier)
        with Timer() as ours_t:
            ours = estimate_noise(proba, noisy, K, bootstrap=200, seed=args.seed)
        with Timer() as cl_t:
            cl_rate, cl_per = cleanlab_rates(noisy, proba)
        setting = f"{kind} {rate:.0%}" if rate else "none (0%)"
        noise_rows.append({"setting": setting, "true %": 100 * true_rate,
                           "coreclean %": 100 * ours.rate,
                           "95% interval": f"{100 * ours.rate_interval[0]:.1f}-{100 * ours.rate_interval[1]:.1f}",
                           "coreclean err pp": 100 * abs(ours.rate - true_rate),
                           "coreclean class MAE pp": 100 * np.nanmean(np.abs(ours.class_rates - true_per)),
                           "cleanlab %": 100 * cl_rate, "cleanlab err pp": 100 * abs(cl_rate - true_rate),
                           "cleanlab class MAE pp": 100 * np.nanmean(np.abs(cl_per - true_per)),
                           "cross-fit s": cv.seconds, "coreclean s": ours_t.seconds, "cleanlab s": cl_t.seconds})
        calibration = fit_calibration(proba, noisy, K, seed=args.seed)
        print(f"{setting}: done ({cv.seconds:.0f} s cross-fit)", file=sys.stderr, flush=True)
        if not rate:
            continue  # nothing flipped: no suggestion can be right
        suggested, confidence, p_wrong = suggest_from_estimate(proba, noisy, ours, calibration)
        top = np.argsort(-p_wrong, kind="stable")[: len(y) // 10]
        flipped = top[noisy[top] != y[top]]
        ece, table = reliability(confidence[top], suggested[top] == y[top])
        suggestion_rows.append({"setting": setting, "top 10%": len(top),
                                "truly flipped there": len(flipped),
                                "suggestion = true label (flipped)": float(np.mean(suggested[flipped] == y[flipped])),
                                "mean confidence (top)": float(confidence[top].mean()),
                                "suggestion accuracy (top)": float(np.mean(suggested[top] == y[top])),
                                "ECE (top)": ece})
        # diagnostic, not available in use: the same posterior with the *injected* noise matrix (the ceiling these
        # probabilities allow)
        truth = np.zeros((K, K))
        np.add.at(truth, (y, noisy), 1.0)
        truth /= np.clip(truth.sum(axis=1, keepdims=True), 1.0, None)
        s_true, c_true, w_true = suggest_labels(proba, noisy, truth, calibration)
        top_true = np.argsort(-w_true, kind="stable")[: len(y) // 10]
        flipped_true = top_true[noisy[top_true] != y[top_true]]
        suggestion_rows[-1]["with injected M: flipped right"] = float(np.mean(s_true[flipped_true] == y[flipped_true]))
        suggestion_rows[-1]["with injected M: ECE"] = reliability(c_true[top_true],
                                                                  s_true[top_true] == y[top_true])[0]
        if diagram is None and (args.quick or (kind == "uniform" and rate == 0.1)):
            diagram = (setting, table)
    print("\n## Noise estimate vs truth (same out-of-fold probabilities)\n")
    print(markdown_table(noise_rows, list(noise_rows[0]), digits=2))
    if suggestion_rows:  # none when only the unflipped labels were cached
        print("\n## Suggested labels (top 10% by p(wrong label))\n")
        print(markdown_table(suggestion_rows, list(suggestion_rows[0])))
    if diagram:
        print(f"\n## Reliability ({diagram[0]}, top 10%)\n")
        print(markdown_table(diagram[1], ["low", "high", "count", "confidence", "accuracy"], digits=3))


if __name__ == "__main__":
    main()
