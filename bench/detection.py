"""Label-error detection, side by side: coreclean importance vs cleanlab vs leverage vs kNN vs random.

    python bench/detection.py                       # full run (digits + Fashion-MNIST, all noise kinds)
    python bench/detection.py --quick               # smoke run on digits
    python bench/detection.py --cnn                 # backbone cnn vs pixels vs cleanlab, Fashion-MNIST 20k
    python bench/detection.py --fits --datasets fashion-mnist --sizes 20000 --noise uniform:0.1 pair:0.1
                                                    # the fit behind the ranking: coreset fit vs this checkout's

Prints markdown tables: AUROC, average precision, precision@k (k = number of flips) and wall time per method,
mean over seeds; then the review loop: rounds of 100 reviews from the classes that received flips, errors fixed
and re-ranked after every round, errors found after each round.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import methods  # noqa: E402
from bench.common import Timer, features, inject_noise, machine, markdown_table  # noqa: E402
from coreclean import CoresetSensitivity  # noqa: E402

METHODS = ["coreclean", "cleanlab self_confidence", "cleanlab normalized_margin", "cleanlab find_label_issues",
           "leverage (DataHeroes-style)", "kNN disagreement (k=10)", "random"]


def score_all(X, y, seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """method -> (score, seconds). cleanlab times include the 5-fold cross-validation they need."""
    out = {}
    with Timer() as t:
        out["coreclean"] = methods.ours(X, y)
    times = {"coreclean": t.seconds}
    with Timer() as t:
        probs = methods.cv_probabilities(X, y, seed=seed)
    cv_seconds = t.seconds
    for method in ("self_confidence", "normalized_margin"):
        with Timer() as t:
            out[f"cleanlab {method}"] = methods.cleanlab_scores(y, probs, method)
        times[f"cleanlab {method}"] = cv_seconds + t.seconds
    with Timer() as t:
        out["cleanlab find_label_issues"] = methods.cleanlab_find_issues(y, probs)
    times["cleanlab find_label_issues"] = cv_seconds + t.seconds
    for name, fn in (("leverage (DataHeroes-style)", methods.class_leverage),
                     ("kNN disagreement (k=10)", methods.knn_disagreement)):
        with Timer() as t:
            out[name] = fn(X, y)
        times[name] = t.seconds
    out["random"], times["random"] = methods.random_order(X, y, seed), 0.0
    return {m: (out[m], times[m]) for m in METHODS}


def metrics(is_error: np.ndarray, score: np.ndarray) -> dict[str, float]:
    k = int(is_error.sum())
    top = np.argsort(-score, kind="stable")[:k]
    return {"AUROC": roc_auc_score(is_error, score), "AP": average_precision_score(is_error, score),
            "P@k": float(is_error[top].mean())}


SCORERS = {
    "coreclean": lambda X, y, s: methods.ours(X, y),
    "cleanlab self_confidence": lambda X, y, s: methods.cleanlab_scores(y, methods.cv_probabilities(X, y, seed=s),
                                                                          "self_confidence"),
    "leverage (DataHeroes-style)": lambda X, y, s: methods.class_leverage(X, y),
    "kNN disagreement (k=10)": lambda X, y, s: methods.knn_disagreement(X, y),
    "random": lambda X, y, s: methods.random_order(X, y, s),
}


def review_loop(X, noisy, truth, scorer, *, seed: int, rounds: int = 10, batch: int = 100) -> list[int]:
    """Errors found after each round of ``batch`` reviews (reviewed samples are never shown again)."""
    labels, seen = noisy.copy(), np.zeros(len(noisy), bool)
    pool = np.isin(noisy, np.unique(noisy[noisy != truth]))
    found, curve = 0, []
    for _ in range(rounds):
        score = scorer(X, labels, seed)
        candidates = np.flatnonzero(pool & ~seen)
        picked = candidates[np.argsort(-score[candidates], kind="stable")[:batch]]
        seen[picked] = True
        found += int((labels[picked] != truth[picked]).sum())
        labels[picked] = truth[picked]
        curve.append(found)
    return curve


def coreset_fit(X, y) -> tuple[np.ndarray, np.ndarray]:
    """(importance (n,), coef (d + 1, K)) of the pre-issue-13 estimator (bench/methods.old_coreset_fit)."""
    result = methods.old_coreset_fit(X, y, int(y.max()) + 1)
    return result["importance"], result["coef"]


def checkout_fit(X, y) -> tuple[np.ndarray, np.ndarray]:
    """(importance (n,), coef (d + 1, K)) of this checkout's ``CoresetSensitivity`` defaults (what build runs)."""
    fitted = CoresetSensitivity(random_state=0).fit(X, y)
    return fitted.importance_, fitted.coef_


FITS = {"coreset": ("coreset fit (pre-issue 13)", coreset_fit), "checkout": ("coreclean (this checkout)", checkout_fit)}


def fit_comparison(dataset: str, sizes: list, specs: list[str], *, seeds: int, rounds: int, loop_seeds: int = 1,
                   fits: list[str] = tuple(FITS)) -> None:
    """The classifiers behind the ranking side by side (issue 28: small sets keep their quality): per fit in
    ``FITS``, flip AUROC / AP / P@k and test accuracy (true test labels) as the mean over ``seeds`` noise draws,
    then the review loop on the first ``loop_seeds`` draws of the same noise (errors found: mean and per draw;
    the curve is seed 0's). Run on two checkouts for a before/after of the solver (docs/benchmarks.md §1c)."""
    import os

    import coreclean

    print(f"coreclean imported from {Path(coreclean.__file__).resolve().parent}\n")
    for size in sizes:
        X, y, X_test, y_test = features(dataset, size)
        for spec in specs:
            kind, rate = spec.split(":")
            load, rows = os.getloadavg()[0], []
            for key in fits:
                (name, fit), static, seconds = FITS[key], [], []
                for seed in range(seeds):
                    noisy = inject_noise(y, kind, float(rate), dataset, seed)
                    with Timer() as t:
                        score, coef = fit(X, noisy)
                    seconds.append(t.seconds)
                    accuracy = float(((X_test @ coef[:-1] + coef[-1]).argmax(1) == y_test).mean())
                    static.append({**metrics(noisy != y, score), "test acc": accuracy})
                curves = [review_loop(X, inject_noise(y, kind, float(rate), dataset, seed), y,
                                      lambda X, labels, s: fit(X, labels)[0], seed=seed, rounds=rounds)
                          for seed in range(loop_seeds)]
                found = [curve[-1] for curve in curves]
                rows.append({"fit": name, **{k: float(np.mean([r[k] for r in static])) for k in static[0]},
                             "fit time (s)": float(np.mean(seconds)),
                             f"found in {rounds * 100} reviews": float(np.mean(found)),
                             "per draw": " ".join(map(str, found)), "seed 0 curve": " ".join(map(str, curves[0]))})
            print(f"## {dataset}, n={len(y)}, {kind} noise {rate}: static metrics mean of {seeds} seed(s); review "
                  f"loop on {loop_seeds} draw(s); load average {load:.1f} at start\n")
            print(markdown_table(rows, list(rows[0])) + "\n", flush=True)


def cnn_comparison(size: int, specs: list[str], *, folds: int, epochs: int, rounds: int = 10,
                   work: Path | None = None, seeds: list[int] = (0,)) -> None:
    """The review loop on Fashion-MNIST ``size`` with the cnn backbone's cross-fitted features next to pixels:
    coreclean on each, and cleanlab self_confidence on the cnn's own out-of-fold probabilities (pixels + cleanlab
    is the 5-fold logistic regression of the main loop, 12x slower, left out here). The nets are fit once on the
    noisy labels (fixing labels re-ranks, it does not retrain). The header gives the cross-fit's wall and CPU
    seconds, the 1-minute load average before and after it, and the mean over folds of the noise matrix the nets
    estimated (its largest off-diagonal entries, next to the injected rates). ``seeds``: noise draws, one run each."""
    import os
    import resource
    import tempfile

    from coreclean import load_source
    from coreclean.embedding.crossfit_cnn import crossfit_log_proba

    ds = load_source("fashion-mnist")
    keep = np.sort(np.random.default_rng(0).choice(len(ds.y_train), size, replace=False))
    X_pixels, y, _, _ = features("fashion-mnist", size)
    for spec, seed in [(spec, seed) for spec in specs for seed in seeds]:
        kind, rate = spec.split(":")
        noisy = inject_noise(y, kind, float(rate), "fashion-mnist", seed)
        load = os.getloadavg()[0]
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime
        with tempfile.TemporaryDirectory() as scratch, Timer() as t:
            where = Path(work) / f"{kind}-{rate}-{size}-{folds}x{epochs}{f'-noise{seed}' if seed else ''}" \
                if work else Path(scratch)
            reused = len(list(where.glob("fold_*_held.npy"))) if where.exists() else 0
            oof, _ = crossfit_log_proba(ds.pixels_train[keep], noisy, ds.pixels_test[:2000], 10, where,
                                        folds=folds, epochs=epochs)
            noise = [np.load(f, allow_pickle=False) for f in sorted(where.glob("fold_*_noise.npy"))]
        load_after = os.getloadavg()[0]
        cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime \
            - cpu
        probs = np.exp(oof)
        scorers = {
            "pixels + coreclean": (X_pixels, SCORERS["coreclean"]),
            "cnn + coreclean": (oof, SCORERS["coreclean"]),
            "cnn + cleanlab self_confidence (same out-of-fold probs)":
                (oof, lambda X, labels, s: methods.cleanlab_scores(labels, probs, "self_confidence")),
        }
        print(f"## cnn backbone: Fashion-MNIST n={size}, {kind} {rate} (noise seed {seed}: "
              f"{int((noisy != y).sum())} flips); "
              f"cross-fit {folds} folds x {epochs} epochs ({reused} folds reused from --work): {t.seconds:.0f} s "
              f"wall, {cpu:.0f} s CPU, load average "
              f"{load:.1f} at start, {load_after:.1f} at the end, on {os.cpu_count()} cores; out-of-fold accuracy "
              f"vs true labels {float((oof.argmax(1) == y).mean()):.3f}\n")
        if noise:
            injected = np.zeros((10, 10))
            np.add.at(injected, (y, noisy), 1.0)
            injected /= injected.sum(axis=1, keepdims=True)
            estimate = np.mean(noise, axis=0) * (1 - np.eye(10))
            top = zip(*np.unravel_index(np.argsort(-estimate, axis=None)[:4], estimate.shape))
            print("noise matrix T[true, given] the nets estimated (mean of folds), largest off-diagonal: "
                  + ", ".join(f"{ds.classes[i]}->{ds.classes[j]} {estimate[i, j]:.2f} (injected {injected[i, j]:.2f})"
                              for i, j in top) + "\n")
        rows = []
        for name, (X, scorer) in scorers.items():
            with Timer() as s:
                curve = review_loop(X, noisy, y, scorer, seed=0, rounds=rounds)
            rows.append({"features + ranking": name, **{f"{(i + 1) * 100}": v for i, v in enumerate(curve)},
                         "loop time (s)": s.seconds})
        print(markdown_table(rows, list(rows[0])) + "\n", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion-mnist"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[20000, 60000], help="Fashion-MNIST train sizes")
    parser.add_argument("--noise", nargs="+", default=["uniform:0.05", "uniform:0.1", "uniform:0.2", "pair:0.1",
                                                       "asymmetric:0.1"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--loop-size", type=int, default=20000, help="Fashion-MNIST size for the review loop")
    parser.add_argument("--quick", action="store_true", help="digits, one noise setting, one seed, 3-round loop")
    parser.add_argument("--no-loop", action="store_true", help="skip the review loop")
    parser.add_argument("--rounds", type=int, default=None, help="review-loop rounds (default 10; 3 with --quick)")
    parser.add_argument("--cnn", action="store_true", help="only the cnn backbone comparison (review loop)")
    parser.add_argument("--cnn-noise", nargs="+", default=["pair:0.1", "uniform:0.1"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=None, help="keep the cnn folds here (a rerun resumes)")
    parser.add_argument("--cnn-seeds", nargs="+", type=int, default=[0], help="noise draws of --cnn (one run each)")
    parser.add_argument("--fits", nargs="*", choices=["coreset", "checkout"], default=None,
                        help="only the classifier comparison (static + review loop): the pre-issue-13 coreset fit "
                             "and/or this checkout's estimator (default both)")
    parser.add_argument("--loop-seeds", type=int, default=1, help="--fits: noise draws of the review loop")
    args = parser.parse_args(argv)
    if args.fits is not None:
        print(f"# The classifier behind the ranking ({machine()})\n")
        for dataset in args.datasets:
            fit_comparison(dataset, [None] if dataset == "digits" else args.sizes, args.noise, seeds=args.seeds,
                           rounds=args.rounds or 10, loop_seeds=args.loop_seeds, fits=args.fits or list(FITS))
        return 0
    if args.cnn:
        print(f"# cnn backbone vs pixels ({machine()})\n")
        cnn_comparison(args.loop_size, args.cnn_noise, folds=args.folds, epochs=args.epochs, work=args.work,
                       seeds=args.cnn_seeds)
        return 0
    if args.quick:
        args.datasets, args.noise, args.seeds = ["digits"], ["uniform:0.1"], 1
    print(f"# Label-error detection ({machine()})\n")
    # Warm-up: the first torch call of a process initializes its thread pool (~2 s, once); time steady state.
    toy = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    methods.ours(toy, np.arange(40) % 2)
    for dataset in args.datasets:
        sizes = [None] if dataset == "digits" else args.sizes
        for size in sizes:
            X, y, _, _ = features(dataset, size)
            for spec in args.noise:
                kind, rate = spec.split(":")
                rows = {m: [] for m in METHODS}
                flips = []
                for seed in range(args.seeds):
                    noisy = inject_noise(y, kind, float(rate), dataset, seed)
                    is_error = noisy != y
                    flips.append(int(is_error.sum()))
                    for method, (score, seconds) in score_all(X, noisy, seed).items():
                        rows[method].append({**metrics(is_error, score), "time (s)": seconds})
                table = [{"method": m, **{k: float(np.mean([r[k] for r in rows[m]])) for k in rows[m][0]}}
                         for m in METHODS]
                print(f"## {dataset}, n={len(y)}, {kind} noise {rate} (~{int(np.mean(flips))} flips), "
                      f"mean of {args.seeds} seed(s)\n")
                print(markdown_table(table, ["method", "AUROC", "AP", "P@k", "time (s)"]) + "\n", flush=True)
        if args.no_loop:
            continue
        loop_size = None if dataset == "digits" else args.loop_size
        X, y, _, _ = features(dataset, loop_size)
        noisy = inject_noise(y, "uniform", 0.1, dataset, 0)
        rounds = args.rounds or (3 if args.quick else 10)
        print(f"## Review loop: {dataset}, n={len(y)}, uniform 0.1 ({int((noisy != y).sum())} flips), "
              f"rounds of 100 reviews, errors found (cumulative)\n")
        rows = []
        for method, scorer in SCORERS.items():
            with Timer() as t:
                curve = review_loop(X, noisy, y, scorer, seed=0, rounds=rounds)
            rows.append({"method": method, **{f"{(i + 1) * 100}": v for i, v in enumerate(curve)},
                         "time (s)": t.seconds})
        print(markdown_table(rows, list(rows[0])) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
