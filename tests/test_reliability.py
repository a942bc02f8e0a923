"""Reliability, third pass (issue 23): no writer replaces what a user saved, no hang on wide features, no red
error box a user can reach. Each test names the item of the issue it guards."""
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from coreclean.cli.main import main
from coreclean.review.log import ReviewLog


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- item 1: every writer refuses a destination inside an analysis directory ------------------------------------
@pytest.mark.parametrize("target", ["reviews.sqlite", "meta.json", "importance.npy", "new.csv",
                                    "reviews.backup/x.csv"])
@pytest.mark.parametrize("command", ["export", "rank"])
def test_writers_refuse_a_destination_inside_an_analysis(digits_analysis, capsys, command, target):
    directory = digits_analysis.directory
    ReviewLog(directory, len(digits_analysis.y_train), digits_analysis.n_classes).record(0, 0, "ok")
    before = _snapshot(directory)
    assert main([command, str(directory), "--out", str(directory / target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "inside the analysis directory" in err
    assert _snapshot(directory) == before  # nothing written, nothing replaced


def test_writers_refuse_a_symlink_into_an_analysis(digits_analysis, tmp_path, capsys):
    link = tmp_path / "elsewhere"
    link.symlink_to(digits_analysis.directory)
    features, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(features, np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    np.save(labels, np.arange(30) % 3)
    before = _snapshot(digits_analysis.directory)
    assert main(["rank", "--features", str(features), "--labels", str(labels), "--out",
                 str(link / "meta.json")]) == 2
    assert "inside the analysis directory" in capsys.readouterr().err
    assert _snapshot(digits_analysis.directory) == before


def test_a_revision_is_an_analysis_too(tmp_path, capsys):
    revision = tmp_path / "a" / "revisions" / "r1"
    revision.mkdir(parents=True)
    (tmp_path / "a" / "meta.json").write_text("{}")
    assert main(["rank", str(tmp_path / "a"), "--out", str(revision / "ranking.csv")]) == 2
    assert "inside the analysis directory" in capsys.readouterr().err


# --- item 2: restore-log refuses an intact log unless --force, never overwrites a copy set aside ------------------
def _log_with_decisions(directory: Path, n: int) -> Path:
    log = ReviewLog(directory, n_samples=100, n_classes=10)
    for i in range(n):
        log.record(i, 1, "ok")
    return directory / "reviews.sqlite"


def test_restore_refuses_an_intact_log(tmp_path, capsys):
    db = _log_with_decisions(tmp_path, 25)  # backups at 1, 10, 20: 5 decisions newer than the newest backup
    assert main(["restore-log", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "intact" in err and "--force" in err
    assert len(ReviewLog(tmp_path).current()) == 25
    assert not list(tmp_path.glob("reviews.sqlite.*-2*")), "nothing set aside"
    assert db.exists()


def test_forced_restores_keep_every_copy_set_aside(tmp_path, capsys):
    _log_with_decisions(tmp_path, 25)
    assert main(["restore-log", str(tmp_path), "--force"]) == 0
    assert len(ReviewLog(tmp_path).current()) == 20
    assert main(["restore-log", str(tmp_path), "--force"]) == 0  # within the same second
    asides = sorted(p for p in tmp_path.glob("reviews.sqlite.replaced-*") if not p.name.count("-wal")
                    and not p.name.count("-shm"))
    assert len(asides) == 2, asides
    rows = []
    for aside in asides:
        with sqlite3.connect(f"file:{aside}?mode=ro", uri=True) as db:
            rows.append(db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
    assert sorted(rows) == [20, 25], "the original 25-decision log survives both restores"
    capsys.readouterr()


def test_restore_of_a_deleted_log(tmp_path, capsys):
    db = _log_with_decisions(tmp_path, 12)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert main(["restore-log", str(tmp_path)]) == 0
    assert "restored 10 decision rows" in capsys.readouterr().out
    assert len(ReviewLog(tmp_path).current()) == 10


# --- item 3: read-only hosting offers Apply & retrain only when the operator allows it, bounded, one at a time ----
def _decide_something(analysis) -> None:
    log = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes)
    log.record(int(analysis.ranked(1)[0]), int(analysis.y_train[int(analysis.ranked(1)[0])]), "remove")


def test_read_only_hosting_does_not_offer_apply_and_retrain(digits_analysis, run_app, monkeypatch):
    _decide_something(digits_analysis)
    monkeypatch.setenv("CORECLEAN_READONLY", "1")
    monkeypatch.delenv("CORECLEAN_HOSTED_RETRAIN", raising=False)
    at = run_app(page="pages/decisions.py")
    assert not [b for b in at.button if b.label == "Apply & retrain"]
    assert any("CORECLEAN_HOSTED_RETRAIN" in i.value for i in at.info)
    assert not (digits_analysis.directory / "revisions").exists()


def test_hosted_retrain_is_bounded_and_one_at_a_time(digits_analysis, run_app, monkeypatch):
    import threading

    from ui import jobs, retraining

    _decide_something(digits_analysis)
    monkeypatch.setenv("CORECLEAN_READONLY", "1")
    for raw in ("", "0", "²", "-1", "x"):  # anything but ASCII digits: off
        monkeypatch.setenv("CORECLEAN_HOSTED_RETRAIN", raw)
        assert retraining.hosted_retrain_rounds() == 0
    monkeypatch.setenv("CORECLEAN_HOSTED_RETRAIN", "1")
    assert retraining.retrain_refusal(digits_analysis) is None
    button = next(b for b in run_app(page="pages/decisions.py").button if b.label == "Apply & retrain")
    assert not button.disabled

    release = threading.Event()
    job = jobs.runner().start(("retrain", "another analysis", 0), lambda progress: release.wait(60))
    try:
        assert "Another Apply & retrain is running" in retraining.retrain_refusal(digits_analysis)
    finally:
        release.set()
        job.result(timeout=60)

    real_rounds = retraining.list_rounds
    monkeypatch.setattr(retraining, "list_rounds", lambda root: real_rounds(root) * 2)  # one retrained round exists
    assert "the most this server allows" in retraining.retrain_refusal(digits_analysis)
    at = run_app(page="pages/decisions.py")
    button = next(b for b in at.button if b.label == "Apply & retrain")
    assert button.disabled and any("the most this server allows" in c.value for c in at.caption)
    monkeypatch.delenv("CORECLEAN_READONLY")
    assert retraining.retrain_refusal(digits_analysis) is None  # locally: no bound


# --- item 4: wide features (d > n) never form a d x d matrix ------------------------------------------------------
def test_wide_whitener_matches_the_explicit_covariance():
    from coreclean.exploration.outliers import _whitener

    rng = np.random.default_rng(0)
    sample = (rng.normal(size=(40, 120)) * rng.uniform(0.1, 3, 120)).astype(np.float32)
    mean, squared_distance = _whitener(sample, 0.01)
    centred = sample - sample.mean(axis=0)
    cov = centred.T.astype(np.float64) @ centred / 39
    cov = 0.99 * cov + 0.01 * np.trace(cov) / 120 * np.eye(120)
    queries = np.vstack([sample[:3], rng.normal(size=(3, 120)).astype(np.float32)]) - mean
    expected = np.einsum("ij,jk,ik->i", queries, np.linalg.inv(cov), queries)
    np.testing.assert_allclose(squared_distance(queries), expected, rtol=1e-3)


def test_rank_of_wide_features_never_forms_a_d_by_d_matrix(tmp_path, capsys):
    import tracemalloc

    rng = np.random.default_rng(0)
    n, d = 50, 15_000  # a d x d float64 matrix would be 1.8 GB (before: > 10 min in eigh, 7.7 GB)
    np.save(tmp_path / "x.npy", rng.normal(size=(n, d)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(n) % 3)
    tracemalloc.start()
    try:
        code = main(["rank", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                     "--out", str(tmp_path / "ranking.csv")])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0, capsys.readouterr().err
    assert len((tmp_path / "ranking.csv").read_text().splitlines()) == n + 1
    assert peak < 300e6, f"numpy peak {peak / 1e6:.0f} MB for a {n * d * 4 / 1e6:.0f} MB input"


# --- item 5: --cluster tcp://HOST:PORT where something else answers: one error line, within the timeout ----------
def _listener(greeting: bytes | None):
    """A local TCP server that sends ``greeting`` to each connection (an SSH banner), or stays silent (``None``)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if greeting:
                conn.sendall(greeting)
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.getsockname()[1]}"


@pytest.mark.parametrize("greeting, says", [(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "not a Dask scheduler"),
                                            (None, "nothing answered as a Dask scheduler within 2 s")])
def test_cluster_handshake_is_validated_and_times_out(tmp_path, capsys, monkeypatch, greeting, says):
    from coreclean.build import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)  # the promise is 30 s; the test keeps it short
    server, address = _listener(greeting)
    try:
        assert main(["build", "digits", "--cache", str(tmp_path / "cache"), "--cluster", address]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and says in err, err
    assert not any((tmp_path / "cache").rglob("meta.json"))


def test_a_real_scheduler_passes_the_handshake():
    from distributed import LocalCluster

    from coreclean.build.cluster import check_scheduler, parse_cluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=None) as local:
        check_scheduler(parse_cluster(local.scheduler_address), 10)


def test_unicode_digits_are_not_a_worker_count():
    from coreclean.build.cluster import parse_cluster

    for spec in ("local:²", "local:①", "local:٣"):
        with pytest.raises(ValueError, match="from 1 to 512"):
            parse_cluster(spec)


# --- item 6: integer link parameters are ASCII digits, parsed by one function every page uses ---------------------
def test_one_parser_for_integer_link_parameters():
    from ui.widgets import parse_link_int

    assert [parse_link_int(raw) for raw in ("0", "12", "007")] == [0, 12, 7]
    for raw in (None, "", "²", "①", "٣", "-1", "+1", "1e3", " 1", "9" * 40):
        assert parse_link_int(raw) is None, raw


@pytest.mark.parametrize("page, key, raw", [("pages/sample.py", "i", "²"), ("pages/sample.py", "i", "٣"),
                                            ("pages/review.py", "pos", "①"), ("pages/review.py", "pos", "²")])
def test_unicode_digits_in_links_are_a_notice(run_app, page, key, raw):
    at = run_app({key: raw}, page)  # run_app fails on any exception
    assert any(f"{key}={raw}" in w.value for w in at.warning), [w.value for w in at.warning]


# --- items 6, 7: the review log's state is a notice on the review pages, an error line in the CLI -----------------
def _record_twelve(analysis) -> Path:
    log = ReviewLog(analysis.directory, len(analysis.y_train), analysis.n_classes)
    for i in range(12):
        log.record(i, int(analysis.y_train[i]), "remove" if i % 2 else "ok")
    return analysis.directory / "reviews.sqlite"


def test_an_immutable_log_is_a_notice_before_the_first_decision(digits_analysis, run_app):
    import subprocess

    db = _record_twelve(digits_analysis)
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode:
        pytest.skip("chattr +i needs root and a filesystem with attributes")
    try:
        review = run_app(page="pages/review.py")
        assert any("cannot write the review log" in e.value for e in review.error)
        assert run_app(page="pages/overview.py").metric  # the other pages keep working
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_a_deleted_log_with_backups_is_a_notice(digits_analysis, run_app, capsys):
    db = _record_twelve(digits_analysis)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert main(["retrain", str(digits_analysis.directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "missing but backups" in err and "restore-log" in err
    decisions = run_app(page="pages/decisions.py")
    assert any("missing but backups" in e.value for e in decisions.error)
    assert not db.exists(), "nothing recreated the log over the evidence"


def test_a_log_row_outside_the_analysis_is_named(digits_analysis, run_app, capsys):
    db = _record_twelve(digits_analysis)
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO decisions (sample, old_label, new_label, decision, created) "
                           "VALUES (99999, 1, NULL, 'remove', 0)")
    assert main(["retrain", str(digits_analysis.directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "row id 13" in err and "sample 99999" in err
    assert not (digits_analysis.directory / "revisions").exists()
    decisions = run_app(page="pages/decisions.py")
    assert any("row id 13" in e.value for e in decisions.error)


# --- item 6: a hand-edited stored array is an error line naming the file -----------------------------------------
@pytest.mark.parametrize("edit, says", [(lambda y: y.astype(np.float64), "integer"), (lambda y: y[:-5], "rows"),
                                        (lambda y: y + 20, "classes")])
def test_hand_edited_labels_are_an_error_line(digits_analysis, tmp_path, capsys, edit, says):
    path = digits_analysis.directory / "y_train.npy"
    np.save(path, edit(np.load(path)))
    for command in ("export", "rank"):
        assert main([command, str(digits_analysis.directory), "--out", str(tmp_path / "out.csv")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and "y_train.npy" in err and says in err, err
    assert not (tmp_path / "out.csv").exists()


def test_classes_cut_in_meta_is_an_error_line(digits_analysis, tmp_path, capsys):
    import json

    meta_file = digits_analysis.directory / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "classes": meta["classes"][:3]}))
    assert main(["rank", str(digits_analysis.directory), "--out", str(tmp_path / "out.csv")]) == 2
    assert "3 classes" in capsys.readouterr().err
