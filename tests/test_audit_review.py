"""The dataset audit's suggestion where reviewers and exports meet it: the Review tiles (button and key record it),
the issues, rank and corrections CSVs, Label Studio's pre-selection, and the Overview's audit run in the background
runner."""
import csv
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from coreclean import Analysis
from coreclean.audit.audit import audit_of
from coreclean.cli.main import main
from coreclean.review.exchange import label_studio
from coreclean.review.export import SUGGESTION_COLUMNS, corrections_csv
from coreclean.review.log import ReviewLog


@pytest.fixture(scope="module")
def audited(tmp_path_factory, digits_build, copy_analysis):
    """A copy of the digits analysis with its audit stored (the dashboard's settings): its directory. Read-only."""
    directory = copy_analysis(digits_build, tmp_path_factory.mktemp("audited"))
    audit_of(Analysis.load(directory))
    return directory


def with_audit(audited, cache, copy_analysis, digits_build) -> Analysis:
    """This test's copy of the digits analysis in ``cache``, with the module's stored audit."""
    target = copy_analysis(digits_build, cache)
    shutil.copytree(audited / "audit", target / "audit")
    return Analysis.load(target)


def read_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_review_tiles_offer_the_audit_suggestion_and_the_button_records_it(audited, run_app, cache, copy_analysis,
                                                                          digits_build):
    from ui.widgets import plain

    analysis = with_audit(audited, cache, copy_analysis, digits_build)
    audit = audit_of(analysis, cached_only=True)
    names = analysis.classes
    # a class whose first page (2 x 3 tiles, most important first) holds a tile where the audit's suggestion and
    # the classifier's prediction / runner-up differ, so the test tells them apart
    pages = {c: [int(i) for i in analysis.ranked(c)[:6]] for c in range(analysis.n_classes)}
    label, sample = next((c, i) for c, shown in pages.items() for i in shown
                         if audit.suggested[i] != analysis.suggested_label(i))
    at = run_app({"cls": names[label]}, "pages/review.py")
    for i in pages[label]:
        expected = f"Mislabeled → {plain(names[audit.suggested[i]])} ({float(audit.confidence[i]):.0%})"
        assert at.button(key=f"flip_{i}").label == expected
    at.button(key=f"flip_{sample}").click().run()  # the button and its key (1-9) share one callback
    assert not at.exception
    decided = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes).current()
    assert decided[sample].decision == "mislabeled" and decided[sample].new_label == audit.suggested[sample]
    assert at.button(key=f"flip_{sample}").label == "Undo mislabeled"


def test_exports_carry_the_stored_audit_suggestion(audited, cache, copy_analysis, digits_build, tmp_path):
    analysis = with_audit(audited, cache, copy_analysis, digits_build)
    audit = audit_of(analysis, cached_only=True)
    names, n = analysis.classes, len(analysis.y_train)
    issues, ranked = tmp_path / "issues.csv", tmp_path / "rank.csv"
    assert main(["export", str(analysis.directory), "--out", str(issues)]) == 0
    assert main(["rank", str(analysis.directory), "--out", str(ranked)]) == 0
    for rows in (read_rows(issues), sorted(read_rows(ranked), key=lambda r: int(r["index"]))):
        assert list(rows[0])[-4:] == list(SUGGESTION_COLUMNS) and len(rows) == n
        assert [int(r["suggested_label"]) for r in rows] == audit.suggested.tolist()
        assert [r["suggested_name"] for r in rows] == [names[s] for s in audit.suggested]
        assert np.allclose([float(r["suggestion_confidence"]) for r in rows], audit.confidence, rtol=1e-5, atol=1e-7)
        assert np.allclose([float(r["p_label_wrong"]) for r in rows], audit.p_wrong, rtol=1e-5, atol=1e-7)

    log = ReviewLog(analysis.directory, n, analysis.n_classes)
    log.record(7, int(analysis.y_train[7]), "mislabeled", new_label=int(audit.suggested[7]))
    log.record(9, int(analysis.y_train[9]), "remove")
    rows = read_rows_text(corrections_csv(log.current(), names, suggestions=audit))
    assert [int(r["index"]) for r in rows] == [7, 9]
    for r in rows:
        i = int(r["index"])
        assert (int(r["suggested_label"]), r["suggested_name"]) == (audit.suggested[i], names[audit.suggested[i]])
        assert np.isclose(float(r["suggestion_confidence"]), audit.confidence[i], rtol=1e-5, atol=1e-7)
    assert all(r[c] == "" for r in read_rows_text(corrections_csv(log.current(), names)) for c in SUGGESTION_COLUMNS)


def read_rows_text(text: str) -> list[dict]:
    return list(csv.DictReader(text.splitlines()))


def test_label_studio_preselects_the_audit_s_more_probable_class(audited, cache, copy_analysis, digits_build,
                                                                 tmp_path):
    analysis = with_audit(audited, cache, copy_analysis, digits_build)
    audit = audit_of(analysis, cached_only=True)
    names = analysis.classes
    out = tmp_path / "tasks.json"
    assert main(["export", str(analysis.directory), "--format", "label-studio", "--limit", "3",
                 "--out", str(out)]) == 0
    for task in json.loads(out.read_text()):
        i = task["data"]["coreclean_index"]
        assert task["data"]["suggested"] == names[audit.suggested[i]]
        assert task["data"]["p_label_wrong"] == round(float(audit.p_wrong[i]), 6)
    # both branches on the real audit's arrays, two of its samples made doubtful: the suggestion is pre-selected
    # where it is more probable than the given label, the given label where not
    doubtful = SimpleNamespace(suggested=audit.suggested, confidence=audit.confidence.copy(),
                               p_wrong=audit.p_wrong.copy())
    doubtful.confidence[[3, 4]], doubtful.p_wrong[[3, 4]] = (0.7, 0.3), (0.8, 0.45)
    tasks = label_studio.tasks_for(analysis, np.array([3, 4]), suggestions=doubtful)
    chosen = [(t["predictions"][0]["result"][0]["value"]["choices"][0], t["predictions"][0]["score"]) for t in tasks]
    assert chosen == [(names[audit.suggested[3]], 0.7), (names[analysis.y_train[4]], 0.55)]
    plain = label_studio.tasks_for(analysis, np.array([3]))  # no audit: the classifier's prediction, as before
    assert plain[0]["predictions"][0]["result"][0]["value"]["choices"] == [names[analysis.pred_train[3]]]
    assert "suggested" not in plain[0]["data"]


def test_the_overview_runs_the_audit_in_the_background_runner_then_leads_with_health(run_app, cache):
    from ui import jobs

    at = run_app(page="pages/overview.py")
    directory = next(cache.iterdir())
    assert not (directory / "audit").exists()
    at.button(key="run_audit").click().run()  # a callback starts the job; the page follows it, then reruns
    assert not at.exception, [e.value for e in at.exception]
    key = ("audit", str(directory))
    runner = jobs.runner()
    assert runner.futures[key].done() and runner.progress[key][0] == "noise estimate"  # ran as the runner's job
    assert (directory / "audit" / "summary.json").is_file()
    assert [m.label for m in at.metric][:2] == ["Health", "Estimated wrong labels"]
    assert "Download report" in [d.proto.label for d in at.get("download_button")]
