"""ImageNet-scale build: 1,281,167 x 512 float32 embeddings, 1000 classes, on this machine.

    python bench/imagenet_scale.py                       # generate (once) into /tmp/coreclean-imagenet, then build
    python bench/imagenet_scale.py --n-train 200000      # a smaller run

The synthetic set has the seed's .npy layout: a class-structured Gaussian mixture (ImageNet ids, so classes get
ImageNet names) with 100 confusable class pairs and 5% injected label flips; it is written in chunks and never
committed. The build is timed per stage with peak RSS (sampled every 20 ms, file-backed pages of the memory-mapped
embeddings included), and the classifier's accuracy cost of fitting on a coreset is reported against the
flip-detection quality (average precision) of the importance.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


class PeakRSS(threading.Thread):
    """Samples RSS in the background; ``mark(stage)`` starts a new stage, ``peaks`` holds each stage's maximum."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stage, self.peaks, self.started, self.times, self.running = "start", {}, {}, {}, True

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stage in self.started:
            self.times[self.stage] = now - self.started[self.stage]
        self.stage = stage
        self.started.setdefault(stage, now)

    def run(self) -> None:
        while self.running:
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss_bytes())
            time.sleep(0.02)


def generate(directory: Path, n_train: int, n_test: int, d: int = 512, K: int = 1000, seed: int = 0,
             chunk: int = 65536) -> None:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, d)).astype(np.float32) * 0.2
    pairs = K // 10  # 100 confusable pairs for ImageNet's 1000 classes
    partners = rng.permutation(K)[:2 * pairs].reshape(pairs, 2)
    means[partners[:, 1]] = means[partners[:, 0]] + rng.normal(size=(pairs, d)).astype(np.float32) * 0.05
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, K, n)
        x = np.lib.format.open_memmap(directory / f"x_{split}.npy", mode="w+", dtype=np.float32, shape=(n, d))
        for start in range(0, n, chunk):
            labels = y[start:start + chunk]
            x[start:start + chunk] = means[labels] + rng.standard_normal((len(labels), d), dtype=np.float32)
        x.flush()
        del x
        if split == "train":
            flipped = rng.random(n) < 0.05
            np.save(directory / "y_clean.npy", y)
            y = y.copy()
            y[flipped] = (y[flipped] + rng.integers(1, K, flipped.sum())) % K
        np.save(directory / f"y_{split}.npy", y)
    (directory / "README").write_text("synthetic ImageNet-shaped set written by bench/imagenet_scale.py\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/coreclean-imagenet"))
    parser.add_argument("--n-train", type=int, default=1_281_167)
    parser.add_argument("--n-test", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--fit-samples", default="auto",
                        help="rows the classifier is fit on (default: auto budget); a larger number shows the "
                             "accuracy cost of the default")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/coreclean-imagenet-cache"))
    args = parser.parse_args(argv)
    data = args.dir / f"n{args.n_train}-k{args.classes}"
    if not (data / "y_test.npy").exists():
        started = time.perf_counter()
        generate(data, args.n_train, args.n_test, K=args.classes)
        print(f"generated {data} in {time.perf_counter() - started:.0f} s")
    import shutil

    from coreclean import Analysis

    shutil.rmtree(args.cache, ignore_errors=True)
    monitor = PeakRSS()
    monitor.start()
    stages = []

    def progress(stage: str, done: int, total: int) -> None:
        if not stages or stages[-1] != stage:
            stages.append(stage)
            monitor.mark(stage)

    started = time.perf_counter()
    fit_samples = args.fit_samples if args.fit_samples == "auto" else int(args.fit_samples)
    analysis = Analysis.build(str(data), cache_dir=args.cache, max_fit_samples=fit_samples, progress=progress)
    total = time.perf_counter() - started
    monitor.mark("done")
    monitor.running = False
    from sklearn.metrics import average_precision_score

    flipped = np.load(data / "y_clean.npy") != analysis.y_train
    meta = analysis.meta
    print(f"# ImageNet-scale build: n={meta['n_train']:,} x {meta['n_features']}, {analysis.n_classes} classes\n")
    print("| stage | seconds | peak RSS (GB) |\n|---|---|---|")
    for stage in stages:
        print(f"| {stage} | {monitor.times.get(stage, float('nan')):.1f} | {monitor.peaks.get(stage, 0) / 1e9:.2f} |")
    print(f"| **total build** | **{total:.1f}** | **{max(monitor.peaks.values()) / 1e9:.2f}** |\n")
    print(f"classifier fit on {meta['classifier_fit_samples']:,} coreset rows; test accuracy {analysis.accuracy:.4f}")
    print(f"importance: average precision for the {int(flipped.sum()):,} injected flips "
          f"{average_precision_score(flipped, analysis.importance):.4f} (random: {flipped.mean():.4f})")
    print(json.dumps({"cache": str(analysis.directory)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
