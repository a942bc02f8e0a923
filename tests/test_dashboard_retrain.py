"""Apply & retrain in the dashboard (issue 22): a job of the same background runner as builds, followed with a
progress bar; the page lands on the new round when it is done, and a failure is a message, not a traceback."""
import threading

from coreclean.build.rounds import list_rounds
from coreclean.review.log import ReviewLog
from ui import jobs, retraining

TIMEOUT = 300  # never a wall-clock limit below 300 s in AppTest; the run itself waits for the job


def apply_and_retrain(at):
    button = next(b for b in at.button if b.label == "Apply & retrain")
    assert not button.disabled
    button.click().run(timeout=TIMEOUT)
    return at


def test_apply_and_retrain_runs_in_the_background_runner_and_lands_a_new_round(digits_analysis, run_app,
                                                                              monkeypatch):
    a = digits_analysis
    log = ReviewLog(a.directory, len(a.y_train), a.n_classes)
    top = a.ranked(3)[:2]
    log.record(int(top[0]), 3, "mislabeled", new_label=8)
    log.record(int(top[1]), 3, "remove")
    real, calls = retraining.retrain, []

    def refused(analysis, decisions, *, progress):
        raise ValueError("the decisions remove too much: at least two classes must keep samples.")

    monkeypatch.setattr(retraining, "retrain", refused)
    at = apply_and_retrain(run_app(page="pages/decisions.py"))
    assert not at.exception  # a refusal is a message on the page, not a red exception box
    assert any("Apply & retrain failed: the decisions remove too much" in e.value for e in at.error)
    assert "pending_round" not in at.session_state and at.session_state["analysis"].directory == a.directory
    at.run(timeout=TIMEOUT)  # still shown on the next run, until the next Apply & retrain
    assert any("Apply & retrain failed" in e.value for e in at.error)

    def recorded(analysis, decisions, *, progress):
        reports = []
        calls.append((threading.current_thread().name, sorted(decisions), reports))
        return real(analysis, decisions, progress=lambda *report: (reports.append(report), progress(*report)))

    monkeypatch.setattr(retraining, "retrain", recorded)
    apply_and_retrain(at)
    assert not at.exception and not at.error
    ((thread, decided, reports),) = calls
    assert thread.startswith("coreclean-build")  # the builds' worker thread, not the page's script thread
    assert decided == sorted(int(i) for i in top) and reports  # the progress the bar showed
    job_keys = [k for k in jobs.runner().progress if k[:2] == ("retrain", str(a.directory))]
    assert job_keys and jobs.runner().progress[job_keys[-1]][0] in {stage for stage, _, _ in reports}
    (new_round,) = [r for r in list_rounds(a.directory) if r.number == 1]
    assert (new_round.directory / "meta.json").is_file()
    assert at.session_state["analysis"].directory == new_round.directory  # the rerun opened it

    reopened = run_app({"round": new_round.label}, "pages/decisions.py")
    assert reopened.session_state["analysis"].directory == new_round.directory
    metrics = {m.label: m.value for m in reopened.metric}
    assert metrics["Relabelled"] == "1" and metrics["Removed"] == "1" and not reopened.error
