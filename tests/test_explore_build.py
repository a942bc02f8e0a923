"""The exploration stage inside the build and the CLI (issue 14): stored neighbours, duplicates, leakage, outliers,
map; duplicate_of and outlier columns in rank's CSV."""
import csv

import numpy as np

from coreclean import Analysis
from coreclean.cli.main import main
from coreclean.exploration.stage import duplicate_groups


def test_build_stores_every_exploration_signal(digits_analysis):
    a = digits_analysis
    n = len(a.y_train)
    assert a.stack("neighbors_train").shape == (n, 10) and a.stack("neighbors_test").shape == (len(a.y_test), 10)
    assert a.meta["neighbors"]["recall_at_10"] >= 0.95
    assert a.stack("outlier_train").shape == (n,) and a.stack("duplicate_of_train").shape == (n,)
    assert a.stack("leak_of_test").shape == (len(a.y_test),)
    rows, xy = a.stack("map_rows"), a.stack("map_xy")
    assert len(rows) == n and xy.shape == (n, 2)  # small sets are mapped whole
    loose = duplicate_groups(a, 0.9)  # regrouped from the stored neighbours, no new search
    assert (loose >= 0).sum() >= (duplicate_groups(a) >= 0).sum()


def test_injected_copies_are_grouped_and_leaks_counted(tmp_path, write_embeddings):
    d = write_embeddings(tmp_path / "emb", n=200, d=16, k=4)
    x, x_test = np.load(d / "x_train.npy"), np.load(d / "x_test.npy")
    x[150] = x[7]  # a copy in train
    x_test[3] = x[20] * 1.0001  # a near copy of a training sample in test
    np.save(d / "x_train.npy", x)
    np.save(d / "x_test.npy", x_test)
    a = Analysis.build(str(d), cache_dir=tmp_path / "cache")
    dup = a.stack("duplicate_of_train")
    assert dup[150] == dup[7] == 7
    assert a.stack("leak_of_test")[3] == 20


def test_the_build_scores_embedding_copies_and_leaks_by_the_rule_rank_uses(tmp_path, write_embeddings):
    """One rule for one fact: the build's embedding duplicates are feature_signals' (one scale per space), so a
    noised copy in a crowded region is grouped, a look-alike in a sparse region (close for its region only) is not,
    and test rows are judged on the train rows' axes and scale."""
    from coreclean.exploration.stage import MEASURE, feature_signals

    rng = np.random.default_rng(3)
    d = write_embeddings(tmp_path / "emb", n=400, d=8, k=4)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    x[380:] = 30 + 20 * rng.normal(size=(20, 8))     # a sparse region: neighbours 20 times farther apart
    x[10] = x[3] + 1e-3 * rng.normal(size=8)          # a noised copy
    x[395] = x[390] + 0.5 * rng.normal(size=8)        # close for its region, not for the space
    x_test = np.load(d / "x_test.npy")
    x_test[0] = x[5] + 1e-3 * rng.normal(size=8)       # a leak
    x_test[1] = x[392] + 0.5 * rng.normal(size=8)      # a sparse-region look-alike: no leak
    np.save(d / "x_train.npy", x)
    np.save(d / "x_test.npy", x_test)
    a = Analysis.build(str(d), cache_dir=tmp_path / "cache")
    dup, leak = a.stack("duplicate_of_train"), a.stack("leak_of_test")
    assert list(np.flatnonzero(dup >= 0)) == [3, 10] and list(dup[[3, 10]]) == [3, 3]
    assert list(dup) == list(feature_signals(x)[0])    # the same groups as rank --features
    assert leak[0] == 5 and leak[1] == -1
    info = a.meta["duplicates"]
    assert info["measure"] == MEASURE["embedding"] and info["threshold"] == 0.9 and info["typical_sq_distance"] > 0
    assert (duplicate_groups(a, 0.5) >= 0).sum() >= 2   # the slider re-reads the stored (n, k) scores


def test_a_cache_built_before_reads_back_by_its_own_stored_measure():
    """Caches built with the per-row relative similarity keep their dup_sim_* arrays and their measure text: a new
    threshold regroups those stored scores, it does not rescore them by the new rule."""
    from types import SimpleNamespace

    from coreclean.exploration.duplicates import merge_groups, near_duplicate_groups, relative_similarity
    from coreclean.exploration.neighbors import nearest_neighbors

    rng = np.random.default_rng(4)
    x = np.vstack([rng.normal(size=(190, 6)), 30 + 20 * rng.normal(size=(10, 6))])
    x[195] = x[191] + 0.5 * rng.normal(size=6)
    idx, sim = nearest_neighbors(x, k=10, center=True)
    old = relative_similarity(sim)
    stored = {"neighbors_train": idx, "neighbor_sim_train": sim, "dup_sim_train": old,
              "exact_dup_train": np.full(200, -1), "duplicate_of_train": near_duplicate_groups(idx, old, 0.9)}
    measure = "relative similarity: 1 - cosine distance / the row's distance to its k-th neighbour"
    a = SimpleNamespace(stack=stored.get, directory="old", meta={"duplicates": {
        "space": "embedding", "threshold": 0.9, "measure": measure}})
    assert list(duplicate_groups(a)) == list(stored["duplicate_of_train"])
    assert duplicate_groups(a)[195] >= 0               # the old rule grouped the sparse look-alike, and still does
    regrouped = duplicate_groups(a, 0.8)
    assert list(regrouped) == list(merge_groups(np.full(200, -1), near_duplicate_groups(idx, old, 0.8)))


def test_rank_csv_has_duplicate_and_outlier_columns(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    centres = 3 * rng.normal(size=(3, 8))
    X = (rng.normal(size=(90, 8)) + centres[y]).astype(np.float32)
    X[60] = X[5]
    X[61] = 40  # far from everything
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    assert main(["rank", "--features", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--out", str(tmp_path / "r.csv")]) == 0
    rows = {int(r["index"]): r for r in csv.DictReader(open(tmp_path / "r.csv"))}
    assert rows[60]["duplicate_of"] == rows[5]["duplicate_of"] == "5" and rows[0]["duplicate_of"] == "-1"
    assert max(rows, key=lambda i: float(rows[i]["outlier"])) == 61


def test_the_maps_graph_kernels_compile_once_per_machine():
    """umap-learn's two parallel graph kernels are re-declared with numba's cache (a fresh process otherwise spends
    ~9 s compiling them for every map); same functions, same options."""
    import umap.umap_ as umap_module

    from coreclean.exploration.projection import _umap_with_cached_kernels

    _umap_with_cached_kernels()
    for name in ("smooth_knn_dist", "compute_membership_strengths"):
        kernel = getattr(umap_module, name)
        assert type(kernel._cache).__name__ == "FunctionCache"
        assert kernel.targetoptions.get("parallel") is True
