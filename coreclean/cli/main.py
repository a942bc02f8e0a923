"""Command line: ``python -m coreclean build SOURCE`` and ``python -m coreclean rank``."""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..data.files import csv_safe, load_npy
from ..build.params import BuildParams
from ..build.timing import stage_table
from ..config import VERSION, WEIGHTS_ENV, weights_setting
from ..importance.backends import IMPORTANCE_BACKENDS
from ..embedding.registry import OWN as OWN_BACKBONES
from .dashboard import add_parser as add_dashboard
from .exchange import add_export_options, add_import_command, export as export_other_formats, stored_suggestions


RANK_COLUMNS = ["index", "label", "importance", "predicted", "p_label", "duplicate_of", "outlier"]


ANALYSIS_MARKERS = ("meta.json", "reviews.sqlite", "reviews.backup")  # what only an analysis directory holds


def analysis_holding(path: Path) -> Path | None:
    """The analysis directory (a build, a revision, one being assembled) that ``path`` lies inside, or ``None``.

    Both the path as given and its resolved form (symlinks followed) are checked, so a link into an analysis
    counts too."""
    for candidate in dict.fromkeys((Path(os.path.abspath(path)), Path(path).resolve())):
        for folder in candidate.parents:
            if folder.name.endswith(".partial") or any((folder / m).exists() for m in ANALYSIS_MARKERS):
                return folder
    return None


def check_output_path(out: str, *, inputs: tuple[str, ...] = ()) -> Path:
    """Fail before any work when ``out`` cannot be written, would overwrite an input, or lies inside an analysis
    directory (whose files — the review log, meta.json, the arrays — a CSV must never replace)."""
    path = Path(out)
    resolved = path.resolve()
    for given in inputs:
        if Path(given).resolve() == resolved:
            raise ValueError(f"--out {out}: is also an input file; choose another output path.")
    holder = analysis_holding(path)
    if holder is not None:
        raise ValueError(f"--out {out}: inside the analysis directory {holder}, whose files must not be replaced; "
                         "write the CSV somewhere else (e.g. ./ranking.csv).")
    if path.is_dir():
        raise ValueError(f"--out {out}: is a directory; give a file path such as {path / 'ranking.csv'}.")
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: folder {path.parent} does not exist; create it first.")
    if path.exists() and not path.is_file():
        raise ValueError(f"--out {out}: not a regular file; give a file path.")
    try:
        if path.exists():
            open(path, "ab").close()  # appends nothing; fails for read-only and immutable files
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".coreclean-"):
            pass
    except OSError as err:
        raise ValueError(f"--out {out}: not writable ({err.strerror or err}); choose a path you can write to.") from err
    return path


def write_csv(path: Path, header: list[str], rows) -> None:
    """Write a CSV next to ``path`` and rename it into place: a failed write never leaves half a file."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".coreclean-", suffix=".csv", newline="",
                                     delete=False) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(csv_safe(row) for row in rows)  # no cell a spreadsheet would run as a formula
    os.replace(handle.name, path)


def _params(args) -> BuildParams:
    """The build settings of ``build`` / ``export`` arguments (weights by the one policy when not given)."""
    return BuildParams(backbone=args.backbone, weights=weights_setting(args.weights), pca=args.pca,
                       importance=getattr(args, "importance", "coreclean"))


def _build(args) -> int:
    from ..analysis.reader import Analysis
    from ..build.pipeline import build_analysis
    from ..build.reuse import describe
    from .progress import StageBars

    bars = StageBars()
    try:
        analysis = Analysis.load(build_analysis(args.source, _params(args), cache_dir=args.cache, progress=bars,
                                                cluster=args.cluster, reuse=not args.no_reuse))
    finally:
        bars.close()
    meta = analysis.meta
    print(f"{meta['name']}: {meta['n_train']} train / {meta['n_test']} test, {len(analysis.classes)} classes, "
          f"backbone {analysis.params.backbone}, test accuracy {analysis.accuracy:.4f}")
    if meta.get("reused"):
        print(describe(meta["reused"], analysis.directory.parent))
    if meta.get("stages"):
        print(stage_table(meta["stages"]) + f"\ntotal {meta['build_seconds']:.2f} s")
    for file, reason in meta["skipped"][:20]:
        print(f"skipped {file}: {reason}", file=sys.stderr)
    if len(meta["skipped"]) > 20:
        print(f"... and {len(meta['skipped']) - 20} more skipped (see meta.json)", file=sys.stderr)
    print(f"cache: {analysis.directory}")
    return 0


def _retrain(args) -> int:
    from ..analysis.reader import Analysis
    from .progress import StageBars
    from ..build.retrain import retrain
    from ..review.log import ReviewLog

    analysis = Analysis.load(args.directory)
    decided = ReviewLog(analysis.root_analysis, len(analysis.y_train), analysis.n_classes).current()
    if not any(d.decision != "ok" for d in decided.values()):
        raise ValueError(f"{analysis.root_analysis / 'reviews.sqlite'}: no 'mislabeled' or 'remove' decisions to "
                         "apply; review first (dashboard Review page).")
    bars = StageBars()
    try:
        result = retrain(analysis, decided, progress=bars)
    finally:
        bars.close()
    revision = Analysis.load(result.directory)
    print(f"round {revision.meta['lineage']['round']}: applied "
          f"{len(decided)} decisions ({result.relabelled} relabelled, {result.removed} removed); test accuracy "
          f"{result.accuracy_before:.4f} -> {result.accuracy_after:.4f}")
    print(f"revision: {result.directory}")
    return 0


def _rank_analysis(args) -> int:
    from ..analysis.reader import Analysis
    from ..review.export import SUGGESTION_COLUMNS, suggestion_cells

    out = check_output_path(args.out)
    analysis = Analysis.load(args.analysis)
    order = [i for i in np.argsort(-analysis.importance, kind="stable") if not analysis.removed_train[i]]
    duplicate_of, outlier = analysis.stack("duplicate_of_train"), analysis.stack("outlier_train")
    if duplicate_of is None or outlier is None:
        raise ValueError(f"{analysis.directory}: built before the exploration signals; rebuild it with "
                         "'python -m coreclean build'.")
    zero_shot = analysis.stack("zero_shot_train")  # backbones with a text tower: p(label) zero-shot
    audit = stored_suggestions(analysis)  # the dataset audit's suggestion, where one is stored
    write_csv(out, RANK_COLUMNS + (["zero_shot"] if zero_shot is not None else [])
              + (list(SUGGESTION_COLUMNS) if audit is not None else []),
              ([int(i), int(analysis.y_train[i]), f"{analysis.importance[i]:.6g}", int(analysis.pred_train[i]),
                f"{analysis.p_label_train[i]:.6g}", int(duplicate_of[i]), f"{outlier[i]:.4g}"]
               + ([f"{zero_shot[i]:.4g}"] if zero_shot is not None else [])
               + (suggestion_cells(i, list(analysis.classes), audit) if audit is not None else []) for i in order))
    print(f"wrote {len(order)} rows to {out}")
    return 0


def _rank(args) -> int:
    from ..exploration.stage import feature_signals
    from ..importance.sensitivity import CoresetSensitivity
    from ..data.validation import check_distance_scale, check_features_labels

    if args.analysis:
        if args.features or args.labels:
            raise ValueError("give either an analysis directory or --features/--labels, not both.")
        return _rank_analysis(args)
    if not (args.features and args.labels):
        raise ValueError("rank needs an analysis directory (from build or retrain) or --features X.npy --labels y.npy.")
    out = check_output_path(args.out, inputs=(args.features, args.labels))
    X = load_npy(Path(args.features), mmap=True)
    y = load_npy(Path(args.labels))
    X, y = check_features_labels(X, y, x_name=args.features, y_name=args.labels)
    check_distance_scale(X, args.features)
    est = CoresetSensitivity().fit(X, y)
    stats = est.stats_  # already computed under the classifier; no second pass, no (n, K) matrix
    order = np.argsort(-est.importance_, kind="stable")
    duplicate_of, outlier = feature_signals(X)
    write_csv(out, RANK_COLUMNS,
              ([int(i), int(y[i]), f"{est.importance_[i]:.6g}", int(stats["pred"][i]), f"{stats['p_label'][i]:.6g}",
                int(duplicate_of[i]), f"{outlier[i]:.4g}"] for i in order))
    print(f"wrote {len(order)} rows to {out}")
    return 0


def _restore_log(args) -> int:
    from ..review.backup import restore

    used, rows, aside = restore(args.directory, force=args.force)
    print(f"restored {rows} decision rows from {used} into {Path(args.directory) / 'reviews.sqlite'}"
          + (f" (the previous file is kept next to it as {aside})" if aside else ""))
    return 0


def _export(args) -> int:
    from ..analysis.reader import Analysis
    from ..review.export import issues_table, logged_decisions, table_rows
    from ..quality.issues import parse_thresholds
    from .progress import StageBars

    if args.format != "csv":  # the other formats (Label Studio, FiftyOne, cleaned dataset): cli/exchange.py
        return export_other_formats(args)
    out = check_output_path(args.out)
    thresholds = parse_thresholds(args.threshold)
    if (Path(args.source) / "meta.json").is_file():  # an analysis directory (a build or a retrain revision)
        analysis = Analysis.load(args.source)
    else:
        bars = StageBars()
        try:
            analysis = Analysis.build(args.source, _params(args), cache_dir=args.cache, progress=bars)
        finally:
            bars.close()
    table = issues_table(analysis, logged_decisions(analysis), thresholds, suggestions=stored_suggestions(analysis))
    write_csv(out, list(table.columns), table_rows(table))
    print(f"wrote {len(table)} rows to {out} (analysis {analysis.directory})")
    flagged = [f"{c[3:-6]} {int(table[c].sum())}" for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
    print("flagged: " + ", ".join(flagged) if flagged else
          "no image-quality scores in this analysis (embeddings without images, or built before quality "
          "scoring: delete the analysis directory and build again to add them)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreclean", description=__doc__)
    parser.add_argument("--version", action="version", version=f"coreclean {VERSION}")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="embed, classify and score a dataset; cache the analysis")
    build.add_argument("source", nargs="?", default="digits",
                       help="digits | fashion-mnist[:DIR] | ImageFolder DIR | embeddings DIR (default: digits)")
    build.add_argument("--cache", type=Path, default=None,
                       help="cache directory (default: $CORECLEAN_CACHE or .coreclean-cache)")
    build.add_argument("--backbone", default=None, metavar="NAME",
                       help=f"{', '.join(OWN_BACKBONES)}, any torchvision classification model (resnet18, resnet50, "
                            "convnext_tiny, vit_b_16 ...), clip:ARCH (open_clip, e.g. clip:ViT-B-32; text search) or "
                            "clip with --weights DIR; default: pixels for digits/fashion-mnist, resnet18 for image "
                            "folders (README: which backbone for which data)")
    build.add_argument("--weights", default=None,
                       help="'imagenet' (torchvision download), a state_dict FILE for offline use, or 'none' "
                            f"(default: ${WEIGHTS_ENV}, else imagenet)")
    build.add_argument("--pca", type=int, default=128, help="PCA dimensions for the pixels backbone (0 = off)")
    build.add_argument("--importance", choices=list(IMPORTANCE_BACKENDS), default="coreclean",
                       help="importance backend; 'dataheroes' needs the optional package, an account and internet")
    build.add_argument("--cluster", default=None, metavar="SPEC",
                       help="run on Dask: local:N (N worker processes here) or tcp://HOST:PORT (a running "
                            "scheduler; the cache must be on a path the workers share); default $CORECLEAN_CLUSTER, "
                            "else this process (docs/scale-out.md)")
    build.add_argument("--no-reuse", action="store_true",
                       help="embed every image, even those an earlier analysis of the same source (same backbone "
                            "and weights, file unchanged) already embedded; by default only new or changed images "
                            "are embedded")
    build.set_defaults(run=_build)
    rank = sub.add_parser("rank", help="rank an analysis (or your own embeddings) by importance into a CSV")
    rank.add_argument("analysis", nargs="?", help="an analysis directory (a build or a retrain revision)")
    rank.add_argument("--features", help="X.npy (n, d), instead of an analysis")
    rank.add_argument("--labels", help="y.npy (n,), with --features")
    rank.add_argument("--out", required=True, help="output CSV path")
    rank.set_defaults(run=_rank)
    again = sub.add_parser("retrain", help="apply an analysis's review decisions, refit, write the next round")
    again.add_argument("directory", help="the analysis directory (a build or a retrain revision)")
    again.set_defaults(run=_retrain)
    restore = sub.add_parser("restore-log", help="replace a damaged review log by its newest intact backup")
    restore.add_argument("directory", help="the analysis directory holding reviews.sqlite")
    restore.add_argument("--force", action="store_true",
                         help="replace the log even when it is intact (it may hold decisions newer than every "
                              "backup; it is kept aside)")
    restore.set_defaults(run=_restore_log)
    export = sub.add_parser("export", help="one CSV row per training sample with every signal, quality issues "
                                           "and the current review decision")
    export.add_argument("source", help="an analysis directory (build or retrain revision), or a SOURCE as for "
                                       "build (built or reused first)")
    export.add_argument("--out", required=True, help="output CSV path, e.g. issues.csv")
    export.add_argument("--threshold", action="append", metavar="ISSUE=VALUE",
                        help="override an issue's flag threshold (score in [0, 1], flagged above it); repeatable, "
                             "e.g. --threshold dark=0.8 --threshold blurry=0.6")
    export.add_argument("--cache", type=Path, default=None, help="cache directory when building (as for build)")
    export.add_argument("--backbone", default=None, metavar="NAME", help="as for build")
    export.add_argument("--weights", default=None, help="as for build")
    export.add_argument("--pca", type=int, default=128, help="as for build")
    add_export_options(export, check_output_path)
    export.set_defaults(run=_export)
    from .report import add_parser as add_report

    add_report(sub, check_output_path, _params)
    add_import_command(sub)
    add_dashboard(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the user gave that the system refuses (permissions, /proc, disk full)
        print(f"error: {getattr(err, 'filename', None) or ''}: {err.strerror or err}; check the path and "
              "permissions.", file=sys.stderr)
        return 2
