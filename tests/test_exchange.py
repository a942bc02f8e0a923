"""Exports that leave coreclean and the annotations that come back: the cleaned dataset (folder or arrays plus a
manifest, rebuilt by ``coreclean build``), Label Studio tasks and the import of Label Studio's JSON export (one
``error:`` line and nothing recorded for a bad file; importing twice changes nothing)."""
import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coreclean import Analysis
from coreclean.cli.main import main
from coreclean.review.exchange import label_studio
from coreclean.review.log import ReviewLog


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def only_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# --- the cleaned dataset -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pets(tmp_path_factory):
    """A tiny ImageFolder (cat, dog) and its analysis (ResNet18, random init: the weights do not matter here),
    built once for the module; tests that decide copy nothing, so they run in the order written."""
    base = tmp_path_factory.mktemp("pets")
    root, rng = base / "pets", np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 100, (16, 16, 3), dtype=np.uint8)
            pixels[..., c] += 120
            Image.fromarray(pixels).save(root / name / f"{name}_{i}.png")
    return root, Analysis.build(str(root), cache_dir=base / "cache").directory


def test_cleaned_image_folder_applies_decisions_and_rebuilds(pets, tmp_path, capsys):
    root, built = pets
    before = tree_digest(root)
    analysis = Analysis.load(built)
    cat, dog = analysis.classes.index("cat"), analysis.classes.index("dog")
    relabel = int(np.flatnonzero(analysis.y_train == cat)[0])
    remove = int(np.flatnonzero(analysis.y_train == dog)[0])
    log = ReviewLog(analysis.root_analysis, len(analysis.y_train), analysis.n_classes)
    log.record(relabel, cat, "mislabeled", new_label=dog, reviewer="ann")
    log.record(remove, dog, "remove")
    out = tmp_path / "clean"

    assert main(["export", str(built), "--format", "imagefolder", "--out", str(out), "--link"]) == 0
    assert "1 relabelled, 1 removed" in capsys.readouterr().out
    assert tree_digest(root) == before  # the source is never touched
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == len(analysis.y_train) - 1
    assert len([r for r in rows if r["split"] == "test"]) == len(analysis.y_test)
    by_index = {int(r["index"]): r for r in train}
    assert remove not in by_index
    moved = by_index[relabel]
    assert (moved["label"], moved["original_label"], moved["decision"]) == ("dog", "cat", "mislabeled")
    assert moved["path"].startswith("train/dog/")
    source_file = root / str(analysis.paths_train[relabel])
    assert os.path.samefile(out / moved["path"], source_file)  # --link: a hard link, not a copy

    rebuilt = Analysis.build(str(out), cache_dir=tmp_path / "cache2")
    assert len(rebuilt.y_train) == len(analysis.y_train) - 1
    assert len(rebuilt.y_test) == len(analysis.y_test)
    counts = np.bincount(analysis.y_train, minlength=2)
    expected = {"cat": counts[cat] - 1, "dog": counts[dog]}  # one cat became a dog, one dog was removed
    assert {c: int((rebuilt.y_train == k).sum()) for k, c in enumerate(rebuilt.classes)} == expected
    names = [Path(p).name for p in rebuilt.paths_train[rebuilt.y_train == rebuilt.classes.index("dog")]]
    assert source_file.name in names


def test_cleaned_export_refuses_non_empty_or_source_folders(pets, tmp_path, capsys):
    root, built = pets
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["export", str(built), "--format", "imagefolder", "--out", str(out)]) == 2
    assert "--force" in only_error_line(capsys)
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["export", str(built), "--format", "imagefolder", "--out", str(root / "clean")]) == 2
    assert "overlaps" in only_error_line(capsys)
    assert not (root / "clean").exists()
    assert main(["export", str(built), "--format", "imagefolder", "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "manifest.csv").is_file()


def test_cleaned_arrays_for_in_memory_sets(digits_analysis, tmp_path):
    a = digits_analysis
    log = ReviewLog(a.root_analysis, len(a.y_train), a.n_classes)
    log.record(5, int(a.y_train[5]), "mislabeled", new_label=(int(a.y_train[5]) + 1) % 10)
    log.record(7, int(a.y_train[7]), "remove")
    out = tmp_path / "clean"
    assert main(["export", str(a.directory), "--format", "imagefolder", "--out", str(out)]) == 0
    x, y = np.load(out / "x_train.npy"), np.load(out / "y_train.npy")
    assert x.shape == (len(a.y_train) - 1, 8, 8) and len(y) == len(x)
    assert y[5] == (a.y_train[5] + 1) % 10  # row 5 stays row 5: only row 7 is dropped
    assert np.array_equal(x[7], np.asarray(a.stack("images_train")[8]))
    assert np.array_equal(np.load(out / "y_test.npy"), a.y_test)
    assert (out / "classes.txt").read_text().split() == a.classes


# --- Label Studio tasks --------------------------------------------------------------------------------------------
def test_label_studio_tasks_for_a_confusion_pair(digits_analysis, tmp_path, capsys):
    a = digits_analysis
    pairs = [(t, p) for t, p in zip(a.y_train, a.pred_train) if t != p]
    true, predicted = (int(v) for v in pairs[0])
    out = tmp_path / "tasks.json"
    assert main(["export", str(a.directory), "--format", "label-studio", "--out", str(out),
                 "--queue", f"{a.classes[true]}->{a.classes[predicted]}", "--limit", "2"]) == 0
    tasks = json.loads(out.read_text())
    assert 1 <= len(tasks) <= 2
    for task in tasks:
        data = task["data"]
        i = data["coreclean_index"]
        assert a.y_train[i] == true and a.pred_train[i] == predicted
        assert data["label"] == a.classes[true] and data["image"].startswith("data:image/png;base64,")
        (prediction,) = task["predictions"]
        assert prediction["result"][0]["value"]["choices"] == [a.classes[predicted]]
        assert 0 < prediction["score"] <= 1
    config = (tmp_path / "tasks.config.xml").read_text()
    assert all(f'<Choice value="{c}"/>' in config for c in a.classes) and 'alias="remove"' in config


def test_label_studio_issue_queue_takes_the_thresholds(digits_analysis, tmp_path, capsys):
    from coreclean.quality.issues import flagged_samples

    a, out = digits_analysis, tmp_path / "tasks.json"
    assert main(["export", str(a.directory), "--format", "label-studio", "--out", str(out), "--queue", "issue:blurry",
                 "--threshold", "blurry=0.35"]) == 0
    flagged = flagged_samples(a, "blurry", {"blurry": 0.35})
    assert len(flagged) and [t["data"]["coreclean_index"] for t in json.loads(out.read_text())] == flagged.tolist()
    assert main(["export", str(a.directory), "--format", "label-studio", "--out", str(out), "--queue",
                 "issue:odd_size"]) == 2
    assert only_error_line(capsys).startswith("error: --queue issue:odd_size: ")


def test_label_studio_local_files_urls_and_queues(pets, tmp_path, capsys):
    root, built = pets
    out = tmp_path / "tasks.json"
    assert main(["export", str(built), "--format", "label-studio", "--out", str(out), "--queue", "indices:3,1",
                 "--document-root", str(root.parent)]) == 0
    tasks = json.loads(out.read_text())
    assert sorted(t["data"]["coreclean_index"] for t in tasks) == [1, 3]
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d=pets/{tasks[0]['data']['path']}"
    assert main(["export", str(built), "--format", "label-studio", "--out", str(out), "--queue", "dog",
                 "--url-prefix", "https://img.example/set/"]) == 0
    tasks = json.loads(out.read_text())
    assert tasks[0]["data"]["image"] == "https://img.example/set/" + tasks[0]["data"]["path"]
    for bad in ("bird", "indices:999", "cat->cat"):
        assert main(["export", str(built), "--format", "label-studio", "--out", str(out), "--queue", bad]) == 2
        assert "--queue" in only_error_line(capsys)


# --- Label Studio import -------------------------------------------------------------------------------------------
def annotated(tasks: list[dict], choices: list[str | None], *, cancelled: int | None = None) -> list[dict]:
    """Label Studio's JSON export of ``tasks`` with one annotation each (``None``: no annotation)."""
    exported = []
    for n, (task, choice) in enumerate(zip(tasks, choices), 1):
        annotations = [] if choice is None else [{
            "id": n, "completed_by": {"id": 1, "email": "ann@example.org"}, "was_cancelled": n == cancelled,
            "updated_at": f"2026-01-01T00:00:{n:02d}Z",
            "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]}]
        exported.append({"id": n, "data": task["data"], "annotations": annotations,
                         "predictions": task["predictions"]})
    return exported


def test_label_studio_import_records_decisions_once(digits_analysis, tmp_path, capsys):
    a = digits_analysis
    tasks = label_studio.tasks_for(a, np.arange(5))
    names = [a.classes[a.y_train[i]] for i in range(5)]
    other = a.classes[(a.y_train[1] + 1) % 10]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(annotated(tasks, [names[0], other, "remove", None, names[4]], cancelled=5)))

    assert main(["import", str(a.directory), "--from", "label-studio", str(export)]) == 0
    current = ReviewLog(a.root_analysis).current()
    assert {i: (d.decision, d.new_label, d.reviewer) for i, d in current.items()} == {
        0: ("ok", None, "ann@example.org"), 1: ("mislabeled", a.classes.index(other), "ann@example.org"),
        2: ("remove", None, "ann@example.org")}
    rows = len(ReviewLog(a.root_analysis).history(include_undone=True))
    assert main(["import", str(a.directory), "--from", "label-studio", str(export)]) == 0
    assert "0 new decisions" in capsys.readouterr().out
    assert len(ReviewLog(a.root_analysis).history(include_undone=True)) == rows


@pytest.mark.parametrize("mangle, says", [
    (lambda e: e.__setitem__(1, {**e[1], "data": {**e[1]["data"], "coreclean_analysis": "other-123"}}), "other-123"),
    (lambda e: e[1]["annotations"][0]["result"][0]["value"].__setitem__("choices", ["giraffe"]), "giraffe"),
    (lambda e: e[1]["data"].pop("coreclean_index"), "not a coreclean task"),
    (lambda e: e[1].__setitem__("annotations", "oops"), "not a list"),
])
def test_label_studio_import_is_all_or_nothing(digits_analysis, tmp_path, capsys, mangle, says):
    a = digits_analysis
    tasks = label_studio.tasks_for(a, np.arange(3))
    exported = annotated(tasks, ["remove", "remove", "remove"])
    mangle(exported)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(exported))
    assert main(["import", str(a.directory), "--from", "label-studio", str(export)]) == 2
    line = only_error_line(capsys)
    assert says in line and str(export) in line
    assert not (a.root_analysis / "reviews.sqlite").exists() or ReviewLog(a.root_analysis).current() == {}


@pytest.mark.parametrize("content", ["{not json", '{"tasks": []}', "[1, 2]", b"\xff\xfe\x00"])
def test_label_studio_import_refuses_malformed_files(digits_analysis, tmp_path, capsys, content):
    export = tmp_path / "export.json"
    export.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["import", str(digits_analysis.directory), "--from", "label-studio", str(export)]) == 2
    assert str(export) in only_error_line(capsys)


def test_label_studio_needs_images(tmp_path, write_embeddings, capsys):
    source = write_embeddings(tmp_path / "emb")
    built = Analysis.build(str(source), cache_dir=tmp_path / "cache").directory
    assert main(["export", str(built), "--format", "label-studio", "--out", str(tmp_path / "t.json")]) == 2
    assert "embeddings only" in only_error_line(capsys)
    assert not (tmp_path / "t.json").exists()
