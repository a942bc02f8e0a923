"""The issue's held-out check (issue 25 item 6): bare features through ``rank --features``'s signals.

    python bench/explore_heldout.py                      # Fashion-MNIST 20k, strays at 1% and 5%, one run
    python bench/explore_heldout.py --strays 600         # one setting (strays per 60k rows, as bench/explore.py)
    python bench/explore.py --heldout-only               # the same, from the exploration bench

Spaces: standardized pixels (784-d), PCA-128, PCA-128 + 5 (a constant offset) and CNN-like features (ReLU of class
centre + rank-16 variation + noise, 512-d; 50 exact and 50 noised copies, 100 strays, the same in every setting).
Fashion-MNIST rows get injected copies (exact / 1-pixel shift / noise sigma 8 / x0.8 brightness) and strays
(inverted / rotated / uniform noise) as in bench/explore.py.

Duplicates: recall of exact + noised copies, and precision two ways. *Strict*: flagged rows that are injected
copies or their sources, over all flagged rows. *Verified*: also counts a flagged ordinary row when its group holds
an image at most as far from it (mean absolute pixel difference, grey levels) as the farthest injected noised copy
from its source: Fashion-MNIST holds such natural near-identical pairs (the same product photographed twice), and
they are real duplicates. The bound comes from the injected copies of the same run, not chosen by hand; rows the
pixels do not confirm count against precision.

Outliers: coreclean's score beside kNN distance (k = 30, Euclidean) and IsolationForest on the same features.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table
from bench.explore import cnn_like, idx_array, inject, isolation_forest, knn30_distance
from coreclean.exploration.duplicates import near_duplicate_groups, relative_similarity
from coreclean.exploration.neighbors import nearest_neighbors


def verified_rows(groups: np.ndarray, images: np.ndarray, rows: np.ndarray, bound: float) -> int:
    """How many of ``rows`` (flagged, not injected) have a group mate within ``bound`` grey levels (mean absolute
    pixel difference) of their own image; images (n, ...) uint8."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    found = 0
    for row in rows:
        mates = np.flatnonzero(groups == groups[row])
        mates = mates[mates != row]
        found += bool(len(mates)) and np.abs(flat[mates] - flat[row]).mean(axis=1).min() <= bound
    return int(found)


def duplicate_row(name, rule, groups, truth, images):
    n = len(groups)
    hit = (groups[truth["copies"]] >= 0) & (groups[truth["copies"]] == groups[truth["sources"]])
    seen = np.isin(truth["copy_kind"], (0, 2))
    injected = np.zeros(n, bool)
    injected[truth["copies"]] = injected[truth["sources"]] = True
    flagged = groups >= 0
    per_kind = " / ".join(f"{hit[truth['copy_kind'] == k].mean():.2f}" if (truth["copy_kind"] == k).any() else "-"
                          for k in range(4))
    strict = (flagged & injected).sum()
    other = np.flatnonzero(flagged & ~injected)
    if images is None or len(other) > 2000:  # no pixels, or one giant group (uncentred cosine on + 5): not checked
        verified, bound = 0, "-"
    else:
        noised = truth["copy_kind"] == 2
        gaps = np.abs(images[truth["copies"][noised]].astype(np.float32)
                      - images[truth["sources"][noised]].astype(np.float32)).reshape(noised.sum(), -1).mean(axis=1)
        verified, bound = verified_rows(groups, images, other, float(gaps.max())), f"{gaps.max():.2f}"
    total = max(int(flagged.sum()), 1)
    return (name, rule, f"{hit[seen].mean():.3f}", per_kind, int(flagged.sum()), f"{strict / total:.3f}",
            f"{len(other)} / {verified} (<= {bound})", f"{(strict + verified) / total:.3f}")


def outlier_rows(name, X, score, seconds, strays):
    from sklearn.metrics import average_precision_score

    n = len(X)
    is_stray = np.zeros(n, bool)
    is_stray[strays] = True
    rows = []
    for method, fn in (("coreclean (feature_signals)", lambda: score), ("kNN distance (k=30)", lambda: knn30_distance(X)),
                       ("IsolationForest (sklearn default)", lambda: isolation_forest(X))):
        began = time.perf_counter()
        values = fn()
        took = seconds if method.startswith("coreclean") else time.perf_counter() - began
        top = np.argsort(-values)[:max(1, n // 100)]
        rows.append([name, method, f"{took:.1f}", average_precision_score(is_stray, values),
                     f"{is_stray[top].sum() / is_stray.sum():.3f}"])
    best = max(r[3] for r in rows[1:])
    for r in rows:
        r[3] = f"{r[3]:.3f}" + (" (best baseline)" if r[3] == best and r is not rows[0] else "")
    rows[0][3] += " **met**" if float(rows[0][3].split()[0]) >= best else " **not met**"
    return [tuple(r) for r in rows]


def spaces(strays: int, rows: int, fashion_dir: str, with_cnn: bool):
    """Yield (name, X, truth, images or None) for one stray setting."""
    from coreclean.embedding.embed import pixel_features

    root = Path(fashion_dir)
    train = idx_array(root / "train-images-idx3-ubyte.gz")[:rows]
    test = idx_array(root / "t10k-images-idx3-ubyte.gz")[:100]
    n = len(train)
    truth = inject(train, test, np.random.default_rng(0), int(300 * n / 60000) // 4 * 4,
                   int(strays * n / 60000) // 3 * 3, 5)
    pca, _ = pixel_features(train, test, pca=128)
    yield "pixels (standardized, 784-d)", pixel_features(train, test, pca=None)[0], truth, train
    yield "PCA-128", pca, truth, train
    yield "PCA-128 + 5 (constant offset)", pca + 5, truth, train
    if with_cnn:
        rng = np.random.default_rng(1)
        cnn = cnn_like(n, rng)
        pick = rng.choice(n, 3 * (n // 200), replace=False).reshape(3, -1)
        half = pick.shape[1] // 2
        cnn[pick[0, :half]] = cnn[pick[1, :half]]                                                  # exact copies
        cnn[pick[0, half:]] = np.maximum(cnn[pick[1, half:]] + 0.05 * rng.normal(size=(len(pick[0]) - half, 512)), 0)
        cnn[pick[2]] = np.maximum(rng.normal(size=(pick.shape[1], 512)) * 4, 0)                   # strays
        kinds = np.where(np.arange(pick.shape[1]) < half, 0, 2)
        yield "CNN-like (ReLU, 512-d)", cnn, dict(copies=pick[0], sources=pick[1], copy_kind=kinds, strays=pick[2],
                                                  stray_kind=np.zeros(pick.shape[1], int)), None


def heldout(strays_settings=(600, 3000), rows: int = 20000,
            fashion_dir: str = "/usr/share/datasets/fashion-mnist") -> None:
    from coreclean.exploration.stage import feature_signals

    dup_columns = ["strays", "space", "rule", "recall exact+noise copies", "recall exact / shift / noise / brightness",
                   "rows flagged", "precision strict", "other rows / pixel-verified", "precision verified"]
    out_columns = ["strays", "space", "method", "seconds", "average precision", "recall in top 1%"]
    dup_rows, out_rows = [], []
    print(f"\n## Held-out check: Fashion-MNIST {rows} rows, strays per 60k {list(strays_settings)}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    for number, strays in enumerate(strays_settings):
        for name, X, truth, images in spaces(strays, rows, fashion_dir, with_cnn=number == 0):
            label = f"{len(truth['strays'])} ({len(truth['strays']) / len(X):.1%})"
            started = time.perf_counter()
            dup, score = feature_signals(X)
            seconds = time.perf_counter() - started
            if number == 0:  # the copies are the same in every setting: duplicates once
                idx, sim = nearest_neighbors(X, k=10)                   # the old rule: uncentred cosine >= 0.98
                c_idx, c_sim = nearest_neighbors(X, k=10, center=True)   # the rule before: relative similarity
                dup_rows.append(duplicate_row(name, "relative >= 0.9, centred (before)",
                                              near_duplicate_groups(c_idx, relative_similarity(c_sim), 0.9), truth,
                                              images))
                dup_rows.append(duplicate_row(name, "projected d2 <= 0.1 x typical NN d2, centred (ours)", dup, truth,
                                              images))
                dup_rows.append(duplicate_row(name, "cosine >= 0.98, uncentred (before)",
                                              near_duplicate_groups(idx, sim, 0.98), truth, images))
            out_rows += [(label, *r) for r in outlier_rows(name, X, score, seconds, truth["strays"])]
            print(f"{label} {name}: done ({time.perf_counter() - started:.0f} s, load average "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    print("\n### Held-out duplicates (feature_signals, as `rank --features`)\n")
    print(markdown_table([(f"{strays_settings[0]}/60k", *r) for r in dup_rows], dup_columns))
    print("\n### Held-out outliers\n")
    print(markdown_table(out_rows, out_columns))
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strays", type=int, nargs="+", default=[600, 3000],
                        help="stray images per 60k rows, one setting each (default 600 = 1%%, 3000 = 5%%)")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args(argv)
    heldout(tuple(args.strays), args.rows, args.fashion_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
