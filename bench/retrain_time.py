"""Apply & retrain time on Fashion-MNIST: 50 decisions (relabel the top-importance samples whose prediction
disagrees with their label to the prediction, remove the next ones), then time ``retrain``.

    python bench/retrain_time.py [--cache DIR]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from coreclean import Analysis  # noqa: E402
from coreclean.build.retrain import retrain  # noqa: E402
from coreclean.review.log import ReviewLog  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="fashion-mnist")
    parser.add_argument("--cache", default=".coreclean-cache")
    args = parser.parse_args(argv)
    analysis = Analysis.build(args.source, cache_dir=args.cache)
    log = ReviewLog(tempfile.mkdtemp(), len(analysis.y_train))
    top = np.argsort(-analysis.importance)[:50]
    for i in top[:40]:
        if analysis.pred_train[i] != analysis.y_train[i]:
            log.record(int(i), int(analysis.y_train[i]), "mislabeled", new_label=int(analysis.pred_train[i]))
    for i in top[40:]:
        log.record(int(i), int(analysis.y_train[i]), "remove")
    result = retrain(analysis, log.current())
    print(f"{args.source}: {len(log.current())} decisions ({result.relabelled} relabelled, {result.removed} removed); "
          f"test accuracy {result.accuracy_before:.4f} -> {result.accuracy_after:.4f}; retrain {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
