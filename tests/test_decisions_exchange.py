"""The Decisions page's exchange: Label Studio tasks, labeling config and the cleaned dataset as downloads (the
payloads parsed and opened), and Import annotations — an upload previews what would change and records exactly
that after the button; a malformed file is one error and records nothing; read-only hosting refuses imports."""
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from coreclean import Analysis
from coreclean.review.exchange import downloads, label_studio
from coreclean.review.log import ReviewLog

PAGE = "pages/decisions.py"


@pytest.fixture
def payloads(monkeypatch):
    """{file name: bytes} of every download button the app renders (static data, or a deferred callable called)."""
    seen: dict[str, bytes] = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def spy_add(self, path_or_data, mimetype, coordinates, file_name=None, *args, **kwargs):
        if file_name:
            seen[file_name] = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
        return add(self, path_or_data, mimetype, coordinates, file_name, *args, **kwargs)

    def spy_deferred(self, data, mimetype, coordinates, file_name=None, *args, **kwargs):
        seen[file_name] = data
        return add_deferred(self, data, mimetype, coordinates, file_name, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", spy_add)
    monkeypatch.setattr(MediaFileManager, "add_deferred", spy_deferred)
    return seen


def opened(cache: Path) -> Analysis:
    return Analysis.load(next(p.parent for p in cache.rglob("meta.json")))


def button(at, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def export_of(analysis: Analysis, choices: list[str | None]) -> bytes:
    """Label Studio's JSON export of the first len(choices) samples' tasks, one annotation each (None: none)."""
    tasks = label_studio.tasks_for(analysis, np.arange(len(choices)))
    for n, (task, choice) in enumerate(zip(tasks, choices), 1):
        task["id"] = n
        task["annotations"] = [] if choice is None else [{
            "id": n, "completed_by": {"id": 1, "email": "ann@example.org"}, "updated_at": f"2026-01-01T00:00:{n:02d}Z",
            "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}]}]
    return json.dumps(tasks).encode()


def test_downloads_carry_tasks_config_and_cleaned_zip(run_app, cache, payloads):
    at = run_app({"ls_queue": "3"}, PAGE)
    at.number_input(key="ls_limit").set_value(4).run()
    a = opened(cache)
    name = a.meta["name"]
    labels = [b.label for b in at.get("download_button")]
    assert "Tasks (4, JSON)" in labels and "Cleaned dataset (ZIP)" in labels

    tasks = json.loads(payloads[f"{name}-tasks.json"]())
    assert [t["data"]["coreclean_index"] for t in tasks] == a.ranked(3)[:4].tolist()
    assert {t["data"]["label"] for t in tasks} == {"3"}
    assert '<Choice value="9"/>' in payloads[f"{name}-tasks.config.xml"].decode()

    ReviewLog(a.root_analysis, len(a.y_train), a.n_classes).record(5, int(a.y_train[5]), "remove")
    archive = zipfile.ZipFile(io.BytesIO(payloads[f"{name}-cleaned.zip"]()))
    manifest = archive.read(f"{name}-cleaned/manifest.csv").decode().splitlines()
    assert len(manifest) == 1 + len(a.y_train) - 1  # header, every training sample but the removed one
    assert not any(row.endswith(",train,5") for row in manifest)
    assert np.load(io.BytesIO(archive.read(f"{name}-cleaned/y_train.npy"))).shape == (len(a.y_train) - 1,)


def test_zip_refused_above_the_documented_size(digits_analysis):
    assert downloads.zip_refusal(digits_analysis) is None
    refusal = downloads.zip_refusal(digits_analysis, downloads.ZIP_MAX_BYTES + 1)
    assert "--format imagefolder" in refusal


def test_import_previews_then_records_exactly_those(run_app, cache):
    a = opened(cache)
    log = ReviewLog(a.root_analysis, len(a.y_train), a.n_classes)
    log.record(0, int(a.y_train[0]), "ok")  # already so: not a change
    other = a.classes[(a.y_train[1] + 1) % a.n_classes]
    upload = export_of(a, [a.classes[a.y_train[0]], other, "remove", None])

    at = run_app(page=PAGE)
    at.file_uploader[0].upload("project-export.json", upload, "application/json").run()
    assert not at.exception and not at.error
    rows = at.dataframe[-1].value
    assert rows["sample"].tolist() == [1, 2]
    assert rows["new decision"].tolist() == ["mislabeled", "remove"]
    assert rows["new label"].tolist() == [other, ""]
    assert rows["current decision"].tolist() == ["—", "—"] and set(rows["reviewer"]) == {"ann@example.org"}
    assert len(log.history(include_undone=True)) == 1  # a preview records nothing

    button(at, "Record 2 decisions").click().run()
    assert not at.exception
    current = log.current()
    assert {i: (d.decision, d.new_label, d.reviewer) for i, d in current.items()} == {
        0: ("ok", None, None), 1: ("mislabeled", a.classes.index(other), "ann@example.org"),
        2: ("remove", None, "ann@example.org")}
    assert "Recorded 2 decisions" in at.success[0].value


@pytest.mark.parametrize("content", [b"{not json", None])
def test_bad_upload_is_one_error_and_records_nothing(run_app, cache, content):
    a = opened(cache)
    if content is None:  # valid JSON naming a class the analysis does not have
        exported = json.loads(export_of(a, ["remove", "remove"]))
        exported[1]["annotations"][0]["result"][0]["value"]["choices"] = ["giraffe"]
        content = json.dumps(exported).encode()
    at = run_app(page=PAGE)
    at.file_uploader[0].upload("export.json", content, "application/json").run()
    assert len(at.error) == 1 and "export.json" in at.error[0].value and "Nothing recorded" in at.error[0].value
    assert not [b for b in at.button if b.label.startswith("Record")]
    assert not (a.root_analysis / "reviews.sqlite").exists() or ReviewLog(a.root_analysis).current() == {}


def test_read_only_refuses_import(run_app, monkeypatch):
    monkeypatch.setenv("CORECLEAN_READONLY", "1")
    at = run_app(page=PAGE)
    assert not at.file_uploader
    assert any("off on a shared dashboard" in i.value for i in at.info)
