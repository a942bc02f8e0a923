"""Regression tests for the hostile-but-realistic trial (issue 12): each finding, fixed and kept fixed."""
import json
import os
import sqlite3
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.server import WAIT_S, serve
from coreclean import Analysis, load_source
from coreclean.cli.main import main
from coreclean.data.decode import tile, to_rgb
from coreclean.review.log import ReviewLog, ReviewLogError


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_local_dashboard_listens_on_loopback_only(cache):
    with serve(cache, address=None) as url:  # no --server.address: the app's own default
        port = int(url.rpartition(":")[2])
        addresses = _listening_addresses(port)
        assert addresses, "the dashboard never listened"
        loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
        assert addresses <= loopback, f"listening beyond loopback: {addresses}"
        assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=WAIT_S).read() == b"ok"


def test_dashboard_refuses_to_embed_with_random_weights(tmp_path, make_image_folder, run_app, cache, monkeypatch):
    monkeypatch.delenv("CORECLEAN_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached ImageNet weights; offline here
    folder = make_image_folder(tmp_path / "pets", per_class=3)
    at = run_app({"path": str(folder)})
    assert any("--weights FILE" in e.value for e in at.error)
    assert at.title[0].value.startswith("Overview — digits")  # fell back to the demo
    assert not [d for d in cache.iterdir() if d.name.startswith("pets") and (d / "meta.json").exists()]


def test_dashboard_uses_the_operators_weights_file(tmp_path, make_image_folder, run_app, weights_file, monkeypatch):
    monkeypatch.setenv("CORECLEAN_WEIGHTS", str(weights_file))
    folder = make_image_folder(tmp_path / "pets", per_class=4)
    Image.new("L", (3000, 1), 128).save(folder / "cat" / "thin.png")  # readable, but 1 pixel high
    at = run_app({"path": str(folder), "cls": "cat", "seen": "true"}, "pages/review.py")
    analysis = at.session_state["analysis"]
    assert analysis.params.backbone == "resnet18" and analysis.params.weights not in (None, "imagenet")
    assert len(at.get("image")) >= 3


def test_odd_images_are_skipped_or_shown_not_fatal(tmp_path, make_image_folder, weights_file):
    folder = make_image_folder(tmp_path / "pets", per_class=4)
    Image.new("1", (20000, 20000)).save(folder / "cat" / "bomb.png")
    good = Image.new("RGB", (32, 32), (200, 10, 10))
    good.save(folder / "dog" / "truncated.jpg", quality=95)
    data = (folder / "dog" / "truncated.jpg").read_bytes()
    (folder / "dog" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    a = Analysis.build(str(folder), cache_dir=tmp_path / "cache", weights=str(weights_file))
    reasons = dict(map(tuple, a.meta["skipped"]))
    assert "too large" in reasons["cat/bomb.png"]
    assert "dog/truncated.jpg" in reasons  # named by its file, not by a row number
    assert a.meta["n_train"] + a.meta["n_test"] == 8


def test_sixteen_bit_images_keep_their_contrast():
    ramp = (np.arange(64 * 64).reshape(64, 64) * 15).astype(np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(ramp)))
    assert rgb.min() == 0 and rgb.max() == 255 and 100 < rgb.mean() < 155


def test_tiles_of_extreme_aspect_ratios_have_pixels():
    for size in ((3000, 1), (1, 3000), (8, 8), (500, 300)):
        square = tile(Image.new("RGB", size, (255, 0, 0)), 180)
        assert square.size == (180, 180)
        assert (np.asarray(square)[..., 1] == 0).any()  # some of the red image is visible


def _log_with_decisions(directory: Path, n: int = 25) -> ReviewLog:
    log = ReviewLog(directory, n_samples=100, n_classes=10)
    for i in range(n):
        log.record(i, 1, "ok")
    return log


def test_damaged_log_names_the_file_and_restores_from_backup(tmp_path, capsys):
    _log_with_decisions(tmp_path, 25)
    db = tmp_path / "reviews.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.write_bytes(db.read_bytes()[:1500])
    with pytest.raises(ReviewLogError, match=r"reviews.sqlite.*damaged.*restore-log"):
        ReviewLog(tmp_path).current()
    assert main(["restore-log", str(tmp_path)]) == 0
    assert "restored 20 decision rows" in capsys.readouterr().out  # backups every 10: at most 5 lost
    assert len(ReviewLog(tmp_path).current()) == 20
    assert list(tmp_path.glob("reviews.sqlite.damaged-*")), "the damaged file is kept"


def test_emptied_log_is_not_silently_a_new_one(tmp_path):
    _log_with_decisions(tmp_path, 12)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path / 'reviews.sqlite'}{suffix}").unlink(missing_ok=True)
    (tmp_path / "reviews.sqlite").write_bytes(b"")
    with pytest.raises(ReviewLogError, match="empty but backups"):
        ReviewLog(tmp_path)


def test_unwritable_log_location_is_a_clear_error(tmp_path):
    (tmp_path / "reviews.sqlite").mkdir()  # cannot be opened as a database file, as on a read-only volume
    with pytest.raises(ReviewLogError, match="cannot open the review log"):
        ReviewLog(tmp_path)


def test_damaged_log_breaks_only_the_review_pages(digits_analysis, run_app):
    (digits_analysis.directory / "reviews.sqlite").write_bytes(b"this is not a database" * 100)
    review = run_app(page="pages/review.py")
    assert any("damaged" in e.value and "restore-log" in e.value for e in review.error)
    assert run_app(page="pages/overview.py").metric  # the other pages keep working


def test_out_of_range_labels_are_refused(tmp_path):
    log = ReviewLog(tmp_path, n_samples=10, n_classes=3)
    with pytest.raises(ValueError, match="new_label=1000000"):
        log.record(1, 0, "mislabeled", new_label=1000000)
    with pytest.raises(ValueError, match="old_label=-7"):
        log.record(1, -7, "ok")


@pytest.mark.parametrize("out, message", [
    ("missing-folder/out.csv", "does not exist"),
    (".", "is a directory"),
    ("/dev/full", "not a regular file"),
    ("X.npy", "also an input"),
])
def test_bad_out_paths_fail_before_the_work(tmp_path, monkeypatch, capsys, out, message):
    monkeypatch.chdir(tmp_path)
    np.save("X.npy", np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32))
    np.save("y.npy", np.arange(30) % 3)
    assert main(["rank", "--features", "X.npy", "--labels", "y.npy", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert np.load("X.npy").shape == (30, 3)  # the input survived


@pytest.mark.parametrize("case", ["backbone", "cache", "classes", "offline"])
def test_build_errors_are_one_line(tmp_path, make_image_folder, write_embeddings, capsys, monkeypatch, case):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("CORECLEAN_WEIGHTS", raising=False)  # a user's default: the ImageNet enum, offline here
    folder = str(make_image_folder(tmp_path / "pets", per_class=3))
    emb = write_embeddings(tmp_path / "emb")
    args, expected = {
        "backbone": (["build", folder, "--backbone", "precomputed"], "needs an embeddings directory"),
        "cache": (["build", "digits", "--cache", "/proc/coreclean"], "cannot create or write it"),
        "classes": (["build", str(emb)], "classes.json: holds a int"),
        "offline": (["build", folder], "--weights FILE"),
    }[case]
    (emb / "classes.json").write_text("42")
    assert main(args + ([] if "--cache" in args else ["--cache", str(tmp_path / "c")])) == 2
    err = capsys.readouterr().err
    assert "error:" in err and expected in err.partition("error:")[2] and "Traceback" not in err


def test_tampered_meta_names_the_file_and_rebuild_keeps_reviews(digits_analysis, cache):
    directory = digits_analysis.directory
    ReviewLog(directory, len(digits_analysis.y_train), 10).record(3, int(digits_analysis.y_train[3]), "remove")
    (directory / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="meta.json: damaged"):
        Analysis.load(directory)
    rebuilt = Analysis.build("digits", cache_dir=cache)
    assert rebuilt.directory == directory and rebuilt.accuracy > 0.9
    assert ReviewLog(directory).current()[3].decision == "remove"


def test_unreadable_user_paths_are_notices(run_app):
    for path in ("/proc", "x" * 300, "/root/../proc/self"):
        at = run_app({"path": path})  # run_app fails on any exception
        assert at.error and at.title[0].value.startswith("Overview — digits")


def test_reversed_range_in_a_link_is_reordered_with_a_notice(run_app):
    at = run_app({"range": ["0.9", "0.1"], "classes": ["1"]}, "pages/importance.py")
    assert any("runs backwards" in w.value for w in at.warning)
    assert any("in [0.10, 0.90]" in m.value for m in at.markdown)


def test_image_refusal_does_not_reveal_server_paths(tmp_path, write_embeddings):
    from coreclean.data.images import ImageUnavailable, image_for

    d = write_embeddings(tmp_path / "emb")
    (d / "img_train.txt").write_text("\n".join(["../../etc/passwd"] * 60))
    a = Analysis.build(str(d), cache_dir=tmp_path / "cache")
    with pytest.raises(ImageUnavailable) as err:
        image_for(a, 0)
    assert str(tmp_path) not in str(err.value)


def test_embeddings_source_with_bad_classes_file(tmp_path, write_embeddings):
    d = write_embeddings(tmp_path / "emb")
    (d / "classes.json").write_text(json.dumps({"a": 1}))
    assert load_source(str(d)).classes == ["class 0", "class 1", "class 2"]


@pytest.mark.parametrize("change, message", [
    (lambda x, y: (np.where(np.arange(len(x))[:, None] == 7, np.nan, x), y), "x_test.npy: 1 row"),
    (lambda x, y: (x, y + 0.5), "y_test.npy: labels must be integers"),
    (lambda x, y: (x, np.where(np.arange(len(y)) == 3, 50, y)), "y_test.npy: label 50"),
    (lambda x, y: (x, np.where(np.arange(len(y)) == 3, -1, y)), "y_test.npy: negative label"),
])
def test_test_split_is_validated_up_front(tmp_path, write_embeddings, change, message):
    d = write_embeddings(tmp_path / "emb")
    x, y = change(np.load(d / "x_test.npy"), np.load(d / "y_test.npy"))
    np.save(d / "x_test.npy", x.astype(np.float32))
    np.save(d / "y_test.npy", y)
    with pytest.raises(ValueError, match=message):
        load_source(str(d))
