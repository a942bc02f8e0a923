"""Command line: ``python -m coreclean build SOURCE`` and ``python -m coreclean rank``."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from .analysis import DEFAULT_CACHE, Analysis


def _build(args) -> int:
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage) or bars.setdefault(stage, tqdm(total=total, desc=stage, unit="img" if stage == "embed" else "step"))
        bar.update(done - bar.n)

    analysis = Analysis.build(args.source, cache_dir=args.cache, backbone=args.backbone, weights=args.weights,
                              pca=args.pca, importance=args.importance, progress=progress)
    for bar in bars.values():
        bar.close()
    meta = analysis.meta
    print(f"{meta['name']}: {meta['n_train']} train / {meta['n_test']} test, {len(analysis.classes)} classes, "
          f"backbone {meta['backbone']}, test accuracy {analysis.accuracy:.4f}")
    for file, reason in meta["skipped"][:20]:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if len(meta["skipped"]) > 20:
        print(f"... and {len(meta['skipped']) - 20} more skipped (see meta.json)", file=sys.stderr)
    print(f"cache: {analysis.directory}")
    return 0


def _rank(args) -> int:
    from .embeddings_dir import load_npy
    from .importance import CoresetSensitivity
    from .validation import check_features_labels

    X = load_npy(Path(args.features), mmap=True)
    y = load_npy(Path(args.labels))
    X, y = check_features_labels(X, y, x_name=args.features, y_name=args.labels)
    est = CoresetSensitivity().fit(X, y)
    stats = est.stats_  # already computed under the classifier; no second pass, no (n, K) matrix
    order = np.argsort(-est.importance_, kind="stable")
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label", "importance", "predicted", "p_label"])
        for i in order:
            writer.writerow([int(i), int(y[i]), f"{est.importance_[i]:.6g}", int(stats["pred"][i]),
                             f"{stats['p_label'][i]:.6g}"])
    print(f"wrote {len(order)} rows to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreclean", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="embed, classify and score a dataset; cache the analysis")
    build.add_argument("source", nargs="?", default="digits",
                       help="digits | fashion-mnist[:DIR] | ImageFolder DIR | embeddings DIR (default: digits)")
    build.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache directory (default: %(default)s)")
    build.add_argument("--backbone", choices=["resnet18", "pixels", "precomputed"], default=None,
                       help="default: pixels for digits/fashion-mnist, resnet18 for image folders")
    build.add_argument("--weights", default="imagenet",
                       help="'imagenet' (torchvision download), a state_dict FILE for offline use, or 'none'")
    build.add_argument("--pca", type=int, default=128, help="PCA dimensions for the pixels backbone (0 = off)")
    build.add_argument("--importance", choices=["coreclean", "dataheroes"], default="coreclean",
                       help="importance backend; 'dataheroes' needs the optional package, an account and internet")
    build.set_defaults(run=_build)
    rank = sub.add_parser("rank", help="rank your own embeddings by importance into a CSV")
    rank.add_argument("--features", required=True, help="X.npy (n, d)")
    rank.add_argument("--labels", required=True, help="y.npy (n,)")
    rank.add_argument("--out", required=True, help="output CSV path")
    rank.set_defaults(run=_rank)
    args = parser.parse_args(argv)
    if getattr(args, "weights", None) == "none":
        args.weights = None
    try:
        return args.run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
