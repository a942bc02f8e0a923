"""What the near-copy rule (coreclean/exploration/copy_distance.py) costs on a memory-mapped set: three ways to get
every neighbour pair's squared distance on the axes holding 99% of the variance, each in a fresh process (its own
peak RSS), CPU seconds and peak traced allocations (tracemalloc).

    python bench/copy_distance_cost.py                  # 200k x 512 float32, three spectra
    python bench/copy_distance_cost.py --rows 50000     # smaller

Ways: "held (n, r) projection" (the first version: one float32 projection of every row on the r signal axes);
"gather per block" (nothing held: each block of rows and its neighbours' rows read again from the memmap and their
differences projected; k times the projection work, random reads); "narrower side held" (the product: the signal
or residual projection, whichever has fewer columns, distances from centred norms and the stored cosines).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table  # noqa: E402


def generate(path: Path, n: int, d: int, spectrum: str, block: int = 65536, seed: int = 0) -> None:
    """Rows with a chosen spectrum (a random rotation of independent columns): "flat" (nearly every axis needed
    for 99%), "decay" (variance ~ i^-1.2 over the axes: 429 of 512 for 99%) or "steep" (i^-1.5: 310 of 512)."""
    rng = np.random.default_rng(seed)
    scales = {"flat": np.ones(d), "decay": np.arange(1, d + 1) ** -0.6, "steep": np.arange(1, d + 1) ** -0.75}[spectrum]
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0].astype(np.float32)
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, block):
        rows = min(block, n - s)
        x[s:s + rows] = (rng.standard_normal((rows, d), dtype=np.float32) * scales.astype(np.float32)) @ rotation
    x.flush()


def gather_per_block(X, idx, mean, basis, block_rows=4096):
    out = np.empty(idx.shape, np.float32)
    for s in range(0, len(X), block_rows):
        rows = np.asarray(X[s:s + block_rows], np.float32) - mean
        uniq, pos = np.unique(idx[s:s + block_rows], return_inverse=True)   # each neighbour row read once
        nb = np.asarray(X[uniq], np.float32) - mean
        diff = (nb @ basis)[pos.reshape(-1, idx.shape[1])] - (rows @ basis)[:, None, :]
        out[s:s + block_rows] = np.einsum("bkr,bkr->bk", diff, diff)
    return out


def child(path: str, way: str) -> None:
    from coreclean.exploration.copy_distance import (principal_axes, projected_sq_distances, signal_sq_distances,
                                                     _signal_rank)
    from coreclean.exploration.neighbors import NeighborIndex

    X = np.load(path, mmap_mode="r")
    cached = Path(path).with_suffix(".knn.npz")
    if way == "knn":   # a process of its own, so the index's memory is in no measured process's peak
        if not cached.exists():
            index = NeighborIndex(10, center=True).fit(X)
            idx, sim = index.kneighbors()
            np.savez(cached, idx=idx, sim=sim, mean=index.mean_)
        return
    stored = np.load(cached)
    idx, sim, mean = stored["idx"], stored["sim"], stored["mean"]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    cpu, wall = time.process_time(), time.perf_counter()
    if way == "narrower side held":
        sq, _, info = signal_sq_distances(X, idx, sim, mean)
    else:
        _, axes, energy = principal_axes(X, mean=mean)
        r = _signal_rank(energy, 0.99)
        basis = np.ascontiguousarray(axes[:r].T, dtype=np.float32)
        info = {"axes": r, "of": X.shape[1], "held": r if way.startswith("held") else 0}
        sq = (projected_sq_distances(X, idx, mean, basis) if way.startswith("held")
              else gather_per_block(X, idx, mean.astype(np.float32), basis))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.save(Path(path).with_suffix(f".{way.split()[0]}.npy"), sq)
    print(json.dumps({"cpu": cpu, "wall": wall, "traced_gb": peak / 2**30, **info,
                      "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      "rss_before_gb": rss0 / 2**20}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/coreclean-copy-cost"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.rows} x {args.dim} float32 memmap; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for spectrum in ("flat", "decay", "steep"):
        path = args.dir / f"x_{spectrum}_{args.rows}x{args.dim}.npy"
        if not path.exists():
            generate(path, args.rows, args.dim, spectrum)
        subprocess.run([sys.executable, __file__, "--child", str(path), "knn"], check=True)
        results = {}
        for way in ("held (n, r) projection", "gather per block", "narrower side held"):
            done = subprocess.run([sys.executable, __file__, "--child", str(path), way], check=True,
                                  capture_output=True, text=True)
            results[way] = r = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((spectrum, way, f"{r['axes']} of {r['of']}", r["held"], f"{r['cpu']:.1f}", f"{r['wall']:.1f}",
                         f"{r['traced_gb']:.2f}", f"{r['rss_gb']:.2f} ({r['rss_before_gb']:.2f} before)"))
        ref = np.load(path.with_suffix(".held.npy"))
        for way in ("gather", "narrower"):
            got = np.load(path.with_suffix(f".{way}.npy"))
            print(f"{spectrum}: {way} vs held projection, max |diff| / median "
                  f"{np.abs(got - ref).max() / np.median(ref):.2e}")
    print(markdown_table(rows, ["spectrum", "way", "signal axes", "columns held per row", "CPU s", "wall s",
                                "peak traced GB", "process peak RSS GB"]))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
