"""Cleaning in rounds (issue 18): retrain writes a round that opens like any analysis, from the CLI and the
dashboard, rounds of rounds, and switching back loses nothing."""
import pytest

from coreclean import Analysis
from coreclean.cli.main import main
from coreclean.review.log import ReviewLog
from coreclean.build.rounds import find_round, list_rounds, round_id, rounds_table


def _mark_top(analysis, log, label, k=3):
    top = analysis.ranked(label)[:k]
    log.record(int(top[0]), label, "mislabeled", new_label=(label + 1) % 10)
    log.record(int(top[1]), label, "remove")
    for i in top[2:]:
        log.record(int(i), label, "ok")
    return top


def test_cli_round_and_round_of_a_round(digits_analysis, capsys, tmp_path):
    a = digits_analysis
    log = ReviewLog(a.directory, len(a.y_train), a.n_classes)
    first = _mark_top(a, log, 3)
    assert main(["retrain", str(a.directory)]) == 0
    out = capsys.readouterr().out
    assert "round 1:" in out and "test accuracy" in out
    revision = Analysis.load(out.split("revision: ")[1].strip())
    assert revision.y_train[first[0]] == 4 and revision.removed_train[first[1]]
    assert first[1] not in revision.ranked(3)
    second = _mark_top(revision, log, 5)
    assert main(["retrain", str(revision.directory)]) == 0
    again = Analysis.load(capsys.readouterr().out.split("revision: ")[1].strip())
    assert again.meta["lineage"]["round"] == 2 and again.root_analysis == a.directory
    assert again.y_train[first[0]] == 4 and again.y_train[second[0]] == 6  # corrections accumulate
    assert again.x_train.shape == a.x_train.shape  # embeddings are read from the original, not copied
    ids = [r.id for r in list_rounds(a.directory)]
    assert ids == ["", revision.directory.name, f"{revision.directory.name}/{again.directory.name}"]
    assert find_round(a.directory, ids[2]).directory == again.directory
    assert round_id(a.directory, again.directory) == ids[2]
    with pytest.raises(ValueError, match="does not exist"):
        find_round(a.directory, "../../etc")
    table = rounds_table(list_rounds(a.directory))
    assert table["decisions applied"].tolist() == [0, 3, 6]
    assert table["errors per 100 reviews"].tolist()[1:] == [pytest.approx(200 / 3, abs=0.1)] * 2
    ranking = tmp_path / "ranking.csv"
    assert main(["rank", str(again.directory), "--out", str(ranking)]) == 0
    rows = ranking.read_text().splitlines()
    assert len(rows) == 1 + len(a.y_train) - 2  # the two removed samples are not ranked


def test_retrain_without_corrections_says_so(digits_analysis, capsys):
    ReviewLog(digits_analysis.directory, len(digits_analysis.y_train)).record(0, int(digits_analysis.y_train[0]), "ok")
    assert main(["retrain", str(digits_analysis.directory)]) == 2
    assert "no 'mislabeled' or 'remove' decisions" in capsys.readouterr().err


def test_dashboard_continues_on_the_new_round_and_can_switch_back(digits_analysis, run_app):
    # AppTest runs a switched-to page without the entry script, so each step opens the app the way a link does.
    a = digits_analysis
    log = ReviewLog(a.directory, len(a.y_train), a.n_classes)
    top = _mark_top(a, log, 3)
    at = run_app(page="pages/decisions.py")
    next(b for b in at.button if b.label == "Apply & retrain").click().run()
    assert not at.exception
    (round_1,) = [r for r in list_rounds(a.directory) if r.number == 1]
    assert at.session_state["analysis"].directory == round_1.directory  # the sidebar's picker took it on the rerun
    new_round = round_1.id
    label = find_round(a.directory, new_round).label
    decisions = run_app({"round": label}, "pages/decisions.py")
    current = decisions.session_state["analysis"]
    assert current.is_revision and current.directory == find_round(a.directory, new_round).directory
    assert {m.label: m.value for m in decisions.metric}["Relabelled"] == "1"
    assert decisions.dataframe[-1].value["round"].tolist()[0] == "original"  # the rounds table
    review = run_app({"round": label, "cls": "3"}, "pages/review.py")
    shown = [int(w.key.split("_")[1]) for w in review.segmented_control]
    assert shown and not set(top.tolist()) & set(shown)  # decided samples are not asked again
    next(b for b in decisions.button if b.label == "Switch back to the previous round").click().run()
    assert decisions.session_state["analysis"].directory == a.directory  # the original, on the rerun
    assert len(log.current()) == 3  # switching rounds never touches decisions
