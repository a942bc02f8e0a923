"""Per-worker throughput of each stage of a ``--cluster`` build on a LocalCluster, and the cost model inputs.

    python bench/scale_out.py --workers 2 --images 128 --rows 200000 --dim 512 --classes 100
    python bench/scale_out.py --cluster tcp://HOST:8786 ...     # a running scheduler's workers instead

Measures on this machine (numbers in docs/scale-out.md):
(a) embedding: ResNet18 (random init, the same compute as ImageNet weights) over ``--images`` 500x375 JPEGs,
    shards on the workers (``coreclean.embedding.dask_embed``), images/s per worker;
(b) the row passes over a shared (rows, dim) float32 file with ``classes`` labels: one moments pass (Gram and
    class sums), one loss-and-gradient pass, one label-statistics pass, each as Dask tasks per chunk, rows/s per
    worker, and the same passes in this process for reference;
(c) the fixed cost of a pass (scatter the parameters, schedule, gather the sums) from a pass over 2 tiny chunks;
(d) the bytes a pass moves: parameters out, sums back.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table  # noqa: E402
from bench.embed_throughput import write_jpegs  # noqa: E402
from coreclean.classifier import dask_passes  # noqa: E402
from coreclean.build.cluster import open_cluster, parse_cluster  # noqa: E402
from coreclean.embedding.dask_embed import embed_split_on  # noqa: E402
from coreclean.data import load_source  # noqa: E402
from coreclean.classifier.model import label_statistics  # noqa: E402
from coreclean.classifier.row_passes import StandardizedRows, loss_and_gradient, moments, row_passes_on  # noqa: E402


def timed(function, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (s)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def passes(X, y, K, executor=None) -> dict[str, float]:
    """Seconds of one moments, loss-and-gradient and label-statistics pass over X (n, d)."""
    d = X.shape[1]
    with row_passes_on(executor):
        m = moments(X, y, K, reference=None, gram=True)
        W, b = torch.zeros(d, K) + 0.01, torch.zeros(K)
        stream, w = StandardizedRows(X, None, m.mean, m.scale, torch.device("cpu"), y=y), np.ones(len(X))
        coef = np.vstack([np.full((d, K), 0.01, np.float32), np.zeros((1, K), np.float32)])
        return {"moments (Gram + class sums)": timed(lambda: moments(X, y, K, reference=m, gram=True), 2),
                "loss and gradient": timed(lambda: loss_and_gradient(stream, w, W, b), 2),
                "label statistics": timed(lambda: label_statistics(X, y, coef), 2)}


GPU_IMAGES_PER_S = 1000.0  # ASSUMPTION, not measured here (no GPU): one GPU worker with ~8 decode cores
PASSES = {"d2": 3, "loss": 3, "stats": 2}  # full passes of a budget-capped build: 2 moments + leverage (d^2 work
# per row), 3 loss-and-gradient (the FIT_BUDGET minimum at >= 4M rows, d = 512, K = 1000), 2 label statistics


def project(rates: dict, overhead: float, d: int = 512, K: int = 1000) -> None:
    """Projected wall time (hours) for 10M / 100M images at 10 / 100 / 1000 workers, from per-worker rates
    (rows/s; loss and statistics rates rescaled to K = 1000) and the fixed cost of a pass."""
    print(f"\n(e) projection, d = {d}, K = {K} (hours; fit = {sum(PASSES.values())} full passes):\n")
    rows = []
    for n in (10_000_000, 100_000_000):
        for workers in (10, 100, 1000):
            per_worker = n / workers
            fit = sum(count * (per_worker / rates[kind] + overhead) for kind, count in PASSES.items())
            rows.append((f"{n / 1e6:.0f}M", workers, f"{per_worker / rates['embed'] / 3600:.2f}",
                         f"{per_worker / GPU_IMAGES_PER_S / 3600:.3f}", f"{fit / 3600:.3f}"))
    print(markdown_table(rows, ["images", "workers", "embed CPU", "embed GPU*", "fit + evaluate"]))
    print(f"\n\\* GPU embedding at an ASSUMED {GPU_IMAGES_PER_S:.0f} images/s per GPU worker (not measured here)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--cluster", help="a running scheduler (tcp://HOST:PORT) instead of a LocalCluster of "
                                          "--workers processes")
    args = parser.parse_args(argv)
    n, d, K = args.rows, args.dim, args.classes
    with tempfile.TemporaryDirectory() as tmp, \
            open_cluster(parse_cluster(args.cluster or f"local:{args.workers}")) as client:
        tmp = Path(tmp)
        workers = len(client.scheduler_info()["workers"])
        print(f"{'scheduler ' + args.cluster if args.cluster else 'LocalCluster'}: {workers} worker processes x 1 "
              f"thread; machine: {torch.get_num_threads()} torch threads in this process")
        write_jpegs(tmp / "images", args.images)
        dataset = load_source(str(tmp / "images"))
        split_rows = len(dataset.y_train)
        embed_split_on(client, dataset, "train", tmp / "warm", tmp / "warm.npy")  # loads the backbone per worker
        seconds = timed(lambda: embed_split_on(client, dataset, "train", tmp / f"e{time.time_ns()}",
                                               tmp / "x.npy"))
        rate = split_rows / seconds
        print(f"\n(a) embedding {split_rows} JPEGs (500x375) on {workers} workers: {seconds:.1f} s, "
              f"{rate:.1f} images/s, {rate / workers:.2f} images/s per worker")

        rng = np.random.default_rng(0)
        y = rng.integers(0, K, n)
        X = np.lib.format.open_memmap(tmp / "x_rows.npy", mode="w+", dtype=np.float32, shape=(n, d))
        for start in range(0, n, 65536):
            stop = min(start + 65536, n)
            X[start:stop] = rng.normal(size=(stop - start, d)).astype(np.float32) + y[start:stop, None] * 0.01
        X.flush()
        X = dask_passes.share(X, tmp / "x_rows.npy")
        executor = dask_passes.DaskRowPasses(client, chunk_rows=args.chunk_rows)
        executor.register(X)
        local = passes(X, y, K)
        spread = passes(X, y, K, executor)
        print(f"\n(b) one pass over {n:,} x {d} float32 rows, K = {K} ({-(-n // args.chunk_rows)} chunks of "
              f"{args.chunk_rows:,} rows):\n")
        print(markdown_table([(name, f"{local[name]:.2f}", f"{spread[name]:.2f}", f"{n / spread[name] / workers:,.0f}")
                              for name in local], ["pass", "this process s", "cluster s", "rows/s per worker"]))

        tiny = dask_passes.DaskRowPasses(client, chunk_rows=64)
        small = np.ascontiguousarray(X[:128])
        np.save(tmp / "tiny.npy", small)
        tiny_x = tiny.register(np.load(tmp / "tiny.npy", mmap_mode="r"))
        overhead = passes(tiny_x, y[:128], K, tiny)["loss and gradient"]
        print(f"\n(c) fixed cost of one loss-and-gradient pass (2 chunks of 64 rows): {overhead * 1000:.0f} ms")
        peak = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)  # GiB (KiB)
        print(f"\n    peak worker memory (RSS): {max(peak.values()):.2f} GiB")
        project({"embed": rate / workers, "d2": n / spread["moments (Gram + class sums)"] / workers,
                 "loss": n / spread["loss and gradient"] / workers * K / 1000,
                 "stats": n / spread["label statistics"] / workers * K / 1000}, overhead)
        grad = (d + 1) * K * 8
        print(f"\n(d) bytes per loss-and-gradient pass: parameters out {(d + 1) * K * 4:,} B (float32, once per "
              f"worker), sums back {grad:,} B per chunk ((d + 1) x K float64); moments pass: "
              f"{(d * d + K * d + d) * 8:,} B per chunk")


if __name__ == "__main__":
    main()
