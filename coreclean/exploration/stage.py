"""The exploration stage of the build: neighbours, duplicates, train/test leakage, outliers and the 2-D map.

One neighbour structure (k = 10 cosine neighbours of every training sample, and of every test sample among the
training set) is computed once and stored; duplicate groups are recomputed from it for any threshold without a new
search (:func:`duplicate_groups`). Neighbours are searched on centred features (cosine after subtracting the column
mean: an offset must not make every pair alike). In-memory images (digits, Fashion-MNIST) are compared as image
fingerprints with a small shift search, which tells copies from look-alikes far better than their PCA features;
file and embedding sources score the centred neighbours by their squared distance on the axes holding 99% of the
variance against the space's typical nearest-neighbour squared distance
(:func:`coreclean.exploration.copy_distance.copy_similarities`, the rule ``rank --features`` uses too), so one
threshold means the same in pixel, PCA and CNN feature spaces; analyses built before stored the per-row
``relative_similarity`` and keep reading it (``meta["duplicates"]["measure"]`` says which). Exact copies are found
by content hash (file bytes or pixel rows) and merged in. The outlier score has a third view, from the images
themselves, when they are in memory (:mod:`coreclean.exploration.orientation`: images not recognized as upright;
see :mod:`coreclean.exploration.outliers`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .copy_distance import SIGNAL_VARIANCE, copy_similarities
from .duplicates import (candidate_vectors, exact_duplicate_groups, hash_files, hash_rows, image_fingerprints, leakage,
                         merge_groups, near_duplicate_groups, shift_similarity)
from .neighbors import NeighborIndex
from .orientation import OrientationScorer
from .outliers import outlier_score
from ..data.memmap_pages import release_rows
from .projection import extend_map, project_2d
from .recall import index_recall

K = 10
# similarity at or above which two samples are near-duplicates (bench/explore.py): shift similarity 0.997 on pixel
# fingerprints found 97% of injected shifted/noised/darker copies of Fashion-MNIST with few other rows flagged;
# 0.9 on centred embeddings: "ten times closer than a typical nearest pair of this space" (copy_distance)
DEFAULT_THRESHOLD = {"fingerprint": 0.997, "embedding": 0.9}
# stored in meta["duplicates"]["measure"]: a cache keeps the text of the rule its dup_sim_* arrays were scored by
# (before this rule: "relative similarity: 1 - cosine distance / the row's distance to its k-th neighbour ...")
MEASURE = {"fingerprint": "shift similarity of blurred pixel fingerprints",
           "embedding": f"space-relative similarity: 1 - squared distance on the principal axes holding "
                        f"{SIGNAL_VARIANCE:.0%} of the variance / the space's typical nearest-neighbour squared "
                        f"distance, centred features"}
MAP_POINTS = 100_000
# on sets larger than the map, UMAP optimizes this many of its points and places the rest by their neighbours
# (1.28M: the 100k-point layout was ~40 CPU s of the build); smaller sets keep a layout of every point
MAP_FIT_POINTS = 25_000
# fewest images the orientation view of the outlier score learns from (digits' 1,437 suffice: test_orientation.py)
ORIENTATION_MIN_IMAGES = 1000
# held-out rotation accuracy (chance 0.25) below which a dataset is taken to have no upright and the view is left out
# (digits 0.93, Fashion-MNIST 0.98; Fashion-MNIST turned at random 0.25, noise 0.24; images with an axis but no up,
# like horizontal stripes, 0.5: lying vs standing is told apart, a 180-degree turn is not)
ORIENTATION_MIN_ACCURACY = 0.65


@dataclass
class Explored:
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def explore_stage(x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray, importance: np.ndarray, *,
                  pixels_train: np.ndarray | None = None, pixels_test: np.ndarray | None = None,
                  files_train: list | None = None, files_test: list | None = None,
                  earlier_map: tuple[np.ndarray, np.ndarray, str] | None = None, progress=None) -> Explored:
    """Neighbours, duplicates, leakage, outliers and the map for one analysis.

    x_train (n, d), x_test (m, d): embeddings (memmaps welcome).  y_train, importance: (n,).
    pixels_*: in-memory images (n, H, W[, C]) when the source has them; files_*: absolute image paths otherwise.
    earlier_map: (rows (p,), xy (p, 2), name) of an incremental rebuild: training rows that were on the map of the
    earlier analysis ``name`` with the same features, and their positions there; they keep them
    (:func:`~coreclean.exploration.projection.extend_map`) unless too few are left.
    Returns the arrays to store (``neighbors_*``, ``neighbor_sim_*``, ``dup_neighbors_*``/``dup_sim_*``,
    ``exact_dup_train``, ``duplicate_of_train``, ``leak_of_test``, ``outlier_train``, ``map_rows``, ``map_xy``)
    and the metadata (method, recall@10, thresholds).
    """
    report = progress or (lambda stage, done, total: None)
    out = Explored()  # each step is a stage of its own: a progress bar each, and timed apart in meta["stages"]
    report("neighbours", 0, 1)
    k = min(K, len(x_train) - 1)
    index = NeighborIndex(k, center=True).fit(x_train)
    method = index.method_
    idx, sim = index.kneighbors()
    no_test = (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
    t_idx, t_sim = index.kneighbors(x_test) if len(x_test) else no_test
    recall = index_recall(index, idx, n_samples=1000)
    timings = {name: {"seconds": wall, "cpu_seconds": cpu} for name, (wall, cpu) in index.timings_.items()}
    mean = index.mean_  # the centring of the stored cosines, which the duplicate rule reads distances from
    del index  # its unit-norm copy of every row (2.6 GB at 1.28M x 512) is not needed by the later steps
    release_rows(x_train)
    out.arrays.update(neighbors_train=idx, neighbor_sim_train=sim, neighbors_test=t_idx, neighbor_sim_test=t_sim)
    out.meta.update(neighbors={"k": k, "method": method, "recall_at_10": round(float(recall), 4),
                               "centred": True, "timings": timings,
                               "recall_queries": int(min(1000, len(x_train)))})
    report("neighbours", 1, 1)
    report("duplicates", 0, 2)
    if pixels_train is not None:
        fp, fp_test = image_fingerprints(pixels_train), image_fingerprints(pixels_test)
        f_index = NeighborIndex(k).fit(candidate_vectors(fp))
        d_idx, _ = f_index.kneighbors()
        d_sim = shift_similarity(fp, d_idx)
        dt_idx, _ = f_index.kneighbors(candidate_vectors(fp_test)) if len(fp_test) else (t_idx, None)
        dt_sim = shift_similarity(fp, dt_idx, queries=fp_test) if len(fp_test) else t_sim
        space = "fingerprint"
        hashes, test_hashes = hash_rows(pixels_train), hash_rows(pixels_test) if len(pixels_test) else None
    else:  # test rows are judged on the train rows' axes and scale: a leak reads like a copy inside train
        d_sim, dt_sim, scored = copy_similarities(x_train, idx, sim, mean, queries=x_test if len(x_test) else None,
                                                  query_indices=t_idx, query_cosines=t_sim)
        d_idx, dt_idx, space = idx, t_idx, "embedding"
        dt_sim = t_sim if dt_sim is None else dt_sim
        hashes = hash_files(files_train) if files_train is not None else None
        test_hashes = hash_files(files_test) if files_test is not None and len(files_test) else None
    out.arrays.update(dup_sim_train=d_sim, dup_sim_test=dt_sim)
    if space == "fingerprint":  # embedding duplicates reuse neighbors_* (no second copy of 1.28M x 10 indices)
        out.arrays.update(dup_neighbors_train=d_idx, dup_neighbors_test=dt_idx)
    report("duplicates", 1, 2)
    threshold = DEFAULT_THRESHOLD[space]
    exact = exact_duplicate_groups(hashes) if hashes is not None else np.full(len(y_train), -1, np.int64)
    out.arrays["exact_dup_train"] = exact
    out.arrays["duplicate_of_train"] = merge_groups(exact, near_duplicate_groups(d_idx, d_sim, threshold))
    leak = leakage(dt_idx, dt_sim, threshold) if len(dt_idx) else np.zeros(0, np.int64)
    if test_hashes is not None:  # an exact copy across the split is a leak whatever its neighbours say
        first = {h: i for i, h in reversed(list(enumerate(hashes)))}
        exact_leak = np.array([first.get(h, -1) for h in test_hashes], dtype=np.int64)
        leak = np.where(exact_leak >= 0, exact_leak, leak)
    out.arrays["leak_of_test"] = leak
    out.meta.update(duplicates={"space": space, "threshold": threshold, "measure": MEASURE[space],
                                "exact": "file bytes" if files_train is not None else
                                ("pixels" if pixels_train is not None else None)})
    if space == "embedding":  # the axes kept and the scale: enough to read a stored similarity back as a distance
        out.meta["duplicates"].update(axes=scored["axes"], of=scored["of"], variance=scored["variance"],
                                      typical_sq_distance=scored["scale"])
    report("duplicates", 2, 2)
    report("outliers", 0, 1)
    orientation, learned = None, None
    if pixels_train is not None and len(pixels_train) >= ORIENTATION_MIN_IMAGES:
        scorer = OrientationScorer().fit(pixels_train)
        learned = {"side": scorer.side_, "train_images": int(len(scorer.train_rows_)), "steps": scorer.steps_,
                   "final_loss": round(scorer.final_loss_, 4),
                   "rotation_accuracy": round(scorer.rotation_accuracy_, 4)}
        if scorer.rotation_accuracy_ >= ORIENTATION_MIN_ACCURACY:
            orientation = scorer.score(pixels_train)
    if orientation is not None:
        out.meta["outliers"] = {"views": ["mahalanobis", "knn", "orientation"], "units": "nats",
                                "orientation": learned}
    else:  # embeddings, file sources (a second decode of every image for this view: not done yet), tiny sets, and
        # sets with no upright (satellite or microscope images): there the view would only add noise to the ranking
        out.meta["outliers"] = {"views": ["mahalanobis", "knn"], "units": "nats",
                                **({"orientation_skipped": learned} if learned else {})}
    score = outlier_score(x_train, sim, orientation=orientation)
    release_rows(x_train)
    out.arrays["outlier_train"] = score
    report("outliers", 1, 1)
    report("map", 0, 1)
    flagged = np.flatnonzero((out.arrays["duplicate_of_train"] >= 0) | (score >= np.quantile(score, 0.99))
                             | (importance >= np.quantile(importance, 0.99)))
    fit_points = MAP_FIT_POINTS if len(y_train) > MAP_POINTS else None
    extended = None if earlier_map is None else extend_map(x_train, *earlier_map[:2], max_points=MAP_POINTS,
                                                          must_include=flagged, labels=y_train)
    rows, xy = extended or project_2d(x_train, max_points=MAP_POINTS, must_include=flagged, labels=y_train,
                                      fit_points=fit_points)
    out.arrays.update(map_rows=rows, map_xy=xy)
    out.meta["map"] = {"method": "umap", "points": int(len(rows)), "of": int(len(y_train))}
    if extended:
        kept = int(np.isin(rows, earlier_map[0]).sum())
        out.meta["map"]["kept"] = {"from": earlier_map[2], "points": kept}
        if kept < len(rows):
            out.meta["map"]["rest"] = "placed by 10 nearest kept points"
    elif fit_points:
        out.meta["map"].update(optimized=min(fit_points, len(rows)), rest="placed by 10 nearest optimized points")
    report("map", 1, 1)
    return out


def duplicate_groups(analysis, threshold: float | None = None) -> np.ndarray:
    """duplicate_of (n,) of ``analysis`` at ``threshold`` (default: the build's), regrouped from the stored
    neighbours without a new search; exact copies always count."""
    stored = analysis.stack("duplicate_of_train")
    if stored is None:
        raise ValueError(f"{analysis.directory}: built without the exploration stage; rebuild it.")
    info = analysis.meta.get("duplicates") or {}
    if threshold is None or threshold == info.get("threshold"):
        return np.asarray(stored)
    # the stored dup_sim_* were scored by the build's own rule (meta["duplicates"]["measure"]: space-relative now,
    # the per-row relative similarity in caches built before), so an old cache regroups by its own measure;
    # analyses built before relative similarity stored no dup_* lists for embeddings: plain cosine there
    stored_lists = analysis.stack("dup_sim_train") is not None
    idx = analysis.stack("dup_neighbors_train")
    idx = analysis.stack("neighbors_train") if idx is None else idx
    sim = analysis.stack("dup_sim_train" if stored_lists else "neighbor_sim_train")
    return merge_groups(np.asarray(analysis.stack("exact_dup_train")),
                        near_duplicate_groups(np.asarray(idx), np.asarray(sim), threshold))


def feature_signals(X: np.ndarray, *,
                    threshold: float = DEFAULT_THRESHOLD["embedding"]) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate_of (n,) int64, outlier (n,) float32) of bare features X (n, d): near-duplicates among the centred
    cosine neighbours, scored by their squared distance on the axes holding 99% of the variance against the
    space's typical nearest-neighbour squared distance (``copy_similarities``, as the build: 0.9 = ten times closer
    than a typical nearest pair), outliers as in the build. For ``rank`` on a user's own embeddings."""
    index = NeighborIndex(min(K, len(X) - 1), center=True).fit(X)
    idx, sim = index.kneighbors()
    near, _, _ = copy_similarities(X, idx, sim, index.mean_)   # the build's rule (explore_stage), one owner
    return near_duplicate_groups(idx, near, threshold), outlier_score(X, sim)
