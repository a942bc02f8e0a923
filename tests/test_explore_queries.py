"""coreclean.analysis.explore_queries (issue 14): the questions the Map, Sample and Duplicates pages ask, checked against
numpy on the stored exploration arrays of one digits build (read-only; tests that change files use a copy)."""
import shutil

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath

from coreclean import Analysis
from coreclean.analysis import explore_queries as q
from coreclean.exploration.duplicates import group_members
from ui.map_colours import DECISION_KINDS, map_colour


@pytest.fixture(scope="module")
def a(module_digits):
    return module_digits


def test_points_in_polygon_matches_matplotlib_on_a_concave_polygon():
    rng = np.random.default_rng(0)
    points = rng.uniform(-1.2, 1.2, size=(5000, 2))
    angles = np.linspace(0, 2 * np.pi, 23, endpoint=False)
    radii = np.where(np.arange(23) % 2, 0.35, 1.0)  # a star: concave everywhere
    xs, ys = radii * np.cos(angles), radii * np.sin(angles)
    expected = PolygonPath(np.stack([xs, ys], axis=1)).contains_points(points)
    got = q.points_in_polygon(points, xs, ys)
    assert got.sum() > 500 and (got != expected).sum() == 0
    with pytest.raises(ValueError, match="vertices"):
        q.points_in_polygon(points, [0, 1], [0, 1])


def test_box_and_lasso_select_the_map_points_inside_most_important_first(a):
    rows, xy = q.map_points(a)
    assert rows.shape == (len(a.y_train),) and xy.shape == (len(rows), 2)
    x0, x1 = np.quantile(xy[:, 0], [0.2, 0.6])
    y0, y1 = np.quantile(xy[:, 1], [0.3, 0.9])
    inside = rows[(xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)]
    picked = q.samples_in_box(a, x1, x0, y1, y0)  # corners in either order
    assert 0 < len(picked) < len(rows) and sorted(picked) == sorted(inside)
    assert np.all(np.diff(a.class_importance[picked]) <= 0)
    lasso = q.samples_in_polygon(a, [x0, x1, x1, x0], [y0, y0, y1, y1])
    assert sorted(lasso) == sorted(picked)
    assert list(q.select_samples(a, "box", (x0, x1, y0, y1))) == list(picked)
    assert list(q.select_samples(a, "lasso", (x0, y0, x1, y0, x1, y1, x0, y1))) == list(lasso)
    assert np.allclose(q.map_positions(a, picked[:5]), xy[np.searchsorted(rows, picked[:5])])


def test_near_selection_and_neighbours_read_the_stored_lists(a):
    idx, sim = q.neighbors_of(a, 7)
    assert list(idx) == list(a.stack("neighbors_train")[7]) and 7 not in idx
    assert np.all(np.diff(sim) <= 1e-6)
    assert list(q.select_samples(a, "near", (7.0,))) == [7, *idx]
    t_idx, _ = q.neighbors_of(a, 3, "test")
    assert list(t_idx) == list(a.stack("neighbors_test")[3])
    for bad in (lambda: q.neighbors_of(a, len(a.y_train)), lambda: q.neighbors_of(a, 0, "val"),
                lambda: q.select_samples(a, "box", (1, 2)), lambda: q.select_samples(a, "near", (1.5,))):
        with pytest.raises(ValueError):
            bad()


def test_top_classes_are_the_classifier_probabilities_sorted(a):
    classes, p = q.top_classes(a, 11)
    assert len(classes) == 5 and np.all(np.diff(p) <= 0) and classes[0] == a.pred_train[11]
    all_classes, all_p = q.top_classes(a, 11, k=a.n_classes)
    assert sorted(all_classes) == list(range(a.n_classes)) and abs(all_p.sum() - 1) < 1e-4
    test_classes, _ = q.top_classes(a, 2, split="test")
    assert test_classes[0] == a.pred_test[2]


def test_map_colour_by_every_field(a):
    rows, _ = q.map_points(a)
    label = map_colour(a, "label", rows)
    assert list(label.values) == list(a.y_train[rows]) and len(label.categories) == a.n_classes
    assert list(map_colour(a, "prediction", rows).values) == list(a.pred_train[rows])
    assert np.allclose(map_colour(a, "importance", rows).values, a.class_importance[rows])
    outlier = map_colour(a, "outlier", rows).values
    score = a.stack("outlier_train")[rows]
    assert outlier.min() == 0 and outlier.max() == 1 and outlier[np.argmax(score)] == 1
    assert np.all(np.diff(outlier[np.argsort(score, kind="stable")]) > 0)
    dup = map_colour(a, "duplicate", rows).values
    stored = a.stack("duplicate_of_train")[rows]
    assert list(dup == 0) == list(stored < 0) and list(dup == 1) == list(stored == rows)
    decision = map_colour(a, "decision", rows, {int(rows[0]): "remove", int(rows[3]): "ok", 10**9: "ok"}).values
    assert decision[0] == DECISION_KINDS.index("remove") and decision[3] == DECISION_KINDS.index("ok")
    assert (decision != 0).sum() == 2
    with pytest.raises(ValueError, match="colour the map by one of"):
        map_colour(a, "size", rows)


def test_duplicate_groups_threshold_exact_only_and_leaks(a):
    default = q.duplicate_group_list(a)
    assert [list(g) for g in default] == [list(g) for g in group_members(a.stack("duplicate_of_train"))]
    loose = q.duplicate_group_list(a, 0.95)
    assert sum(map(len, loose)) > sum(map(len, default))
    assert [len(g) for g in loose] == sorted((len(g) for g in loose), reverse=True)
    assert all(list(g) == sorted(g) for g in loose)
    assert [list(g) for g in q.duplicate_group_list(a, 0.95, exact_only=True)] == \
        [list(g) for g in group_members(a.stack("exact_dup_train"))]
    leak = a.stack("leak_of_test")
    test, train = q.leak_pairs(a)
    assert list(test) == list(np.flatnonzero(leak >= 0)) and list(train) == list(leak[test])
    assert q.leak_count(a) == len(test)
    assert [q.train_copy_of(a, int(i)) for i in range(5)] == list(leak[:5])


def test_sample_signals(a):
    top = int(a.ranked(4)[0])
    signals = q.sample_signals(a, top)
    assert signals.rank == 1 and signals.class_size == (a.y_train == 4).sum()
    score = a.stack("outlier_train")
    assert signals.outlier_percentile == pytest.approx((score < score[top]).mean())
    members = q.duplicate_group_list(a)  # digits holds at least one near-duplicate pair at the build's threshold
    assert list(q.sample_signals(a, int(members[0][-1])).group) == list(members[0])
    lonely = int(np.flatnonzero(a.stack("duplicate_of_train") < 0)[0])
    assert len(q.sample_signals(a, lonely).group) == 0


def test_an_analysis_without_exploration_says_to_rebuild(a, tmp_path):
    copy = tmp_path / a.directory.name
    shutil.copytree(a.directory, copy)
    for name in ("map_xy", "map_rows", "leak_of_test", "neighbors_train"):
        (copy / f"{name}.npy").unlink()
    old = Analysis.load(copy)
    assert not q.has_exploration(old) and q.leak_count(old) is None
    with pytest.raises(ValueError, match="rebuild"):
        q.map_points(old)
    with pytest.raises(ValueError, match="rebuild"):
        q.neighbors_of(old, 0)
