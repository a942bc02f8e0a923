"""Dataset audit: noise estimate, health, suggestions, the report's HTML/JSON and every --fail-on rule."""
import json

import numpy as np
import pytest

from coreclean.audit.crossfit import fold_ids, out_of_fold_proba
from coreclean.audit.health import class_balance, health_scores, overlapping_classes
from coreclean.audit.noise import estimate_noise, smoothed_noise_matrix
from coreclean.audit.report_html import SECTIONS
from coreclean.audit.rules import METRICS, parse_rule
from coreclean.audit.suggest import CHOICE_PSEUDO, POSTERIOR_PSEUDO, reliability, suggest_labels
from coreclean.cli.main import main


@pytest.fixture(scope="module")
def blobs():
    """Three separable Gaussian classes, 15% of labels flipped uniformly (the truth is known)."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 1000)  # 1,000 a class: the anchors' reference split needs a few hundred anchors
    X = (rng.normal(size=(3000, 4)) + 6.0 * np.eye(3, 4)[y]).astype(np.float32)
    noisy = y.copy()
    flip = rng.random(3000) < 0.15
    noisy[flip] = (y[flip] + rng.integers(1, 3, flip.sum())) % 3
    return X, y, noisy, out_of_fold_proba(X, noisy, 3, folds=4)


def test_folds_are_stratified_and_cover_every_row():
    y = np.repeat(np.arange(4), [10, 20, 7, 3])
    fold = fold_ids(y, 3)
    assert set(fold) == {0, 1, 2}
    for c in range(4):
        counts = np.bincount(fold[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1


def test_noise_estimate_finds_the_injected_rate(blobs):
    X, y, noisy, proba = blobs
    assert proba.shape == (3000, 3) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    truth = (noisy != y).mean()
    estimate = estimate_noise(proba, noisy, 3, bootstrap=50)
    assert abs(estimate.rate - truth) < 0.03
    low, high = estimate.rate_interval
    assert low <= truth <= high and low <= estimate.rate <= high and high - low < 0.08
    per_class = [(y[noisy == c] != c).mean() for c in range(3)]
    assert np.abs(estimate.class_rates - per_class).max() < 0.06
    assert np.allclose(estimate.noise_matrix.sum(axis=1), 1) and np.isclose(estimate.joint.sum(), 1)
    cl = estimate_noise(proba, noisy, 3, method="confident-joint", bootstrap=0)
    assert abs(cl.rate - truth) < 0.03  # separable classes: both estimators agree with the truth
    with pytest.raises(ValueError, match="method"):
        estimate_noise(proba, noisy, 3, method="guess")


def test_clean_labels_estimate_no_noise(blobs):
    X, y, noisy, _ = blobs
    estimate = estimate_noise(out_of_fold_proba(X, y, 3, folds=3), y, 3, bootstrap=0)
    assert estimate.rate < 0.01


def test_suggestions_name_the_true_class_of_flipped_samples(blobs):
    X, y, noisy, proba = blobs
    estimate = estimate_noise(proba, noisy, 3, bootstrap=0)
    suggested, confidence, p_wrong = suggest_labels(proba, noisy, estimate.noise_matrix)
    assert (suggested != noisy).all() and ((confidence >= 0) & (confidence <= 1)).all()
    flipped = noisy != y
    assert (suggested[flipped] == y[flipped]).mean() > 0.95
    assert p_wrong[flipped].mean() > 0.8 > 0.2 > p_wrong[~flipped].mean()
    flagged = p_wrong > 0.5  # what a reviewer sees: is the suggestion's confidence its hit rate there?
    ece, table = reliability(confidence[flagged], suggested[flagged] == y[flagged])
    assert 0 <= ece < 0.15 and sum(row["count"] for row in table) == flagged.sum()


def test_the_posterior_total_is_matched_to_the_estimated_rate(blobs):
    """One shift of every row's odds of a wrong label: the mean over the reference rows becomes the estimate,
    every row keeps its place and its suggestion, and a suggestion is never surer than "the label is wrong"."""
    from coreclean.audit.suggest import match_rate, suggest_from_estimate

    X, y, noisy, proba = blobs
    estimate = estimate_noise(proba, noisy, 3, bootstrap=0)
    plain = suggest_labels(proba, noisy, smoothed_noise_matrix(estimate, POSTERIOR_PSEUDO),
                           choice_matrix=smoothed_noise_matrix(estimate, CHOICE_PSEUDO))
    reference = np.arange(0, len(noisy), 3)
    suggested, confidence, p_wrong = suggest_from_estimate(proba, noisy, estimate, reference=reference)
    assert np.array_equal(suggested, plain[0])
    assert np.isclose(p_wrong[reference].astype(np.float64).mean(), estimate.rate, atol=1e-4)
    order = np.argsort(plain[2], kind="stable")
    assert np.all(np.diff(p_wrong[order]) >= 0)
    assert np.all(confidence <= p_wrong) and (p_wrong[~(noisy != y)] > 0).all()  # no row rounds to "surely right"
    assert match_rate(np.array([0.1, 0.3]), 0.2) == pytest.approx(0.0, abs=1e-5)  # already agreeing: no shift
    assert match_rate(np.array([0.1, 0.3, np.nan]), 0.2) == pytest.approx(0.0, abs=1e-5)  # NaN rows do not count
    assert match_rate(np.array([0.1, 0.3]), 0.0) == -20 and match_rate(np.array([]), 0.1) == 0.0


def test_health_overlap_and_balance_formulas():
    joint = np.array([[0.40, 0.08, 0.0], [0.07, 0.35, 0.0], [0.0, 0.02, 0.08]])  # Q[given, true]
    pairs = overlapping_classes(joint, 1000)
    assert (pairs[0]["a"], pairs[0]["b"], pairs[0]["samples"]) == (0, 1, 150) and pairs[0]["merge"]
    assert (pairs[1]["a"], pairs[1]["b"]) == (1, 2) and not pairs[1]["merge"]  # one way only: fix labels
    overall, per_class = health_scores(np.array([0.1, 0.0, np.nan]), np.array([90, 10, 0]))
    assert np.isclose(overall, 0.91) and np.isclose(per_class[0], 0.9) and np.isnan(per_class[2])
    balance = class_balance(np.array([500, 400, 20]))
    assert balance["too_few"] == [2] and balance["rare"] == [2] and balance["imbalance"] == 25.0


def test_rules_parse_and_a_bad_rule_lists_them():
    rule = parse_rule("label_issues>5%")
    assert rule.threshold(1000) == 50 and rule.crossed({"label_issues": 51}, 1000)
    assert not rule.crossed({"label_issues": 50}, 1000)
    assert parse_rule("health < 0.8").crossed({"health": 0.79}, 10)
    for bad in ("health", "health<<1", "nothing>1", "leakage>x"):
        with pytest.raises(ValueError, match="label_issues.*leakage.*health"):
            parse_rule(bad)


@pytest.fixture(scope="module")
def reported(tmp_path_factory, digits_build, copy_analysis):
    """The digits analysis (a copy) with its report written once: (analysis dir, html, json text, tmp dir)."""
    tmp = tmp_path_factory.mktemp("report")
    directory = copy_analysis(digits_build, tmp / "cache")
    assert main(["report", str(directory), "--out", str(tmp / "r.html"), "--json", str(tmp / "r.json")]) == 0
    return directory, (tmp / "r.html").read_text(), (tmp / "r.json").read_text(), tmp


def test_report_html_has_every_section_and_embeds_everything(reported):
    _, html, _, _ = reported
    for section in SECTIONS:
        assert f"id='{section}'" in html
    assert "data:image/png;base64," in html and "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html


def test_report_json_holds_the_numbers_and_is_byte_identical(reported, tmp_path):
    directory, _, text, _ = reported
    data = json.loads(text)
    assert data["dataset"]["n_train"] == 1437 and set(data["metrics"]) == set(METRICS)
    assert 0 <= data["audit"]["health"] <= 1 and len(data["audit"]["noise_matrix"]) == 10
    assert {"label", "outlier", "duplicate"} <= set(data["flagged"])
    assert all(0 <= s["suggested"] < 10 and s["suggested"] != s["label"] for s in data["flagged"]["label"])
    again = tmp_path / "again.json"
    assert main(["report", str(directory), "--out", str(tmp_path / "again.html"), "--json", str(again)]) == 0
    assert again.read_bytes() == text.encode("utf-8")


def test_audit_is_cached_in_the_analysis_directory(reported, monkeypatch):
    from coreclean import Analysis
    from coreclean.audit import audit as audit_module

    directory = reported[0]
    assert (directory / "audit" / "summary.json").is_file()
    monkeypatch.setattr(audit_module, "compute_audit", lambda *a, **k: pytest.fail("recomputed"))
    cached = audit_module.audit_of(Analysis.load(directory))
    assert len(cached.suggested) == 1437 and cached.summary["n"] == 1437 and cached.summary["classifier"] == "mlp"


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_every_fail_on_rule_exits_3_when_crossed_and_0_when_not(reported, metric, capsys):
    directory, _, text, tmp = reported
    value = json.loads(text)["metrics"][metric]
    assert value is not None, metric  # digits has every signal
    out = str(tmp / f"{metric}.html")
    assert main(["report", str(directory), "--out", out, "--fail-on", f"{metric}>={value}"]) == 3
    assert f"fail: {metric}>=" in capsys.readouterr().err
    assert main(["report", str(directory), "--out", out, "--fail-on", f"{metric}>{value}"]) == 0


def test_a_bad_rule_is_one_error_line_and_nothing_is_written(reported, capsys):
    directory, _, _, tmp = reported
    out = tmp / "never.html"
    assert main(["report", str(directory), "--out", str(out), "--fail-on", "label_issues>>5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "health" in err[0] and "leakage" in err[0]
    assert not out.exists()


def _with_stored_audit(reported, cache, copy_analysis, digits_build):
    """This test's cache with the digits analysis and the audit the module already computed for it."""
    import shutil

    target = copy_analysis(digits_build, cache)
    shutil.copytree(reported[0] / "audit", target / "audit")
    return target


def test_overview_offers_the_audit_then_leads_with_health_and_the_report(reported, run_app, cache, copy_analysis,
                                                                        digits_build):
    at = run_app(page="pages/overview.py")
    assert any(b.label == "Run the dataset audit" for b in at.button)
    assert "Download report" not in [d.proto.label for d in at.get("download_button")]
    _with_stored_audit(reported, cache, copy_analysis, digits_build)
    at = run_app(page="pages/overview.py")
    assert [m.label for m in at.metric][:2] == ["Health", "Estimated wrong labels"]
    assert "Download report" in [d.proto.label for d in at.get("download_button")]


def test_sample_page_shows_the_suggested_label(reported, run_app, cache, copy_analysis, digits_build):
    _with_stored_audit(reported, cache, copy_analysis, digits_build)
    data = json.loads(reported[2])
    sample = data["flagged"]["label"][0]
    at = run_app({"i": str(sample["index"])}, "pages/sample.py")
    names = data["dataset"]["classes"]
    assert any(f"Suggested label **{names[sample['suggested']]}**" in m.value for m in at.markdown)


def test_reference_split_counts_flips_and_not_look_alikes():
    """Class 0's anchors hold 40 rows labelled 1: 20 flips (p(1 | x) typical of the clean anchors) and 20
    look-alikes (p(1 | x) above every clean anchor's). Only the flips vote, at 1 / quantile each."""
    from coreclean.audit.noise import anchor_counts, anchor_votes

    rng = np.random.default_rng(0)
    n0, n1 = 400, 400
    p1 = np.concatenate([rng.uniform(0.0, 0.1, n0), rng.uniform(0.0, 0.1, 20), rng.uniform(0.3, 0.4, 20),
                         rng.uniform(0.9, 1.0, n1)])
    proba = np.stack([1 - p1, p1], axis=1)
    y = np.concatenate([np.zeros(n0), np.ones(40), np.ones(n1)]).astype(np.int64)
    votes = anchor_votes(proba, y, 2, anchor_share=1.2, quantile=0.5)  # 480 anchors: all 440 rows of class 0
    counts = anchor_counts(votes, 2)
    assert counts[0, 0] == n0
    assert 10 <= counts[0, 1] <= 30  # ~ 2 x (half of the 20 flips); the look-alikes add nothing
    loose = anchor_counts(anchor_votes(proba, y, 2, anchor_share=1.2, quantile=1.0), 2)
    assert 15 <= loose[0, 1] <= 20  # quantile 1: the flips count once each, the look-alikes still not
    weights = np.zeros(len(y))
    assert anchor_counts(votes, 2, weights).sum() == 0  # bootstrap weights reach every vote


def test_pseudo_counts_keep_an_unseen_flip_possible(blobs):
    from coreclean.audit.noise import smoothed_noise_matrix

    _, _, noisy, proba = blobs
    estimate = estimate_noise(proba, noisy, 3, bootstrap=0)
    assert estimate.counts is not None and estimate.counts.shape == (3, 3)
    assert smoothed_noise_matrix(estimate, 0.0) is estimate.noise_matrix
    smooth = smoothed_noise_matrix(estimate, 4.0)
    assert np.allclose(smooth.sum(axis=1), 1) and (smooth > 0).all()
    assert estimate_noise(proba, noisy, 3, method="confident-joint", bootstrap=0).counts is None
    with pytest.raises(ValueError, match="quantile"):
        estimate_noise(proba, noisy, 3, quantile=0.0)


def test_choice_matrix_picks_the_suggestion_and_the_posterior_keeps_the_confidence():
    """M never sends class 2 into label 0 (an estimated 0): under M alone a sample labelled 0 that looks like 2
    gets suggestion 1; the flatter choice matrix suggests 2, and the confidence stays M's posterior of 2 (0)."""
    M = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.0, 0.05, 0.95]])
    flat = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    proba = np.array([[0.1, 0.1, 0.8]])
    y = np.array([0])
    plain, _, _ = suggest_labels(proba, y, M)
    chosen, confidence, p_wrong = suggest_labels(proba, y, M, choice_matrix=flat)
    assert plain[0] == 1 and chosen[0] == 2
    assert confidence[0] < 1e-3 and 0 <= p_wrong[0] <= 1
