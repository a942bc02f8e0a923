"""``export --format label-studio|imagefolder`` and ``import --from label-studio``: the review leaves
coreclean for the tools where labels are fixed and models trained, and the answers come back as decisions."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..analysis.reader import Analysis
    from ..audit.audit import Audit

FORMATS = ("csv", "label-studio", "imagefolder")


def add_export_options(export: argparse.ArgumentParser, check_output_path: Callable[[str], Path]) -> None:
    """The options the other export formats add to ``export`` (its default, csv, is the issues table);
    ``check_output_path`` is the CLI's output-path check (handed in: this module does not import main)."""
    from ..review.exchange.queues import QUEUE_HELP

    export.set_defaults(check_output_path=check_output_path)

    export.add_argument("--format", choices=FORMATS, default="csv",
                        help="csv: the issues table (default); label-studio: tasks for a review queue plus a "
                             "labeling config; imagefolder: the cleaned dataset (decisions applied) with "
                             "manifest.csv in the --out folder. Both take an analysis directory")
    export.add_argument("--queue", default="all", help=f"label-studio: the review queue ({QUEUE_HELP})")
    export.add_argument("--limit", type=int, default=None, help="label-studio: at most N tasks (the queue's top N)")
    export.add_argument("--url-prefix", default=None,
                        help="label-studio: image URL = PREFIX/<path under the dataset root> (default: Label "
                             "Studio's local-files URL)")
    export.add_argument("--document-root", default=None,
                        help="label-studio: LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT of your server, a folder holding "
                             "the dataset (default: the dataset root)")
    export.add_argument("--link", action="store_true", help="imagefolder: hard-link images instead of copying")
    export.add_argument("--force", action="store_true", help="imagefolder: replace a non-empty --out")


def add_import_command(sub) -> None:
    imp = sub.add_parser("import", help="record annotations from Label Studio's JSON export as review decisions")
    imp.add_argument("directory", help="the analysis directory the tasks were exported from")
    imp.add_argument("--from", dest="source_format", choices=["label-studio"], required=True,
                     help="the tool that wrote the file")
    imp.add_argument("file", help="the exported JSON file (Label Studio: Export -> JSON)")
    imp.set_defaults(run=import_annotations)


def _analysis(directory: str):
    from ..analysis.reader import Analysis

    if not (Path(directory) / "meta.json").is_file():
        raise ValueError(f"{directory}: not an analysis directory (no meta.json); build one with "
                         "'python -m coreclean build SOURCE' and pass the cache path it prints.")
    return Analysis.load(directory)


def stored_suggestions(analysis: Analysis) -> Audit | None:
    """The dataset audit stored with ``analysis`` (its per-sample suggestions for the exports), or None: exports
    never compute it (``python -m coreclean report`` or the dashboard does)."""
    from ..audit.audit import audit_of

    return audit_of(analysis, cached_only=True)


def export(args) -> int:
    """``export --format`` other than csv."""
    if args.format == "label-studio":
        return _export_label_studio(args)
    return _export_cleaned(args)


def _write_text(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".coreclean-", delete=False,
                                     encoding="utf-8") as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _export_label_studio(args) -> int:
    from ..review.exchange import label_studio
    from ..quality.issues import parse_thresholds
    from ..review.exchange.queues import queue_indices
    out = args.check_output_path(args.out)
    config_path = out.with_name(out.stem + ".config.xml")
    args.check_output_path(str(config_path))
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit {args.limit}: give a positive number of tasks.")
    analysis = _analysis(args.source)
    indices, described = queue_indices(analysis, args.queue, parse_thresholds(args.threshold))
    indices = indices[:args.limit] if args.limit else indices
    tasks = label_studio.tasks_for(analysis, indices, url_prefix=args.url_prefix, document_root=args.document_root,
                                   suggestions=stored_suggestions(analysis))
    config = label_studio.labeling_config(analysis.classes)
    _write_text(out, json.dumps(tasks, indent=1))
    _write_text(config_path, config)
    print(f"wrote {len(tasks)} Label Studio tasks ({described}) to {out} and the labeling config to {config_path}")
    if tasks and tasks[0]["data"]["image"].startswith(label_studio.LOCAL_FILES_URL):
        root = args.document_root or analysis.meta["root"]
        print(f"serve the images: start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true "
              f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={Path(root).resolve()} and add a Local Files storage "
              f"for {Path(analysis.meta['root']).resolve()} to the project (without syncing it)")
    return 0


def _export_cleaned(args) -> int:
    from ..review.exchange.cleaned import write_cleaned
    from .progress import StageBars

    analysis = _analysis(args.source)
    bars = StageBars()
    try:
        summary = write_cleaned(analysis, args.out, link=args.link, force=args.force, progress=bars)
    finally:
        bars.close()
    print(f"wrote the cleaned dataset to {summary.directory} ({summary.layout}): {summary.written} training "
          f"samples ({summary.relabelled} relabelled, {summary.removed} removed) and {summary.test} test samples; "
          f"manifest: {summary.directory / 'manifest.csv'}")
    return 0


def import_annotations(args) -> int:
    from ..review.exchange import label_studio
    from ..review.log import ReviewLog

    analysis = _analysis(args.directory)
    answers, skipped = label_studio.read_export(args.file, analysis)
    log = ReviewLog(analysis.root_analysis, len(analysis.y_train), analysis.n_classes)
    written = label_studio.record_decisions(log, answers)
    counts = {kind: sum(1 for a in written if a.decision == kind) for kind in ("ok", "mislabeled", "remove")}
    print(f"{args.file}: {len(answers)} annotated samples, {len(written)} new decisions recorded "
          f"({', '.join(f'{v} {k}' for k, v in counts.items())}); {len(answers) - len(written)} already in the "
          f"log; {skipped} tasks without an answer")
    return 0
