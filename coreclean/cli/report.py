"""``python -m coreclean report SOURCE|CACHE_DIR --out report.html [--json report.json] [--fail-on RULE ...]``:
the dataset audit as one self-contained HTML file (and its numbers as JSON); exit 3 when a ``--fail-on`` rule is
crossed, for CI data checks."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

FAILED = 3


def _write_text(path: Path, text: str) -> None:
    """Write next to ``path`` and rename into place: a failed write never leaves half a file."""
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=".coreclean-",
                                     delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def run(args) -> int:
    from ..analysis.reader import Analysis
    from ..audit.audit import audit_of
    from ..audit.report_data import report_data, to_json
    from ..audit.report_html import render_html
    from ..audit.rules import parse_rule
    from .progress import StageBars

    check_output_path, build_params = args.check_output_path, args.build_params

    rules = [parse_rule(text) for text in args.fail_on or []]
    out = check_output_path(args.out)
    json_out = check_output_path(args.json) if args.json else None
    if json_out is not None and json_out.resolve() == out.resolve():
        raise ValueError(f"--json {args.json}: same file as --out; give two paths.")
    bars = StageBars()
    try:
        if (Path(args.source) / "meta.json").is_file():  # an analysis directory (a build or a retrain revision)
            analysis = Analysis.load(args.source)
        else:
            analysis = Analysis.build(args.source, build_params(args), cache_dir=args.cache, progress=bars)
        audit = audit_of(analysis, folds=args.folds, progress=bars)
        bars("report", 0, 2)
        data = report_data(analysis, audit)
        bars("report", 1, 2)
        html = render_html(analysis, data)
        bars("report", 2, 2)
    finally:
        bars.close()
    _write_text(out, html)
    if json_out is not None:
        _write_text(json_out, to_json(data))
    metrics, n_train = data["metrics"], data["dataset"]["n_train"]
    print(f"wrote {out}" + (f" and {json_out}" if json_out else "") + f" (analysis {analysis.directory})")
    print(f"health {metrics['health']:.3f}, estimated wrong labels {data['audit']['noise_rate']:.1%} "
          f"({metrics['label_issues']:,} of {n_train:,})")
    crossed = [rule for rule in rules if rule.crossed(metrics, n_train)]
    for rule in rules:
        if metrics.get(rule.metric) is None:
            print(f"note: --fail-on {rule.text!r}: this analysis has no {rule.metric} (not checked)", file=sys.stderr)
    for rule in crossed:
        print(f"fail: {rule.text} (observed {rule.metric} = {metrics[rule.metric]:.4g})", file=sys.stderr)
    return FAILED if crossed else 0


def add_parser(sub, check_output_path: Callable, build_params: Callable) -> None:
    """Register ``report`` on ``sub``; the command line's output-path check and build settings are handed in
    (this module sits below :mod:`coreclean.cli.main`, which imports it)."""
    report = sub.add_parser("report", help="the dataset audit as one self-contained HTML file (and JSON); "
                                           "--fail-on rules for CI data checks (exit 3)")
    report.add_argument("source", help="an analysis directory (build or retrain revision), or a SOURCE as for "
                                       "build (built or reused first)")
    report.add_argument("--out", required=True, help="output HTML path, e.g. report.html")
    report.add_argument("--json", default=None, help="also write the report's numbers as JSON")
    report.add_argument("--fail-on", action="append", metavar="RULE",
                        help="exit 3 when crossed; repeatable, e.g. \"label_issues>5%%\" \"leakage>0\" "
                             "\"health<0.8\"")
    report.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the noise estimate")
    report.add_argument("--cache", type=Path, default=None, help="cache directory when building (as for build)")
    report.add_argument("--backbone", default=None, metavar="NAME", help="as for build")
    report.add_argument("--weights", default=None, help="as for build")
    report.add_argument("--pca", type=int, default=128, help="as for build")
    report.set_defaults(run=run, check_output_path=check_output_path, build_params=build_params)
