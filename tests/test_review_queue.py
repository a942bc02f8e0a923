"""Review at speed: queues across classes and confusion pairs, why a sample is flagged, progress and the estimate of
errors left (unit tests), and the Review/Decisions pages' keyboard controls and progress numbers (AppTest)."""
import numpy as np
import pytest

from coreclean.importance import explain
from coreclean.review import queue as review_queue
from coreclean.review import stats as review_stats
from coreclean.importance.sensitivity import CoresetSensitivity
from coreclean.review.log import Decision, ReviewLog


# --- queues ----------------------------------------------------------------------------------------------------
def test_all_classes_interleaves_classes_by_normalized_score_and_skips_removed():
    shown = np.array([1.0, 0.2, 0.9, 1.0, 0.5, 0.95])
    removed = np.array([False, False, False, True, False, False])
    assert review_queue.all_classes(shown, removed).tolist() == [0, 5, 2, 4, 1]
    assert review_queue.all_classes(shown, removed, descending=False).tolist() == [1, 4, 2, 5, 0]
    with pytest.raises(ValueError, match="removed"):
        review_queue.all_classes(shown, removed[:3])


def test_confusion_pair_and_training_pairs():
    y = np.array([0, 0, 0, 1, 1, 2, 0])
    pred = np.array([1, 1, 0, 0, 1, 1, 1])
    score = np.array([0.1, 0.7, 0.9, 0.5, 0.2, 0.3, 0.4])
    assert review_queue.confusion_pair(y, pred, score, 0, 1).tolist() == [1, 6, 0]
    removed = np.zeros(7, bool)
    removed[6] = True
    assert review_queue.confusion_pair(y, pred, score, 0, 1, removed, descending=False).tolist() == [0, 1]
    pairs = review_queue.training_pairs(y, pred, 3)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [(0, 1, 3), (1, 0, 1), (2, 1, 1)]
    assert len(review_queue.training_pairs(y, pred, 3, removed, limit=1)) == 1
    assert review_queue.training_pairs(y, pred, 3, removed)[0].count == 2


def test_by_score_orders_any_selection_and_rejects_foreign_indices():
    score = np.array([0.3, 0.9, 0.1, 0.9])
    assert review_queue.by_score(np.array([2, 3, 0, 1]), score).tolist() == [3, 1, 0, 2]
    with pytest.raises(ValueError, match="training indices"):
        review_queue.by_score(np.array([4]), score)


# --- why flagged -----------------------------------------------------------------------------------------------
def test_bound_terms_reproduce_the_stored_importance(digits_analysis):
    a = digits_analysis
    terms = explain.bound_terms_of(a)
    bound = terms.bound()
    n = len(a.y_train)
    np.testing.assert_allclose(0.5 * bound / bound.sum() + 0.5 / n, a.importance, rtol=1e-5)
    np.testing.assert_allclose(terms.loss, -np.log(np.asarray(a.p_label_train, np.float64)), rtol=1e-4, atol=1e-6)
    assert (terms.leverage_term >= 0).all() and (terms.p_pred >= a.p_label_train - 1e-6).all()
    top = a.ranked(3)[:4]
    found = explain.reasons(top, terms, a.y_train, a.pred_train, a.p_label_train)
    assert [r.index for r in found] == top.tolist()
    for r in found:
        assert 0 <= r.loss_share <= 1 and r.loss_share + r.leverage_share == pytest.approx(1)
        assert r.label == 3 and r.predicted == a.pred_train[r.index]
    assert found[0].summary([str(k) for k in range(10)]).startswith(f"p(label) {found[0].p_label:.2f} · pred ")


def test_bound_terms_leave_removed_rows_out_like_a_revision():
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    X = (rng.normal(size=(90, 4)) + y[:, None]).astype(np.float32)
    removed = np.zeros(90, bool)
    removed[[3, 50, 77]] = True
    est = CoresetSensitivity().fit(X[~removed], y[~removed], n_classes=3)
    terms = explain.bound_terms(X, y, est.coef_, removed)
    kept = terms.bound()[~removed]
    np.testing.assert_allclose(0.5 * kept / kept.sum() + 0.5 / kept.size, est.importance_, rtol=1e-6)
    assert np.isnan(terms.loss[removed]).all()
    reason = explain.reasons([3], terms, y, np.zeros(90, int), np.ones(90))[0]
    assert np.isnan(reason.loss_share) and "loss" not in reason.summary(["a", "b", "c"])
    with pytest.raises(ValueError, match="rows"):
        explain.bound_terms(X[:10], y, est.coef_)


# --- progress --------------------------------------------------------------------------------------------------
def test_errors_left_follows_the_hit_rate_down_the_ranking():
    score = np.linspace(1, 0, 10)  # already in ranking order
    reviewed = np.arange(10) < 5
    error = np.isin(np.arange(10), [0, 2])
    # stretch 1 (top 5): (2 + 0.5) / (5 + 1); stretch 2 (unreviewed) inherits it
    assert review_stats.errors_left(score, reviewed, error, bins=2) == pytest.approx(5 * 2.5 / 6)
    assert np.isnan(review_stats.errors_left(score, np.zeros(10, bool), np.zeros(10, bool)))
    with pytest.raises(ValueError, match="reviewed"):
        review_stats.errors_left(score, np.zeros(10, bool), error)


def test_hit_rates_are_pooled_so_they_never_rise_down_the_ranking():
    score = -np.arange(20.0)
    reviewed = np.isin(np.arange(20), [0, 1, 2, 3, 5, 6, 7, 8])  # 4 of stretch 1 and 4 of stretch 2 (of 5 each)
    error = np.isin(np.arange(20), [5, 6, 7])  # the second stretch has more errors than the first
    rate = review_stats.hit_rate_curve(score, reviewed, error, bins=4)
    pooled = (0 + 0.5 + 3 + 0.5) / (4 + 1 + 4 + 1)
    np.testing.assert_allclose(rate, pooled)
    assert review_stats.errors_left(score, reviewed, error, bins=4) == pytest.approx(12 * pooled)
    falling = review_stats.hit_rate_curve(score, reviewed, np.isin(np.arange(20), [0, 1, 2]), bins=4)
    assert falling[0] == pytest.approx(3.5 / 5) and falling[5] == pytest.approx(0.5 / 5) == falling[19]


def test_progress_per_class_with_overall_curve_for_unreviewed_classes():
    labels = np.repeat([0, 1], 10)
    score = np.tile(np.linspace(1, 0.1, 10), 2)
    decided = np.array([0, 1, 2, 3])
    p = review_stats.progress(labels, score, decided, np.array([True, True, False, False]), 2, bins=2)
    assert p.samples.tolist() == [10, 10] and p.reviewed.tolist() == [4, 0] and p.errors.tolist() == [2, 0]
    assert p.errors_left[0] == pytest.approx(6 * 2.5 / 5)
    overall = review_stats.hit_rate_curve(score, np.isin(np.arange(20), decided), np.isin(np.arange(20), [0, 1]),
                                          bins=2)
    assert p.errors_left[1] == pytest.approx(overall[10:].sum())
    assert p.total() == {"samples": 20, "reviewed": 4, "errors": 2, "errors_left": pytest.approx(p.errors_left.sum())}
    assert p.line(0, ["cat", "dog"]) == "cat: 4 / 10 reviewed · 2 errors found · ≈ 3 errors left"
    table = p.rows(["cat", "dog"], only_reviewed=True)
    assert table["class"] == ["cat", "All"] and table["hit rate"] == [0.5, 0.5]


def test_progress_matches_the_curve_of_each_class_taken_alone():
    rng = np.random.default_rng(1)
    for _ in range(50):
        K, n, bins = int(rng.integers(1, 5)), int(rng.integers(1, 60)), int(rng.integers(1, 12))
        labels, score = rng.integers(0, K, n), rng.random(n).round(1)  # rounded: ties are ranked by index
        decided = rng.choice(n, int(rng.integers(0, n + 1)), replace=False)
        wrong = rng.random(len(decided)) < 0.4
        p = review_stats.progress(labels, score, decided, wrong, K, bins=bins, order=review_stats.ranking(score))
        reviewed, error = np.isin(np.arange(n), decided), np.isin(np.arange(n), decided[wrong])
        for k in range(K):
            members = np.flatnonzero(labels == k)
            if not reviewed.any():
                assert np.isnan(p.errors_left[k]) or not members.size
                continue
            if reviewed[members].any():
                rate = review_stats.hit_rate_curve(score[members], reviewed[members], error[members], bins=bins)
            else:
                rate = review_stats.hit_rate_curve(score, reviewed, error, bins=bins)[members]
            assert p.errors_left[k] == pytest.approx(rate[~reviewed[members]].sum())


def test_progress_of_counts_a_decision_under_the_label_it_was_reviewed_with(digits_analysis):
    a = digits_analysis
    sample = int(a.ranked(3)[0])
    decisions = {sample: Decision(1, sample, 5, 3, "mislabeled", None, 0.0)}  # as if a revision relabelled it
    p = review_stats.progress_of(a, decisions)
    assert p.reviewed[5] == 1 and p.errors[5] == 1 and p.reviewed[3] == 0
    assert p.samples.sum() == len(a.y_train)


def test_cached_stretches_give_the_same_progress(digits_analysis):
    a = digits_analysis
    order = review_stats.ranking(a.class_importance)
    stretch = review_stats.stretches(a.y_train, order, a.n_classes)
    top = [int(i) for i in a.ranked(2)[:4]]
    same = {i: Decision(n, i, int(a.y_train[i]), None, "ok" if n % 2 else "remove", None, 0.0)
            for n, i in enumerate(top)}
    relabelled = {**same, top[0]: Decision(9, top[0], 7, 2, "mislabeled", None, 0.0)}  # reviewed under label 7
    for decisions in (same, relabelled):  # the cache is used, then bypassed: the results never differ
        cached = review_stats.progress_of(a, decisions, order=order, stretch=stretch)
        fresh = review_stats.progress_of(a, decisions)
        for field in ("samples", "reviewed", "errors", "errors_left"):
            np.testing.assert_array_equal(getattr(cached, field), getattr(fresh, field))
    assert review_stats.progress_of(a, relabelled, order=order, stretch=stretch).reviewed[7] == 1
    with pytest.raises(ValueError, match="stretch"):
        review_stats.progress(a.y_train, a.class_importance, [], [], a.n_classes, order=order, stretch=stretch[:5])


# --- the pages -------------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_log(digits_analysis):
    (digits_analysis.directory / "reviews.sqlite").unlink(missing_ok=True)
    return ReviewLog(digits_analysis.directory, len(digits_analysis.y_train))


def tiles(at):
    return [int(w.key.split("_")[1]) for w in at.segmented_control]


def test_tile_key_toggles_mislabeled_and_accept_marks_the_rest_ok(digits_analysis, fresh_log, run_app):
    at = run_app({"cls": "4"}, "pages/review.py")
    first_page = tiles(at)
    assert len(first_page) == 6 and first_page == digits_analysis.ranked(4)[:6].tolist()
    toggles = [b for b in at.button if b.key and b.key.startswith("flip_")]
    assert [b.key for b in toggles] == [f"flip_{i}" for i in first_page]
    at.button(key=f"flip_{first_page[1]}").click().run()
    assert fresh_log.current()[first_page[1]].decision == "mislabeled"
    assert fresh_log.current()[first_page[1]].new_label == digits_analysis.suggested_label(first_page[1])
    control = next(w for w in at.segmented_control if w.key.split("_")[1] == str(first_page[1]))
    assert control.value == "mislabeled"  # redrawn from the log under a new key
    at.button(key=f"flip_{first_page[1]}").click().run()  # the same key again undoes it
    assert first_page[1] not in fresh_log.current()
    at.button(key=f"flip_{first_page[0]}").click().run()
    accept = next(b for b in at.button if b.label.startswith("Accept page"))
    accept.click().run()
    decided = fresh_log.current()
    assert sorted(d.decision for d in decided.values()) == ["mislabeled"] + ["ok"] * 5
    assert set(decided) == set(first_page)
    assert tiles(at) == digits_analysis.ranked(4)[6:12].tolist()


def test_all_classes_and_pair_queues(digits_analysis, fresh_log, run_app):
    at = run_app({"cls": "All classes", "rows": "3", "cols": "4"}, "pages/review.py")
    shown = tiles(at)
    assert shown == review_queue.all_classes(digits_analysis.class_importance, digits_analysis.removed_train)[:12] \
        .tolist()
    assert len({int(digits_analysis.y_train[i]) for i in shown}) > 1
    pair = at.selectbox(key="cls").options[11]  # first pair after "All classes" and the ten classes
    assert " → " in pair
    at.selectbox(key="cls").select(pair).run()
    true, predicted = (int(c) for c in pair.split(" → "))
    assert all(digits_analysis.y_train[i] == true and digits_analysis.pred_train[i] == predicted for i in tiles(at))
    assert any(f"labelled **{true}** and predicted **{predicted}**" in c.value for c in at.caption)


def test_progress_numbers_on_review_and_decisions_pages(digits_analysis, fresh_log, run_app):
    a = digits_analysis
    ranked = a.ranked(3)
    fresh_log.record(int(ranked[0]), 3, "mislabeled", new_label=8)
    fresh_log.record(int(ranked[1]), 3, "remove")
    fresh_log.record(int(ranked[2]), 3, "ok")
    fresh_log.record(int(a.ranked(7)[0]), 7, "ok")
    expected = review_stats.progress_of(a, fresh_log.current())
    assert expected.reviewed[3] == 3 and expected.errors[3] == 2 and expected.total()["reviewed"] == 4
    at = run_app({"cls": "3"}, "pages/review.py")
    line = next(c.value for c in at.caption if c.value.startswith("Progress"))
    assert f"3: 3 / {int((a.y_train == 3).sum())} reviewed · 2 errors found · " \
           f"≈ {expected.errors_left[3]:,.0f} errors left" in line
    assert f"All classes: 4 / {len(a.y_train):,} reviewed · 2 errors found" in line
    decisions = run_app(page="pages/decisions.py")
    table = next(t.value for t in decisions.table)
    rows = {row["class"]: row for _, row in table.iterrows()}
    assert set(rows) == {"3", "7", "All"}
    assert (rows["3"]["reviewed"], rows["3"]["errors found"], rows["7"]["errors found"]) == (3, 2, 0)
    assert rows["All"]["≈ errors left"] == pytest.approx(round(expected.total()["errors_left"], 1))


def test_issue_link_feeds_the_grid_with_flagged_samples(tmp_path, make_image_folder, weights_file, run_app,
                                                        monkeypatch):
    from PIL import Image

    from coreclean.quality import issues

    root = make_image_folder(tmp_path / "pets", per_class=8, size=24)
    for name in ("cat_0.png", "cat_1.png", "cat_2.png"):  # near-black images: the "dark" issue
        Image.new("RGB", (24, 24), (4, 3, 5)).save(root / "cat" / name)
    monkeypatch.setenv("CORECLEAN_WEIGHTS", str(weights_file))
    at = run_app({"path": str(root), "issue": "no-such-issue"}, "pages/review.py")
    assert any("issue='no-such-issue'" in w.value for w in at.warning)
    flagged = issues.flagged_samples(at.session_state["analysis"], "dark")
    assert len(flagged) >= 2
    at = run_app({"path": str(root), "issue": "dark"}, "pages/review.py")
    assert tiles(at) == flagged[:6].tolist()
    assert any(f"of {len(flagged)} samples flagged **dark**, most → least severe" in c.value for c in at.caption)
    next(b for b in at.button if b.label == "Leave the dark queue").click().run()
    assert "issue" not in at.query_params and any("labelled **cat**" in c.value for c in at.caption)
