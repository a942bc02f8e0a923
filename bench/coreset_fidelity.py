"""Coreset fidelity: weighted logistic regression on coresets vs uniform samples of the same size vs full data.

    python bench/coreset_fidelity.py              # Fashion-MNIST (PCA-128 pixels), 0.5%..10%, 5 seeds
    python bench/coreset_fidelity.py --quick      # digits smoke run

Uniform samples get weight n/m each, so both estimate the same full-data objective (same regularization).
Reports test accuracy and the full-data training log-loss at the learned parameters, mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, features, machine, markdown_table  # noqa: E402
from coreclean import coreset  # noqa: E402
from bench.reference import fit_logreg  # noqa: E402
from coreclean.classifier.model import predict_proba  # noqa: E402


def evaluate(coef, X, y, X_test, y_test) -> tuple[float, float]:
    acc = float((predict_proba(X_test, coef).argmax(1) == y_test).mean())
    p = predict_proba(X, coef)[np.arange(len(y)), y]
    return acc, float(-np.log(np.clip(p, 1e-12, None)).mean())


def fmt(values) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.005, 0.01, 0.02, 0.05, 0.1])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset, args.fractions, args.seeds = "digits", [0.1, 0.3], 2
    X, y, X_test, y_test = features(args.dataset)
    n, K = len(y), int(y.max() + 1)
    with Timer() as t:
        full = fit_logreg(X, y, K)
    full_acc, full_loss = evaluate(full, X, y, X_test, y_test)
    print(f"# Coreset fidelity: {args.dataset}, n={n}, d={X.shape[1]} ({machine()})\n")
    print(f"Full data: test accuracy {full_acc:.4f}, train log-loss {full_loss:.4f}, fit {t.seconds:.1f} s\n")
    rows = []
    for fraction in args.fractions:
        m = int(round(fraction * n))
        acc = {"coreset": [], "uniform": []}
        loss = {"coreset": [], "uniform": []}
        seconds = []
        for seed in range(args.seeds):
            with Timer() as t:
                idx, w = coreset(X, y, m, random_state=seed)
            seconds.append(t.seconds)
            uniform = np.sort(np.random.default_rng([seed, 17]).choice(n, m, replace=False))
            for name, (i, weight) in {"coreset": (idx, w), "uniform": (uniform, np.full(m, n / m))}.items():
                a, l = evaluate(fit_logreg(X[i], y[i], K, sample_weight=weight), X, y, X_test, y_test)
                acc[name].append(a)
                loss[name].append(l)
        gap = full_acc - np.mean(acc["coreset"])
        rows.append({
            "size": f"{fraction:.1%} ({m})", "coreset acc": fmt(acc["coreset"]), "uniform acc": fmt(acc["uniform"]),
            "coreset − uniform (pp)": f"{100 * (np.mean(acc['coreset']) - np.mean(acc['uniform'])):+.2f}",
            "gap to full (pp)": f"{100 * gap:.2f}", "coreset log-loss": fmt(loss["coreset"]),
            "uniform log-loss": fmt(loss["uniform"]), "coreset time (s)": f"{np.mean(seconds):.1f}",
        })
        print(markdown_table(rows[-1:], list(rows[-1]), header=len(rows) == 1), flush=True)  # a row per fraction
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
