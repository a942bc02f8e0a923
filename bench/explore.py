"""Exploration benchmark: neighbours, duplicates, leakage, outliers and the 2-D map, timed and scored.

    python bench/explore.py                 # Fashion-MNIST 60k (PCA-128 pixel features) with injected copies/strays
    python bench/explore.py --quick         # toy run of the same code (< 60 s; the smoke test)
    python bench/explore.py --strays 300    # another share of stray images (default 600, 1%)
    python bench/explore.py --compare-maps  # UMAP vs openTSNE on a Fashion-MNIST sample (time and quality)
    python bench/explore.py --imagenet      # 1.28M x 512 synthetic memmap (generated once in blocks under --dir)

Fashion-MNIST: 300 training images are replaced by copies of others (exact, 1-pixel shift, Gaussian noise sigma 8,
brightness x0.8) and 600 (1%) by stray images (inverted, rotated 90/180/270, uniform noise); 50 test images by noised
copies of training images (leakage). Reported: wall and CPU seconds per stage (the machine's 2 cores are shared, so
CPU seconds show the work), recall@10 of the approximate index against exact search on 1000 sampled queries,
duplicate recall / other rows flagged per threshold (regrouped from the stored neighbours), outlier average
precision and recall in the top 1% for ours (with and without the orientation view, and the view alone) vs kNN
distance vs IsolationForest, and the map's 10-NN label accuracy.
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown_table
from coreclean.exploration.copy_distance import copy_similarities
from coreclean.exploration.duplicates import (candidate_vectors, exact_duplicate_groups, hash_rows, image_fingerprints, leakage,
                                  merge_groups, near_duplicate_groups, shift_similarity)
from coreclean.exploration.neighbors import NeighborIndex
from coreclean.exploration.recall import measure_recall
from coreclean.exploration.orientation import OrientationScorer
from coreclean.exploration.outliers import knn_distance, mahalanobis_score, outlier_score
from coreclean.exploration.projection import project_2d
from coreclean.exploration.stage import DEFAULT_THRESHOLD



class Stages:
    """Wall and CPU seconds and peak RSS (sampled every 20 ms, file-backed memmap pages included) per stage."""

    def __init__(self):
        self.rows, self.peak, self.running = [], 0, True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self.running:
            with open("/proc/self/statm") as handle:
                self.peak = max(self.peak, int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
            time.sleep(0.02)

    def run(self, name, fn, *args, **kwargs):
        self.peak = 0
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        self.rows.append((name, time.perf_counter() - wall, time.process_time() - cpu, self.peak / 2**30))
        return out

    def table(self, title, exclude=()):
        kept = [r for r in self.rows if r[0] not in exclude]
        rows = [(name, f"{wall:.1f}", f"{cpu:.1f}", f"{peak:.2f}") for name, wall, cpu, peak in self.rows]
        rows.append((f"**total{' (without ' + ', '.join(exclude) + ')' if exclude else ''}**",
                     f"**{sum(r[1] for r in kept):.1f}**", f"**{sum(r[2] for r in kept):.1f}**",
                     f"**{max(r[3] for r in kept):.2f}**"))
        print(f"\n### {title}\n\n" + markdown_table(rows, ["stage", "wall s", "CPU s", "peak RSS GB"]))


def idx_array(path: Path) -> np.ndarray:
    with gzip.open(path) as handle:
        data = handle.read()
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


def inject(train, test, rng, n_copies=300, n_strays=600, n_leaks=50):
    """Copies (rows, sources, kinds) and strays (rows, kinds) written into ``train``; leaks into ``test``."""
    n = len(train)
    chosen = rng.choice(n, 2 * n_copies + n_strays, replace=False)
    copies, sources, strays = chosen[:n_copies], chosen[n_copies:2 * n_copies], chosen[2 * n_copies:]
    copy_kind = np.arange(n_copies) % 4                 # exact, shift, noise, brightness
    for row, src, kind in zip(copies, sources, copy_kind):
        img = train[src].astype(np.float32)
        if kind == 1:
            img = np.roll(img, 1, axis=1)
        elif kind == 2:
            img = img + rng.normal(0, 8, img.shape)
        elif kind == 3:
            img = img * 0.8
        train[row] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    stray_kind = np.arange(n_strays) % 3               # inverted, rotated, noise
    for row, kind in zip(strays, stray_kind):
        if kind == 0:
            train[row] = 255 - train[row]
        elif kind == 1:
            train[row] = np.rot90(train[row], rng.integers(1, 4))
        else:
            train[row] = rng.integers(0, 256, train[row].shape)
    leak_rows = rng.choice(len(test), n_leaks, replace=False)
    untouched = np.setdiff1d(np.arange(n), chosen)
    leak_src = rng.choice(untouched, n_leaks, replace=False)
    test[leak_rows] = np.clip(train[leak_src] + rng.normal(0, 8, train[leak_src].shape), 0, 255).astype(np.uint8)
    return dict(copies=copies, sources=sources, copy_kind=copy_kind, strays=strays, stray_kind=stray_kind,
                leak_rows=leak_rows, leak_src=leak_src)


def duplicate_quality(dup, truth):
    """(recall of injected copies, per-kind recall, other rows flagged): a copy is found when it shares a group
    with its source; other rows = flagged rows that are neither an injected copy nor its source."""
    hit = (dup[truth["copies"]] >= 0) & (dup[truth["copies"]] == dup[truth["sources"]])
    per_kind = [hit[truth["copy_kind"] == k].mean() for k in range(4)]
    injected = np.zeros(len(dup), bool)
    injected[truth["copies"]] = injected[truth["sources"]] = True
    return hit.mean(), per_kind, int(((dup >= 0) & ~injected).sum())


def outlier_quality(score, truth, n):
    from sklearn.metrics import average_precision_score

    is_stray = np.zeros(n, bool)
    is_stray[truth["strays"]] = True
    top = np.argsort(-score)[:max(1, n // 100)]
    per_kind = []
    for kind in range(3):
        mask = ~is_stray
        mask[truth["strays"][truth["stray_kind"] == kind]] = True
        per_kind.append(average_precision_score(is_stray[mask], score[mask]))
    return average_precision_score(is_stray, score), is_stray[top].sum() / is_stray.sum(), per_kind


def map_quality(xy, labels, n=20000, seed=0):
    """3-fold 10-NN label accuracy on the 2-D map (a sample of n points): how well the map keeps classes apart."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    keep = np.random.default_rng(seed).permutation(len(xy))[:n]
    return cross_val_score(KNeighborsClassifier(10), xy[keep], labels[keep], cv=3).mean()


def fashion(args) -> None:
    from coreclean.embedding.embed import pixel_features

    root = Path(args.fashion_dir)
    train, y = idx_array(root / "train-images-idx3-ubyte.gz"), idx_array(root / "train-labels-idx1-ubyte.gz")
    test = idx_array(root / "t10k-images-idx3-ubyte.gz")
    if args.quick or args.rows:
        train, y, test = train[:args.rows or 3000], y[:args.rows or 3000], test[:500 if args.quick else 10000]
    rng = np.random.default_rng(0)
    scale = len(train) / 60000
    truth = inject(train, test, rng, int(300 * scale) // 4 * 4, int(args.strays * scale) // 3 * 3,
                   max(5, int(50 * scale)))
    print(f"Fashion-MNIST train {train.shape[0]}, test {test.shape[0]}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    prep = Stages()
    x_train, x_test = prep.run("pixel features (PCA-128, not counted)", pixel_features, train, test, pca=128)
    st = Stages()
    index = st.run("index (fit)", NeighborIndex(10).fit, x_train)
    idx, sim = st.run("neighbours train (k=10)", index.kneighbors)
    t_idx, t_sim = st.run("neighbours test among train", index.kneighbors, x_test)
    recall, _ = st.run("recall@10 on 1000 queries (train)", measure_recall, x_train, idx)
    t_recall, _ = st.run("recall@10 on 1000 queries (test)", measure_recall, x_train, t_idx, queries=x_test)
    exact = st.run("exact groups (pixel hashes)", lambda: exact_duplicate_groups(hash_rows(train)))
    fp, fp_test = st.run("duplicates: image fingerprints",
                         lambda: (image_fingerprints(train), image_fingerprints(test)))
    f_index = st.run("duplicates: fingerprint index (fit)", NeighborIndex(10).fit, candidate_vectors(fp))
    f_idx, f_sim = st.run("duplicates: fingerprint neighbours train", f_index.kneighbors)
    t_fidx, t_fsim = st.run("duplicates: fingerprint neighbours test", f_index.kneighbors, candidate_vectors(fp_test))
    f_sim = st.run("duplicates: shift similarity train", shift_similarity, fp, f_idx)
    t_fsim = st.run("duplicates: shift similarity test", shift_similarity, fp, t_fidx, queries=fp_test)
    near = st.run(f"near groups (threshold {args.threshold})", near_duplicate_groups, f_idx, f_sim, args.threshold)
    del f_index
    dup = merge_groups(exact, near)
    leak = st.run("leakage", leakage, t_fidx, t_fsim, args.threshold)
    scorer = st.run("outliers: orientation view (fit rotation predictor)", OrientationScorer().fit, train)
    orientation = st.run("outliers: orientation view (score every image)", scorer.score, train)
    score = st.run("outlier score (ours)", outlier_score, x_train, sim, orientation=orientation)
    flagged = np.flatnonzero((dup >= 0) | (score >= np.quantile(score, 0.99)))
    rows, xy = st.run("map (UMAP, all rows)", project_2d, x_train, must_include=flagged, labels=y)
    st.table("Fashion-MNIST exploration stages (added to the build)")
    print(f"\nindex: {index.method_}, n_lists {index.n_lists_}, n_probe {index.n_probe_}; recall@10 vs exact "
          f"search, 1000 sampled queries: train {recall:.4f}, test {t_recall:.4f}")

    print("\n### Duplicates (regrouped from the stored neighbours per threshold)\n")
    columns = ["candidates and similarity", "threshold", "regroup s", "recall", "exact / shift / noise / brightness",
               "other rows flagged", "test leaks found / injected", "test rows flagged"]
    print(markdown_table([], columns))
    # the build's rule for file and embedding sources (copy_similarities, as rank --features) on the same features
    c_index = NeighborIndex(10, center=True).fit(x_train)
    c_idx, c_cos = c_index.kneighbors()
    ct_idx, ct_cos = c_index.kneighbors(x_test)
    c_sim, ct_sim, _ = copy_similarities(x_train, c_idx, c_cos, c_index.mean_, queries=x_test, query_indices=ct_idx,
                                         query_cosines=ct_cos)
    spaces = [("fingerprints, shift similarity", f_idx, f_sim, t_fidx, t_fsim, (0.99, 0.995, 0.997, 0.998)),
              ("features (PCA-128), cosine", idx, sim, t_idx, t_sim, (0.95, 0.98, 0.99, 0.995)),
              ("features (PCA-128), centred, copy_similarities (the embedding rule)", c_idx, c_sim, ct_idx, ct_sim,
               (0.8, 0.9, 0.95))]
    for space, n_idx, n_sim, q_idx, q_sim, thresholds in spaces:
        for threshold in thresholds:
            started = time.perf_counter()
            groups = merge_groups(exact, near_duplicate_groups(n_idx, n_sim, threshold))
            seconds = time.perf_counter() - started
            rec, per_kind, other = duplicate_quality(groups, truth)
            leaks = leakage(q_idx, q_sim, threshold)
            found = (leaks[truth["leak_rows"]] == truth["leak_src"]).sum()
            print(markdown_table([(space, f"{threshold}", f"{seconds:.2f}", f"{rec:.3f}",
                                   " / ".join(f"{r:.2f}" for r in per_kind), other,
                                   f"{found} / {len(truth['leak_rows'])}", (leaks >= 0).sum())], columns,
                                 header=False), flush=True)
    injected = np.zeros(len(dup), bool)
    injected[truth["copies"]] = injected[truth["sources"]] = True
    other = np.flatnonzero((dup >= 0) & ~injected)
    gap = lambda a, b: np.median(np.abs(train[a].astype(float) - train[b].astype(float)).mean(axis=(1, 2)))
    if len(other):
        print(f"\nat {args.threshold}: other flagged rows differ from their most similar image by a median "
              f"{gap(other, f_idx[other, 0]):.1f} grey levels per pixel (injected noise copies: "
              f"{gap(truth['copies'][truth['copy_kind'] == 2], truth['sources'][truth['copy_kind'] == 2]):.1f})")

    print(f"\n### Outliers: {len(truth['strays'])} injected strays ({len(truth['strays']) / len(train):.1%}: inverted, "
          "rotated, uniform noise)\n")
    view_seconds = sum(r[1] for r in st.rows if r[0].startswith("outliers: orientation view"))
    print(f"orientation view: {len(scorer.train_rows_)} training images, {scorer.steps_} steps, final loss "
          f"{scorer.final_loss_:.3f}; its {view_seconds:.1f} s (wall) are counted in the rows that use it\n")
    columns = ["method", "seconds", "average precision", "recall in top 1%", "AP inverted / rotated / noise"]
    print(markdown_table([], columns))
    from sklearn.ensemble import IsolationForest

    methods = [("coreclean outlier_score", lambda: outlier_score(x_train, sim, orientation=orientation)),
               ("embedding views only (the score before the orientation view)", lambda: outlier_score(x_train, sim)),
               ("orientation view only (rotation predictor)", lambda: orientation),
               ("kNN distance (k=10, cosine)", lambda: knn_distance(sim)),
               ("kNN distance (k=30, Euclidean)", lambda: knn30_distance(x_train)),
               ("IsolationForest (sklearn default)",
                lambda: -IsolationForest(random_state=0).fit(x_train).score_samples(x_train)),
               ("global part only (robust Mahalanobis)", lambda: mahalanobis_score(x_train))]
    for name, fn in methods:
        started = time.perf_counter()
        values = fn()
        seconds = time.perf_counter() - started + (view_seconds if name.startswith(("coreclean", "orientation")) else 0)
        ap, rec, per_kind = outlier_quality(values, truth, len(x_train))
        print(markdown_table([(name, f"{seconds:.1f}", f"{ap:.3f}", f"{rec:.3f}",
                               " / ".join(f"{p:.3f}" for p in per_kind))], columns, header=False), flush=True)
    print(f"\nmap: {len(rows)} points, 10-NN label accuracy on the map {map_quality(xy, y[rows]):.3f}")


def knn30_distance(X):
    """Baseline outlier score: Euclidean distance to the 30th nearest neighbour (exact, faiss)."""
    import faiss

    x = np.ascontiguousarray(X, dtype=np.float32)
    squared, _ = faiss.knn(x, x, 31)            # itself first
    return np.sqrt(np.maximum(squared[:, -1], 0))


def isolation_forest(X):
    from sklearn.ensemble import IsolationForest

    return -IsolationForest(random_state=0).fit(X).score_samples(X)


def cnn_like(n, rng, d=512, classes=100, rank=16):
    """Non-negative (ReLU) class-structured features like a CNN's penultimate layer: centre + rank-16 within-class
    variation + noise, then max(0, .)."""
    y = rng.integers(0, classes, n)
    centres, basis = rng.normal(size=(classes, d)), rng.normal(size=(classes, rank, d)) * 0.5
    x = centres[y] + np.einsum("nr,nrd->nd", rng.normal(size=(n, rank)), basis[y]) + 0.3 * rng.normal(size=(n, d))
    return np.maximum(x, 0).astype(np.float32)


def heldout(args) -> None:
    """The issue's held-out check (bench/explore_heldout.py): bare features through ``rank --features``'s signals in
    pixel, PCA-128 (with and without a +5 offset) and CNN-like spaces; strays at ``--strays`` and, unless that is
    already 5%, also at 5% (3000 per 60k), side by side in one run."""
    from bench.explore_heldout import heldout as run

    run(tuple(dict.fromkeys((args.strays, 3000))), args.heldout_rows, args.fashion_dir)


def compare_maps(args) -> None:
    from coreclean.embedding.embed import pixel_features

    root = Path(args.fashion_dir)
    train, y = idx_array(root / "train-images-idx3-ubyte.gz"), idx_array(root / "train-labels-idx1-ubyte.gz")
    keep = np.sort(np.random.default_rng(0).choice(len(train), args.map_points, replace=False))
    x, _ = pixel_features(train[keep], train[:10], pca=128)
    print(f"\n### 2-D map on {len(x)} Fashion-MNIST points (load average {os.getloadavg()[0]:.1f})\n")
    columns = ["method", "wall s", "CPU s", "10-NN label accuracy"]
    print(markdown_table([], columns))
    for method in ("umap", "tsne"):
        wall, cpu = time.perf_counter(), time.process_time()
        rows, xy = project_2d(x, method=method)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(markdown_table([(method, f"{wall:.1f}", f"{cpu:.1f}", f"{map_quality(xy, y[keep][rows]):.3f}")], columns,
                             header=False), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 Fashion-MNIST rows (smoke test)")
    parser.add_argument("--compare-maps", action="store_true")
    parser.add_argument("--imagenet", action="store_true")
    parser.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/coreclean-explore"))
    parser.add_argument("--n", type=int, default=1_281_167)
    parser.add_argument("--threshold", type=float, default=None,
                        help="near-duplicate similarity (default: 0.997 on pixel fingerprints, 0.9 copy similarity "
                             "on --imagenet's embeddings, the build's defaults)")
    parser.add_argument("--map-points", type=int, default=None, help="map size (default 100000; 10000 compared)")
    parser.add_argument("--recall-queries", type=int, default=1000)
    parser.add_argument("--strays", type=int, default=600, help="stray images injected into Fashion-MNIST's 60k")
    parser.add_argument("--heldout", action="store_true",
                        help="also run the held-out check (bare features through rank --features's signals)")
    parser.add_argument("--heldout-only", action="store_true", help="run only the held-out check")
    parser.add_argument("--heldout-rows", type=int, default=20000)
    parser.add_argument("--rows", type=int, default=None, help="Fashion-MNIST training rows (default all 60000)")
    args = parser.parse_args(argv)
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD["embedding" if args.imagenet else "fingerprint"]
    if args.imagenet:
        from bench.explore_imagenet import imagenet

        args.map_points = args.map_points or 100_000
        imagenet(args)
    elif args.compare_maps:
        args.map_points = args.map_points or 10_000
        compare_maps(args)
    elif args.heldout_only:
        heldout(args)
    else:
        fashion(args)
        if args.heldout:
            heldout(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
