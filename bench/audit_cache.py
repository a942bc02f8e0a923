"""Cache the out-of-fold probabilities ``bench/audit.py`` scores, so estimators can be iterated on them in seconds.

    python bench/audit_cache.py --n 20000 --seed 0 --out /tmp/h3cache [--classifier linear]

The probabilities are the audit's own (``coreclean.audit.audit.cross_fitted_proba``; ``--classifier`` default: the
one the audit picks for the set's size, the two-layer net on these sets). One ``.npz`` per setting and classifier
(``{n}_{seed}_{kind}_{rate}_{classifier}.npz``: ``proba`` (n, K) float32, ``noisy`` (n,) given labels,
``y`` (n,) true labels, ``seconds`` of the cross-fit); a setting already cached is skipped. Settings: rate 0 (the
unflipped labels) and uniform/pair/asymmetric x 5/10/20%. Loaded with ``np.load`` (no pickles).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import Timer, features, inject_noise  # noqa: E402
from coreclean.audit.audit import CLASSIFIERS, cross_fitted_proba, crossfit_classifier  # noqa: E402

SETTINGS = [(k, r) for k in ("uniform", "pair", "asymmetric") for r in (0.05, 0.1, 0.2)] + [("uniform", 0.0)]


def cache_path(out: Path, n: int, seed: int, kind: str, rate: float, classifier: str) -> Path:
    return out / f"{n}_{seed}_{kind}_{rate:g}_{classifier}.npz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/h3cache"))
    parser.add_argument("--settings", nargs="*", default=None, help="kind:rate ... (default: all, rate 0 last)")
    parser.add_argument("--classifier", choices=CLASSIFIERS, default=None, help="default: the audit's choice")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    X, y, _, _ = features("fashion-mnist", args.n, seed=args.seed)
    K = int(y.max() + 1)
    classifier = args.classifier or crossfit_classifier(*X.shape, K)
    chosen = [(s.split(":")[0], float(s.split(":")[1])) for s in args.settings] if args.settings else SETTINGS
    for kind, rate in chosen:
        path = cache_path(args.out, len(y), args.seed, kind, rate, classifier)
        if path.exists():
            continue
        noisy = inject_noise(y, kind, rate, "fashion-mnist", args.seed) if rate else y.copy()
        with Timer() as cv:
            proba = cross_fitted_proba(X, noisy, K, np.arange(len(y)), folds=5, seed=args.seed,
                                       classifier=classifier)
        np.savez(path, proba=proba, noisy=noisy, y=y, seconds=cv.seconds)
        print(f"{path.name}: {cv.seconds:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
