"""ImageNet-scale build: 1,281,167 x 512 float32 embeddings, 1000 classes, on this machine.

    python bench/imagenet_scale.py                                   # isotropic set: Analysis.build, per stage
    python bench/imagenet_scale.py --variant anisotropic             # the anisotropic set, same build
    python bench/imagenet_scale.py --variant anisotropic --compare old new reference
    python bench/imagenet_scale.py --n-train 100000 --compare old new  # a smaller run

Two synthetic sets in the seed's .npy layout (ImageNet ids, so classes get ImageNet names), written in chunks
under ``--dir`` once and never committed, each with 5% injected uniform label flips in train:

* ``isotropic``: class means N(0, 0.2^2 I), unit isotropic noise, 100 confusable pairs (means 0.05 N(0, I) apart).
* ``anisotropic``: Gaussian classes with ONE shared covariance whose spectrum decays as 1/j (random rotation),
  class means drawn from another decaying spectrum in another rotation plus a common offset (ReLU-like
  features), 100 confusable pairs. The Bayes-optimal rule is linear and known; the script prints its test
  accuracy (the true rule applied to the test set).

Default mode times ``Analysis.build`` per stage with peak RSS (sampled every 20 ms, file-backed pages of the
memory-mapped embeddings included). ``--compare`` runs estimators one per subprocess (clean RSS peaks) and prints
them side by side: ``old`` = the pre-issue-13 coreset fit (rebuilt in bench/methods.py), ``new`` = today's
``CoresetSensitivity`` defaults, ``reference`` = the same objective fit on every row without a pass budget or
early stopping (``--reference-iter`` L-BFGS iterations per fit).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import markdown_table  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def anon_bytes() -> int:
    """Anonymous resident memory (RSS less file-backed pages such as the memory-mapped embeddings' page cache)."""
    with open("/proc/self/statm") as handle:
        fields = handle.read().split()
    return (int(fields[1]) - int(fields[2])) * 4096


class PeakRSS(threading.Thread):
    """Samples RSS every 20 ms; ``mark(stage)`` starts a new stage; ``peaks``/``times``/``cpu`` (process CPU
    seconds, all threads: the honest measure of work when other jobs share the cores) per stage, ``samples`` the
    (time, rss) timeline."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stage, self.peaks, self.started, self.times, self.running, self.samples = "start", {}, {}, {}, True, []
        self.cpu, self.cpu_started, self.anon = {}, {}, {}

    def mark(self, stage: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self.stage in self.started:
            self.times[self.stage] = now - self.started[self.stage]
            self.cpu[self.stage] = cpu - self.cpu_started[self.stage]
        self.stage = stage
        self.started.setdefault(stage, now)
        self.cpu_started.setdefault(stage, cpu)

    def run(self) -> None:
        while self.running:
            rss = rss_bytes()
            self.samples.append((time.perf_counter(), rss))
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)
            self.anon[self.stage] = max(self.anon.get(self.stage, 0), anon_bytes())
            time.sleep(0.02)

    def peak_between(self, start: float, stop: float) -> int:
        return max((r for t, r in self.samples if start <= t <= stop + 0.02), default=0)


def _write(directory: Path, split: str, n: int, d: int, draw, chunk: int = 65536) -> None:
    x = np.lib.format.open_memmap(directory / f"x_{split}.npy", mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, chunk):
        x[start:start + chunk] = draw(start, min(start + chunk, n))
    x.flush()
    del x


def _flip(directory: Path, y: np.ndarray, K: int, rng) -> np.ndarray:
    flipped = rng.random(len(y)) < 0.05
    np.save(directory / "y_clean.npy", y)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, K, flipped.sum())) % K
    return noisy


def generate_isotropic(directory: Path, n_train: int, n_test: int, d: int = 512, K: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(K, d)).astype(np.float32) * 0.2
    pairs = K // 10  # 100 confusable pairs for ImageNet's 1000 classes
    partners = rng.permutation(K)[:2 * pairs].reshape(pairs, 2)
    means[partners[:, 1]] = means[partners[:, 0]] + rng.normal(size=(pairs, d)).astype(np.float32) * 0.05
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, K, n)
        _write(directory, split, n, d, lambda a, b: means[y[a:b]] + rng.standard_normal((b - a, d), dtype=np.float32))
        np.save(directory / f"y_{split}.npy", _flip(directory, y, K, rng) if split == "train" else y)


def anisotropic_model(d: int, K: int, seed: int = 0, separation: float = 2.4):
    """(means (K, d), rotation Q (d, d), spectrum lam (d,)): x | k ~ N(means[k], Q diag(lam) Q^T).
    ``separation`` 2.4 puts the Bayes-optimal accuracy near 0.81 for 1000 classes in 512-d."""
    rng = np.random.default_rng(seed)
    lam = 1.0 / np.arange(1, d + 1)
    lam /= lam.mean()
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    spread = 1.0 / np.sqrt(np.arange(1, d + 1))  # class means vary along another decaying spectrum...
    between = np.linalg.qr(rng.normal(size=(d, d)))[0] * np.sqrt(spread / spread.mean())  # ...in another rotation
    means = rng.normal(size=(K, d)) @ between.T * separation / np.sqrt(d)
    pairs = K // 10
    partners = rng.permutation(K)[:2 * pairs].reshape(pairs, 2)
    means[partners[:, 1]] = means[partners[:, 0]] + rng.normal(size=(pairs, d)) @ between.T * separation * 0.25 / np.sqrt(d)
    return means + 1.0, Q, lam


def bayes_predict(x: np.ndarray, means: np.ndarray, Q: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The Bayes-optimal rule for equal priors and shared covariance: argmax_k x'S^-1 m_k - m_k'S^-1 m_k / 2."""
    white = lambda a: (a @ Q) / np.sqrt(lam)  # noqa: E731
    mu = white(means)
    return np.concatenate([(white(x[s:s + 8192].astype(np.float64)) @ mu.T - 0.5 * (mu ** 2).sum(1)).argmax(1)
                           for s in range(0, len(x), 8192)])


def generate_anisotropic(directory: Path, n_train: int, n_test: int, d: int = 512, K: int = 1000, seed: int = 0):
    means, Q, lam = anisotropic_model(d, K, seed)
    noise = (Q * np.sqrt(lam)).T.astype(np.float32)  # x = mean + g @ noise
    rng = np.random.default_rng(seed + 1)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, K, n)
        _write(directory, split, n, d,
               lambda a, b: means[y[a:b]] + rng.standard_normal((b - a, d), dtype=np.float32) @ noise)
        np.save(directory / f"y_{split}.npy", _flip(directory, y, K, rng) if split == "train" else y)
    x_test = np.load(directory / "x_test.npy", mmap_mode="r")
    bayes = float((bayes_predict(x_test, means, Q, lam) == np.load(directory / "y_test.npy")).mean())
    (directory / "bayes.json").write_text(json.dumps({"bayes_test_accuracy": bayes}))


def dataset(args) -> Path:
    data = args.dir / f"{args.variant}-n{args.n_train}-k{args.classes}"
    if not (data / "y_test.npy").exists():
        started = time.perf_counter()
        make = generate_anisotropic if args.variant == "anisotropic" else generate_isotropic
        make(data, args.n_train, args.n_test, K=args.classes)
        print(f"generated {data} in {time.perf_counter() - started:.0f} s", flush=True)
    return data


def bayes_line(data: Path) -> tuple[float | None, str]:
    path = data / "bayes.json"
    if not path.exists():
        return None, ""
    bayes = json.loads(path.read_text())["bayes_test_accuracy"]
    return bayes, f"Bayes-optimal (true linear rule) test accuracy: {bayes:.4f}"


def build(args, data: Path) -> int:
    """Default mode: the whole Analysis.build, per stage."""
    import shutil

    from sklearn.metrics import average_precision_score

    from coreclean import Analysis

    shutil.rmtree(args.cache, ignore_errors=True)
    monitor = PeakRSS()
    monitor.start()
    stages = []

    def progress(stage: str, done: int, total: int) -> None:
        if not stages or stages[-1] != stage:
            stages.append(stage)
            monitor.mark(stage)

    load_before = f"{os.getloadavg()[0]:.2f}"
    started, cpu_started = time.perf_counter(), time.process_time()
    fit_samples = args.fit_samples if args.fit_samples == "auto" else int(args.fit_samples)
    analysis = Analysis.build(str(data), cache_dir=args.cache, max_fit_samples=fit_samples, progress=progress)
    total = time.perf_counter() - started
    monitor.mark("done")
    monitor.running = False
    flipped = np.load(data / "y_clean.npy") != analysis.y_train
    meta = analysis.meta
    print(f"# ImageNet-scale build ({args.variant}): n={meta['n_train']:,} x {meta['n_features']}, "
          f"{analysis.n_classes} classes\n")
    print(f"load average before / after: {load_before} / {os.getloadavg()[0]:.2f} (2 cores)\n")
    table = [(stage, f"{monitor.times.get(stage, float('nan')):.1f}", f"{monitor.cpu.get(stage, float('nan')):.1f}",
              f"{monitor.peaks.get(stage, 0) / 1e9:.2f}", f"{monitor.anon.get(stage, 0) / 1e9:.2f}")
             for stage in stages]
    table.append(("**total build**", f"**{total:.1f}**", f"**{time.process_time() - cpu_started:.1f}**",
                  f"**{max(monitor.peaks.values()) / 1e9:.2f}**", f"**{max(monitor.anon.values()) / 1e9:.2f}**"))
    print(markdown_table(table, ["stage", "seconds", "CPU seconds", "peak RSS (GB)", "peak anonymous (GB)"]) + "\n")
    steps = meta.get("neighbors", {}).get("timings")
    if steps:
        print("neighbours, per step (s wall / CPU s): " + ", ".join(
            f"{name} {t['seconds']:.1f} / {t['cpu_seconds']:.1f}" for name, t in steps.items()))
    print(f"neighbours: {meta.get('neighbors', {}).get('method')}, recall@10 "
          f"{meta.get('neighbors', {}).get('recall_at_10')} on {meta.get('neighbors', {}).get('recall_queries')} "
          f"queries; map: {meta.get('map')}; rows in duplicate groups "
          f"{int((np.asarray(analysis.stack('duplicate_of_train')) >= 0).sum()):,}")
    print(f"classifier fit on {meta['classifier_fit_samples']:,} rows; test accuracy {analysis.accuracy:.4f}")
    print(bayes_line(data)[1])
    print(f"importance: average precision for the {int(flipped.sum()):,} injected flips "
          f"{average_precision_score(flipped, analysis.importance):.4f} (random: {flipped.mean():.4f})")
    print(json.dumps({"cache": str(analysis.directory)}))
    return 0


def run_method(args, data: Path) -> dict:
    """One estimator on the memory-mapped set (run in its own process): stages, peaks, accuracy, flip AP."""
    from sklearn.metrics import average_precision_score

    from bench.methods import old_coreset_fit
    from coreclean import CoresetSensitivity
    from coreclean.importance.sensitivity import label_statistics

    x_train = np.load(data / "x_train.npy", mmap_mode="r")
    y_train = np.load(data / "y_train.npy")
    K = int(max(y_train.max(), np.load(data / "y_test.npy").max()) + 1)
    monitor = PeakRSS()
    monitor.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    if args.method == "old":
        result = old_coreset_fit(x_train, y_train, K, mark=monitor.mark)
        coef, scores, rows, info = result["coef"], result["importance"], result["fit_rows"], ""
        monitor.mark("predict test")
        spans = None
    else:
        options = {"device": args.device}
        if args.method == "reference":
            options.update(max_fit_samples=None, early_stopping=False, max_iter=args.reference_iter)
        est = CoresetSensitivity(**options).fit(x_train, y_train, n_classes=K)
        coef, scores, rows = est.coef_, est.importance_, len(est.fit_indices_)
        info = f"iterations {est.n_iter_.tolist()}, passes {est.n_passes_.tolist()}"
        spans = est.timings_
        monitor.mark("predict test")
    fit_seconds = time.perf_counter() - started
    x_test, y_test = np.load(data / "x_test.npy", mmap_mode="r"), np.load(data / "y_test.npy")
    accuracy = float((label_statistics(x_test, y_test, coef, device=args.device)["pred"] == y_test).mean())
    monitor.mark("done")
    total = time.perf_counter() - started
    monitor.running = False
    if spans is not None:
        stages = [(name, stop - start, monitor.peak_between(start, stop)) for name, start, stop in spans]
    else:
        stages = [(name, monitor.times[name], monitor.peaks.get(name, 0)) for name in monitor.times
                  if name not in ("start", "predict test", "done")]
    stages.append(("predict test", monitor.times.get("predict test", 0.0), monitor.peaks.get("predict test", 0)))
    flipped = np.load(data / "y_clean.npy") != y_train
    return {"method": args.method, "stages": stages, "fit seconds": fit_seconds, "total seconds": total,
            "cpu seconds": time.process_time() - cpu_started, "load": os.getloadavg()[0],
            "peak RSS": max(monitor.peaks.values()), "accuracy": accuracy, "rows": rows, "info": info,
            "AP": float(average_precision_score(flipped, scores)), "random AP": float(flipped.mean())}


NAMES = {"old": "old coreset fit", "new": "new solver (default)", "reference": "long full-data reference"}


def compare(args, data: Path) -> int:
    bayes, line = bayes_line(data)
    results = []
    for method in args.compare:
        command = [sys.executable, __file__, "--method", method, "--dir", str(args.dir), "--variant", args.variant,
                   "--n-train", str(args.n_train), "--n-test", str(args.n_test), "--classes", str(args.classes),
                   "--device", args.device, "--reference-iter", str(args.reference_iter)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"# Estimators side by side ({args.variant}): n={args.n_train:,} x 512, {args.classes} classes, "
          f"{results[0]['random AP']:.1%} flips\n")
    if line:
        print(line + "\n")
    for r in results:
        stages = [(name, f"{seconds:.1f}", f"{peak / 1e9:.2f}") for name, seconds, peak in r["stages"]]
        stages.append(("**total build**", f"**{r['total seconds']:.1f}**", f"**{r['peak RSS'] / 1e9:.2f}**"))
        print(f"## {NAMES[r['method']]}  {r['info']}\n\n"
              + markdown_table(stages, ["stage", "seconds", "peak RSS (GB)"]) + "\n")
    table = [(NAMES[r["method"]], f"{r['rows']:,}", f"{r['total seconds']:.1f}", f"{r['cpu seconds']:.0f}",
              f"{r['load']:.1f}", f"{r['peak RSS'] / 1e9:.2f}", f"{r['accuracy']:.4f}",
              f"{100 * (r['accuracy'] - bayes):+.1f}" if bayes is not None else "n/a", f"{r['AP']:.4f}")
             for r in results]
    print(markdown_table(table, ["estimator", "rows fit on", "fit + test (s)", "CPU s", "load after", "peak RSS (GB)",
                                 "test accuracy", "vs Bayes (pp)", "flip AP"]))
    print(f"\nimportance: average precision for the injected flips, random: {results[0]['random AP']:.4f}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/coreclean-imagenet"))
    parser.add_argument("--variant", choices=["isotropic", "anisotropic"], default="isotropic")
    parser.add_argument("--n-train", type=int, default=1_281_167)
    parser.add_argument("--n-test", type=int, default=50_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--fit-samples", default="auto",
                        help="build mode: rows the classifier is fit on (default: every row within the budget; "
                             "an integer fits a coreset of that size)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/coreclean-imagenet-cache"))
    parser.add_argument("--compare", nargs="+", choices=list(NAMES), help="estimators side by side instead")
    parser.add_argument("--device", default="cpu", help="new/reference estimators: cpu, cuda or auto")
    parser.add_argument("--reference-iter", type=int, default=30, help="L-BFGS iterations per reference fit")
    parser.add_argument("--method", choices=list(NAMES), help=argparse.SUPPRESS)  # one compare run (subprocess)
    args = parser.parse_args(argv)
    data = dataset(args)
    if args.method:
        print(json.dumps(run_method(args, data)))
        return 0
    return compare(args, data) if args.compare else build(args, data)


if __name__ == "__main__":
    raise SystemExit(main())
