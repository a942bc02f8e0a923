import csv
import io
import multiprocessing
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from bench.server import WAIT_S
from coreclean import Analysis, CoresetSensitivity
from coreclean.classifier.model import predict_proba
from coreclean.build.retrain import retrain
from coreclean.review.export import cleaned_labels_csv, cleaned_labels_npy, corrections_csv
from coreclean.review.log import ReviewLog, apply_corrections


def test_decisions_round_trip_and_undo(tmp_path):
    log = ReviewLog(tmp_path, n_samples=100)
    log.record(3, 1, "ok", reviewer="ana")
    log.record(5, 2, "mislabeled", new_label=7, reviewer="bo")
    log.record(3, 1, "remove")
    again = ReviewLog(tmp_path, n_samples=100)  # a restart reads the same file
    current = again.current()
    assert current[3].decision == "remove" and current[5].new_label == 7 and current[5].reviewer == "bo"
    restored = again.undo(3)
    assert restored.decision == "ok" and again.current()[3].reviewer == "ana"
    assert again.undo(3) is None and 3 not in again.current()
    assert [r["sample"] for r in again.history(decisions=["mislabeled"])] == [5]
    assert len(again.history(include_undone=True)) == 3 and len(again.history()) == 1
    assert [r["sample"] for r in again.history(reviewer="bo")] == [5]


@pytest.mark.parametrize("kwargs, message", [
    (dict(sample=1, old_label=0, decision="maybe"), "decision='maybe'"),
    (dict(sample=1, old_label=0, decision="mislabeled"), "needs a new label"),
    (dict(sample=1, old_label=0, decision="mislabeled", new_label=0), "needs a new label"),
    (dict(sample=100, old_label=0, decision="ok"), "out of range"),
])
def test_bad_decisions_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReviewLog(tmp_path, n_samples=100).record(**kwargs)


def test_concurrent_threads_lose_nothing(tmp_path):
    log = ReviewLog(tmp_path)

    def work(worker):
        for i in range(40):
            log.record(worker * 1000 + i, 0, "ok", reviewer=f"t{worker}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(log.history()) == 320 and len(log.current()) == 320


def _write_many(directory, worker, count):
    log = ReviewLog(directory)
    for i in range(count):
        log.record(worker * 1000 + i, 1, "mislabeled", new_label=2, reviewer=f"p{worker}")


def test_concurrent_processes_lose_nothing(tmp_path):
    ReviewLog(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 30)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(WAIT_S)
        assert p.exitcode == 0
    rows = ReviewLog(tmp_path).history()
    assert len(rows) == 120 and {r["reviewer"] for r in rows} == {"p0", "p1", "p2", "p3"}


def test_killed_writer_leaves_consistent_database(tmp_path):
    ReviewLog(tmp_path)
    code = ("import sys; from coreclean.review.log import ReviewLog; log = ReviewLog(sys.argv[1])\n"
            "i = 0\nwhile True:\n    log.record(i, 0, 'remove'); i += 1\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    deadline = time.time() + WAIT_S  # a cap only: the loop ends at 50 rows
    while time.time() < deadline and len(ReviewLog(tmp_path).history()) < 50:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(tmp_path / "reviews.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    log = ReviewLog(tmp_path)
    rows = log.history()
    assert len(rows) >= 50
    assert sorted(r["sample"] for r in rows) == list(range(len(rows)))  # no gaps, no partial rows
    log.record(10**6, 0, "ok")
    assert len(log.history()) == len(rows) + 1


def test_exports_reload(tmp_path):
    log = ReviewLog(tmp_path)
    y = np.array([0, 1, 2, 1, 0])
    log.record(1, 1, "mislabeled", new_label=2)
    log.record(4, 0, "remove")
    log.record(0, 0, "ok")
    decided = log.current()
    classes = ["a", "b", "c"]
    rows = list(csv.DictReader(io.StringIO(corrections_csv(decided, classes, ids=[f"img{i}.png" for i in range(5)]))))
    assert [(r["index"], r["id"], r["old_label"], r["new_label"], r["decision"]) for r in rows] == [
        ("1", "img1.png", "1", "2", "mislabeled"), ("4", "img4.png", "0", "", "remove")]
    path = tmp_path / "y_train.npy"
    path.write_bytes(cleaned_labels_npy(y, decided))
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), [0, 2, 2, 1, -1])
    mapping = list(csv.DictReader(io.StringIO(cleaned_labels_csv([f"{i}.png" for i in range(5)], y, decided, classes))))
    assert mapping[1] == {"path": "1.png", "label": "c", "status": "keep"}
    assert mapping[4]["status"] == "remove"
    labels, keep = apply_corrections(y, decided)
    assert labels.tolist() == [0, 2, 2, 1, 0] and keep.tolist() == [True, True, True, True, False]


def test_apply_and_retrain_matches_recomputation(digits_analysis):
    analysis = digits_analysis
    log = ReviewLog(analysis.directory, len(analysis.y_train))
    top = np.argsort(-analysis.importance)[:6]
    for i in top[:3]:
        log.record(int(i), int(analysis.y_train[i]), "mislabeled", new_label=(int(analysis.y_train[i]) + 1) % 10)
    for i in top[3:]:
        log.record(int(i), int(analysis.y_train[i]), "remove")
    result = retrain(analysis, log.current())
    revision = Analysis.load(result.directory)  # a revision is an analysis
    labels, keep = revision.y_train, ~revision.removed_train
    assert revision.meta["lineage"]["round"] == 1 and revision.root_analysis == analysis.directory
    assert revision.ranked(int(labels[top[3]])).tolist().count(int(top[3])) == 0  # removed: no longer ranked
    assert result.relabelled == 3 and result.removed == 3 and keep.sum() == len(keep) - 3
    for i in top[:3]:
        assert labels[i] == (analysis.y_train[i] + 1) % 10
    coef = revision.coef
    shown = result.accuracy_after
    assert shown == float((predict_proba(analysis.x_test, coef).argmax(1) == analysis.y_test).mean())
    cold = CoresetSensitivity().fit(np.asarray(analysis.x_train)[keep], labels[keep], n_classes=10).coef_
    cold_accuracy = float((predict_proba(analysis.x_test, cold).argmax(1) == analysis.y_test).mean())
    assert shown == cold_accuracy  # a round is a fresh fit: the same model a build on the corrected labels gives
    np.testing.assert_allclose(coef, cold, rtol=1e-4, atol=1e-5)
    assert result.accuracy_before == analysis.accuracy
    assert Analysis.load(analysis.directory).importance.tolist() == analysis.importance.tolist()  # original kept
