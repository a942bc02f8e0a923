"""AppTest tests of the review workflow in the dashboard: mark, persist, skip reviewed, log, undo, retrain."""
import pytest

from coreclean.review.log import ReviewLog
from coreclean.build.rounds import list_rounds


@pytest.fixture
def log(digits_analysis):
    """This test's own copy of the digits analysis and its (empty) review log."""
    return digits_analysis, ReviewLog(digits_analysis.directory, len(digits_analysis.y_train))


def tile_ids(at):
    return [int(w.key.split("_")[1]) for w in at.segmented_control]


def test_marking_a_tile_writes_immediately_and_survives_restart(log, run_app):
    analysis, review_log = log
    at = run_app({"cls": "5", "reviewer": "ana"}, "pages/review.py")
    first, second = tile_ids(at)[:2]
    at.segmented_control(key=f"decision_{first}").set_value("remove").run()
    at.segmented_control(key=f"decision_{second}").set_value("mislabeled").run()
    current = review_log.current()
    assert current[first].decision == "remove" and current[first].reviewer == "ana"
    assert current[second].decision == "mislabeled" and current[second].new_label != 5
    suggested = current[second].new_label
    options = at.selectbox(key=f"new_{second}").options
    other = next(o for o in options if o != str(suggested))
    at.selectbox(key=f"new_{second}").select(other).run()
    assert review_log.current()[second].new_label == int(other)

    fresh = run_app({"cls": "5", "seen": "true"}, "pages/review.py")  # a new session = reload / restart
    assert fresh.segmented_control(key=f"decision_{first}").value == "remove"
    skipping = run_app({"cls": "5"}, "pages/review.py")
    assert first not in tile_ids(skipping) and second not in tile_ids(skipping)


def test_decisions_page_lists_filters_undoes_and_retrains(log, run_app):
    analysis, review_log = log
    ranked = analysis.ranked(3)
    review_log.record(int(ranked[0]), 3, "mislabeled", new_label=8, reviewer="bo")
    review_log.record(int(ranked[1]), 3, "remove")
    review_log.record(int(ranked[2]), 3, "ok")
    at = run_app(page="pages/decisions.py")
    assert {m.label: m.value for m in at.metric}["Reviewed samples"] == "3"
    assert len(at.dataframe[0].value) == 3
    filtered = run_app({"f_kind": "remove"}, "pages/decisions.py")
    assert filtered.dataframe[0].value["sample"].tolist() == [int(ranked[1])]
    at.selectbox(key="undo_target").select(int(ranked[2])).run()
    at.button[0].click().run()
    assert int(ranked[2]) not in review_log.current()
    next(b for b in at.button if b.label == "Apply & retrain").click().run()
    assert not at.exception
    (revision,) = [r for r in list_rounds(analysis.directory) if r.number == 1]
    assert at.session_state["analysis"].directory == revision.directory  # the rerun opened it
    reopened = run_app({"round": revision.label}, "pages/decisions.py")
    metrics = {m.label: m for m in reopened.metric}
    assert metrics["Relabelled"].value == "1" and metrics["Removed"].value == "1"
    assert metrics["Test accuracy"].value.endswith("%")
    assert len(reopened.dataframe) == 4  # log, confusions before and after, rounds history
