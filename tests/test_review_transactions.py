"""ReviewLog's read-then-write operations (toggle a tile, accept a page, keep one of duplicate groups): each is one
``BEGIN IMMEDIATE`` transaction, so concurrent writers, threads or processes, never act on a stale read."""
import json
import multiprocessing
import sqlite3
import threading
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from coreclean.review import backup as log_backup
from coreclean.review.log import ReviewLog

Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])  # old labels of samples 0..9


@pytest.fixture
def log(tmp_path):
    return ReviewLog(tmp_path, n_samples=len(Y), n_classes=3)


def decisions(log):
    return {s: (d.decision, d.new_label) for s, d in log.current().items()}


# --- toggle_mislabeled -----------------------------------------------------------------------------------------
def test_toggle_marks_then_undoes_and_brings_back_the_decision_before(log):
    now = log.toggle_mislabeled(4, 1, 2, reviewer="ana")
    assert (now.sample, now.decision, now.old_label, now.new_label, now.reviewer) == (4, "mislabeled", 1, 2, "ana")
    assert log.toggle_mislabeled(4, 1, 2) is None and 4 not in log.current()
    log.record(5, 2, "ok")
    assert log.toggle_mislabeled(5, 2, 0).decision == "mislabeled"
    assert log.toggle_mislabeled(5, 2, 0).decision == "ok"  # the undo brings "ok" back
    log.record(6, 0, "remove")
    assert log.toggle_mislabeled(6, 0, 1).decision == "mislabeled"  # a "remove" is not "mislabeled": marks it
    assert [(r["sample"], r["decision"], r["undone"]) for r in log.history(include_undone=True)] == [
        (6, "mislabeled", 0), (6, "remove", 0), (5, "mislabeled", 1), (5, "ok", 0), (4, "mislabeled", 1)]


def test_toggle_refuses_a_new_label_equal_to_the_old_one(log):
    with pytest.raises(ValueError, match="needs a new label"):
        log.toggle_mislabeled(1, 1, 1)
    with pytest.raises(ValueError, match="out of range"):
        log.toggle_mislabeled(10, 1, 2)
    assert log.history(include_undone=True) == []


# --- accept_undecided ------------------------------------------------------------------------------------------
def test_accept_marks_only_undecided_samples_ok(log):
    log.record(2, 2, "remove")
    log.toggle_mislabeled(3, 0, 1)
    log.toggle_mislabeled(7, 1, 0)
    log.toggle_mislabeled(7, 1, 0)  # undone: undecided again
    written = log.accept_undecided(np.array([3, 2, 7, 0, 7]), Y, reviewer="bo")
    assert written == [7, 0]  # in the order given, a repeated sample once
    assert decisions(log) == {2: ("remove", None), 3: ("mislabeled", 1), 7: ("ok", None), 0: ("ok", None)}
    assert {s: d.old_label for s, d in log.current().items()} == {2: 2, 3: 0, 7: 1, 0: 0}
    assert {d.reviewer for s, d in log.current().items() if s in (0, 7)} == {"bo"}
    assert log.accept_undecided([3, 2, 7, 0], Y) == [] and log.accept_undecided([], Y) == []


def test_accept_checks_every_sample_before_writing_any(log):
    with pytest.raises(ValueError, match="out of range"):
        log.accept_undecided([0, 1, 10], Y)
    assert log.history() == []


# --- keep_first ------------------------------------------------------------------------------------------------
def test_keep_first_removes_the_rest_of_each_group_once(log):
    log.record(2, 2, "remove", reviewer="old")
    log.toggle_mislabeled(5, 2, 1)
    written = log.keep_first([[0, 1, 2], [3, 5], [4]], Y, reviewer="kim")
    assert written == [1, 5]  # 2 was removed already; a group of one removes nothing
    assert decisions(log) == {1: ("remove", None), 2: ("remove", None), 5: ("remove", None)}
    assert log.current()[2].reviewer == "old" and log.current()[5].old_label == 2
    assert log.keep_first([[0, 1, 2], [3, 5]], Y) == []  # nothing twice
    assert log.keep_first([[8, 9, 9]], Y) == [9]


def test_keep_first_checks_every_sample_before_writing_any(log):
    with pytest.raises(ValueError, match="out of range"):
        log.keep_first([[0, 1], [2, 11]], Y)
    assert log.history() == []


# --- one transaction -------------------------------------------------------------------------------------------
def test_a_failure_midway_writes_nothing(log, monkeypatch):
    inserted = []
    insert = ReviewLog._insert

    def failing(db, row, reviewer):
        if len(inserted) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        inserted.append(row)
        return insert(db, row, reviewer)

    monkeypatch.setattr(ReviewLog, "_insert", staticmethod(failing))
    with pytest.raises(Exception, match="disk I/O error"):
        log.accept_undecided([0, 1, 2, 3], Y)
    monkeypatch.undo()
    assert len(inserted) == 2 and log.history(include_undone=True) == []  # the two rows were rolled back
    assert log.accept_undecided([0, 1], Y) == [0, 1]


@pytest.mark.parametrize("pending, operation, expected", [
    ("ok", lambda log: log.accept_undecided([1, 2], Y), [2]),
    ("remove", lambda log: log.keep_first([[0, 1, 2]], Y), [2]),
    ("mislabeled", lambda log: log.toggle_mislabeled(1, 1, 2), None),  # sees the mark, so undoes it
], ids=["accept", "keep_first", "toggle"])
def test_the_read_waits_for_a_writer_in_progress(log, pending, operation, expected):
    """Another connection is writing ``pending`` for sample 1: the operation reads the log only once that write
    committed, so it acts on it (a read before the write lock would not see it)."""
    other = sqlite3.connect(log.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO decisions (sample, old_label, new_label, decision, created) VALUES (1, 1, ?, ?, ?)",
                  (2 if pending == "mislabeled" else None, pending, time.time()))
    result = []
    worker = threading.Thread(target=lambda: result.append(operation(log)))
    worker.start()
    time.sleep(0.3)
    assert not result  # waiting for the write lock
    other.execute("COMMIT")
    other.close()
    worker.join(30)
    assert result == [expected]


def test_rows_past_a_backup_mark_take_a_backup(log):
    log.accept_undecided(range(10), Y)
    assert len(log_backup.backups(log.path)) == 1  # rows 1..10 written in one call: one snapshot after the commit
    assert log_backup.decision_rows(log_backup.backups(log.path)[0]) == 10


# --- two processes on one page ---------------------------------------------------------------------------------
PAGE = list(range(6))
ROUNDS = 12


def _review(directory: str, worker: int, start, out: str) -> None:
    """One reviewer's session: each round toggles a few tiles of the page (some twice), then accepts the page."""
    log = ReviewLog(directory, n_samples=len(Y), n_classes=3)
    rng = np.random.default_rng(worker)
    toggles, on, accepted = Counter(), 0, 0
    start.wait(60)
    for _ in range(ROUNDS):
        for sample in rng.choice(PAGE, size=3).tolist():
            now = log.toggle_mislabeled(sample, int(Y[sample]), (int(Y[sample]) + 1) % 3, reviewer=f"r{worker}")
            toggles[sample] += 1
            on += now is not None and now.decision == "mislabeled"
        accepted += len(log.accept_undecided(PAGE, Y, reviewer=f"r{worker}"))
    with open(out, "w") as f:
        json.dump({"toggles": toggles, "on": on, "accepted": accepted}, f)


def test_two_processes_toggling_and_accepting_one_page_lose_nothing(tmp_path):
    ReviewLog(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    outs = [tmp_path / f"r{w}.json" for w in range(2)]
    procs = [ctx.Process(target=_review, args=(str(tmp_path), w, start, str(outs[w]))) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    reports = [json.loads(o.read_text()) for o in outs]
    log = ReviewLog(tmp_path)
    rows = sorted(log.history(include_undone=True), key=lambda r: r["id"])
    # no decision lost: every toggle that marked and every "ok" a worker was told it wrote is a row of its own
    for w, report in enumerate(reports):
        mine = Counter(r["decision"] for r in rows if r["reviewer"] == f"r{w}")
        assert mine["mislabeled"] == report["on"] and mine["ok"] == report["accepted"] and not mine["remove"]
    toggles = sum((Counter({int(s): n for s, n in r["toggles"].items()}) for r in reports), Counter())
    unmarks = sum(toggles.values()) - sum(r["on"] for r in reports)
    assert sum(r["undone"] for r in rows) == unmarks
    # never both ok and mislabeled: "ok" is only written on an undecided sample and toggles undo only "mislabeled",
    # so each sample's live rows are (), (mislabeled,), (ok,) or (ok, mislabeled), and undone rows are mislabeled
    by_sample = defaultdict(list)
    for r in rows:
        by_sample[r["sample"]].append(r)
    current = log.current()
    for sample in PAGE:
        live = tuple(r["decision"] for r in by_sample[sample] if not r["undone"])
        assert live in {(), ("mislabeled",), ("ok",), ("ok", "mislabeled")}, (sample, by_sample[sample])
        assert {r["decision"] for r in by_sample[sample] if r["undone"]} <= {"mislabeled"}
        # each toggle flips "mislabeled" whatever the order: an odd count ends mislabeled
        marked = sample in current and current[sample].decision == "mislabeled"
        assert marked == (toggles[sample] % 2 == 1), (sample, toggles[sample], by_sample[sample])


def test_record_changes_writes_only_what_differs_in_one_transaction(log):
    log.record(0, int(Y[0]), "ok")
    imported = [(0, int(Y[0]), "ok", None, "a"), (1, int(Y[1]), "remove", None, "a"),
                (2, int(Y[2]), "mislabeled", (int(Y[2]) + 1) % 3, "b")]
    assert log.record_changes(imported) == [1, 2]
    assert log.record_changes(imported) == []  # importing the same decisions again writes nothing
    assert log.current()[2].reviewer == "b" and log.current()[2].new_label == (int(Y[2]) + 1) % 3
    before = len(log.history())
    with pytest.raises(ValueError, match="out of range"):
        log.record_changes([(3, int(Y[3]), "remove", None, "a"), (10_000, 0, "remove", None, "a")])
    assert len(log.history()) == before  # a bad row refuses the whole call
