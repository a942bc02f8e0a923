"""The exploration stages at ImageNet scale (``bench/explore.py --imagenet``): 1.28M x 512 synthetic class-structured
embeddings, memory-mapped, with injected exact and near copies and strays; each stage timed (wall, CPU, peak RSS),
duplicates scored by the build's rule (centred search, ``copy_similarities`` at 0.9).

    python bench/explore.py --imagenet [--dir D] [--n N]     # generates the set once under --dir, then runs
    python bench/explore_imagenet.py DIR --n N               # only writes the set (what the run calls in a child)
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.explore import Stages  # noqa: E402
from coreclean.exploration.copy_distance import copy_similarities  # noqa: E402
from coreclean.exploration.duplicates import leakage, near_duplicate_groups  # noqa: E402
from coreclean.exploration.neighbors import NeighborIndex  # noqa: E402
from coreclean.exploration.outliers import outlier_score  # noqa: E402
from coreclean.exploration.projection import project_2d  # noqa: E402
from coreclean.exploration.recall import measure_recall  # noqa: E402


def generate(directory: Path, n: int, n_test: int, d: int = 512, classes: int = 1000, rank: int = 16,
             block: int = 65536, seed: int = 0) -> None:
    """Class-structured embeddings with low intrinsic dimension (centre + rank-16 within-class variation + small
    isotropic noise, like CNN features), 0.1% exact and 0.1% near copies and 0.1% strays, written in blocks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)).astype(np.float32)
    basis = (rng.normal(size=(classes, rank, d)) * 0.5).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", n), ("test", n_test)):
        y = rng.integers(0, classes, rows)
        x = np.lib.format.open_memmap(directory / f"x_{split}.npy", mode="w+", dtype=np.float32, shape=(rows, d))
        for start in range(0, rows, block):
            lab = y[start:start + block]
            coef = rng.normal(size=(len(lab), rank)).astype(np.float32)
            x[start:start + block] = (centres[lab] + np.einsum("nr,nrd->nd", coef, basis[lab])
                                      + 0.3 * rng.standard_normal((len(lab), d), dtype=np.float32))
        if split == "train":
            pick = rng.choice(rows, 5 * (rows // 1000), replace=False).reshape(5, -1)
            x[pick[0]] = x[pick[1]]                                                          # exact copies
            x[pick[2]] = x[pick[3]] + 0.05 * rng.standard_normal((pick.shape[1], d), dtype=np.float32)
            x[pick[4]] = rng.normal(size=(pick.shape[1], d)).astype(np.float32) * 4          # strays
            np.save(directory / "pick.npy", pick)
        x.flush()
        del x
        np.save(directory / f"y_{split}.npy", y)


def imagenet(args) -> None:
    data = args.dir / f"n{args.n}"
    if not (data / "y_test.npy").exists():
        started = time.perf_counter()
        # a child process, so the pages it wrote do not count in this process's RSS
        subprocess.run([sys.executable, __file__, str(data), "--n", str(args.n)], check=True)
        print(f"generated {data} in {time.perf_counter() - started:.0f} s")
    x = np.load(data / "x_train.npy", mmap_mode="r")
    x_test = np.load(data / "x_test.npy", mmap_mode="r")
    y = np.load(data / "y_train.npy")
    pick = np.load(data / "pick.npy")
    print(f"synthetic {x.shape} float32 memmap + {x_test.shape[0]} test rows; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    st = Stages()
    index = st.run("index (fit)", NeighborIndex(10, center=True).fit, x)  # centred, as the build searches
    idx, sim = st.run("neighbours train (k=10)", index.kneighbors)
    t_idx, t_sim = st.run("neighbours test among train", index.kneighbors, x_test)
    mean = index.mean_
    del index
    recall, _ = st.run(f"recall@10 on {args.recall_queries} queries", measure_recall, x, idx,
                       n_samples=args.recall_queries)
    # the build's rule for embedding sources (exploration.copy_distance), test rows on the train rows' axes and scale
    near, t_near, _ = st.run("copy similarities (99% axes, space scale)", copy_similarities, x, idx, sim, mean,
                             queries=x_test, query_indices=t_idx, query_cosines=t_sim)
    dup = st.run(f"near groups (threshold {args.threshold})", near_duplicate_groups, idx, near, args.threshold)
    leak = st.run("leakage", leakage, t_idx, t_near, args.threshold)
    score = st.run("outlier score", outlier_score, x, sim)
    flagged = np.flatnonzero((dup >= 0) | (score >= np.quantile(score, 0.995)))
    rows, xy = st.run(f"map of a {args.map_points} sample (UMAP)", project_2d, x, max_points=args.map_points,
                      must_include=flagged, labels=y)
    st.table("1.28M x 512 exploration stages", exclude=(f"map of a {args.map_points} sample (UMAP)",))
    found = lambda a, b: ((dup[a] >= 0) & (dup[a] == dup[b])).mean()
    strays = np.zeros(len(x), bool)
    strays[pick[4]] = True
    top = np.argsort(-score)[:len(pick[4])]
    print(f"\nrecall@10 (approx vs exact): {recall:.4f}; exact copies found {found(pick[0], pick[1]):.3f}, near copies "
          f"{found(pick[2], pick[3]):.3f}, rows in groups {(dup >= 0).sum()} (injected {4 * pick.shape[1]}); "
          f"test leaks {(leak >= 0).sum()}; strays in the top {len(top)} outliers {strays[top].mean():.3f}; map rows "
          f"{len(rows)} (flagged kept: {np.isin(flagged, rows).all()}); process peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--n", type=int, default=1_281_167)
    cli = parser.parse_args()
    generate(cli.directory, cli.n, max(1000, cli.n // 25))
