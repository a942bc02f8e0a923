"""A round trip through a real Label Studio server: ``coreclean export --format label-studio`` → a project made
with ``label-studio-sdk`` → annotations through the API → Label Studio's JSON export → ``coreclean import`` → the
review log holds exactly the annotated decisions.

Label Studio pins numpy, pyarrow and python-dateutil below this project's versions, and so does its SDK, so both
live in their own virtual environment (``requirements-integrations.txt``; ``.ci/run`` makes it at
``.venv-labelstudio``, or point ``CORECLEAN_LABEL_STUDIO`` at a ``label-studio`` executable). The server runs from
there on a free localhost port with SQLite in a temporary data directory; the SDK calls run in that environment's
Python (a script written by this module); this side talks to neither except through files and HTTP. A first
start runs Django's migrations (minutes on a busy machine), so the server starts from a migrated database
template kept beside the environment (made once, by ``.ci/run`` or by the first run here).
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.server import free_port, running
from coreclean.cli.main import main
from coreclean.review.log import ReviewLog

ROOT = Path(__file__).resolve().parent.parent
EXECUTABLE = Path(os.environ.get("CORECLEAN_LABEL_STUDIO", ROOT / ".venv-labelstudio" / "bin" / "label-studio"))
TEMPLATE = EXECUTABLE.parent.parent / "coreclean-migrated"  # a data dir whose SQLite database is migrated
START_CAP_S = 600  # migrations on a cold, busy machine; the test waits on /health, never on a clock
TOKEN = "coreclean-test-token"

DRIVER = r'''
import json, sys
from label_studio_sdk import LabelStudio

spec = json.load(open(sys.argv[1]))
client = LabelStudio(base_url=spec["url"], api_key=spec["token"])
project = client.projects.create(title="coreclean round trip", label_config=open(spec["config"]).read())
client.projects.import_tasks(id=project.id, request=json.load(open(spec["tasks"])))
by_sample = {t.data["coreclean_index"]: t.id for t in client.tasks.list(project=project.id)}
assert len(by_sample) == spec["n_tasks"], by_sample
for sample, choice in spec["answers"].items():
    if choice is None:  # the annotator skips the task
        client.annotations.create(id=by_sample[int(sample)], result=[], was_cancelled=True)
        continue
    client.annotations.create(id=by_sample[int(sample)], was_cancelled=False, result=[{
        "from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [choice]}}])
with open(spec["export"], "wb") as out:
    for chunk in client.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=True):
        out.write(chunk)
'''


def _require_label_studio() -> None:
    if not EXECUTABLE.is_file():
        reason = (f"label-studio is not installed at {EXECUTABLE}: python3 -m venv .venv-labelstudio && "
                  ".venv-labelstudio/bin/pip install -r requirements-integrations.txt (or set CORECLEAN_LABEL_STUDIO)")
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs it (.ci/run): a missing server there is a broken install
        pytest.skip(reason)


def _environment(data_dir: Path, document_root: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), DJANGO_DB="sqlite", COLLECT_ANALYTICS="false",
               LATEST_VERSION_CHECK="false",  # no PyPI lookup at start (offline machines wait 10 s for it)
               LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
               LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(document_root))
    return env


def _migrated_template(env: dict) -> Path:
    """The migrated database, made once per Label Studio install (``label-studio version`` migrates and exits)."""
    database = TEMPLATE / "label_studio.sqlite3"
    if not database.is_file():
        work = TEMPLATE.with_name(TEMPLATE.name + f".partial-{os.getpid()}")
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run([str(EXECUTABLE), "version", "--data-dir", str(work)], check=True, capture_output=True,
                       env={**env, "LABEL_STUDIO_BASE_DATA_DIR": str(work)}, timeout=START_CAP_S)
        if TEMPLATE.exists():  # another run made it meanwhile
            shutil.rmtree(work, ignore_errors=True)
        else:
            os.replace(work, TEMPLATE)
    return database


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A real Label Studio server on a free localhost port: (base URL, API token). Stopped after the module."""
    _require_label_studio()
    base = tmp_path_factory.mktemp("label-studio")
    data_dir, document_root = base / "data", base / "files"
    data_dir.mkdir()
    document_root.mkdir()
    env = _environment(data_dir, document_root)
    started = time.perf_counter()
    shutil.copy2(_migrated_template(env), data_dir / "label_studio.sqlite3")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(base / "server.log", "wb") as log, running(
            [str(EXECUTABLE), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir), "--username", "annotator@coreclean.test", "--password", "not-a-secret-1",
             "--user-token", TOKEN, "--enable-legacy-api-token"],
            f"{url}/health", "label-studio", env=env, log=log, timeout=START_CAP_S):
        print(f"label-studio answered /health after {time.perf_counter() - started:.1f} s", file=sys.stderr)
        yield url, TOKEN


def test_round_trip_through_a_real_label_studio(label_studio, digits_analysis, tmp_path, capsys):
    url, token = label_studio
    a = digits_analysis
    tasks = tmp_path / "tasks.json"
    assert main(["export", str(a.directory), "--format", "label-studio", "--out", str(tasks), "--limit", "6"]) == 0
    samples = [t["data"]["coreclean_index"] for t in json.loads(tasks.read_text())]
    assert len(samples) == 6
    name = a.classes
    kept, relabelled, removed, skipped = samples[:4]  # samples[4:] stay unannotated
    new_class = (int(a.y_train[relabelled]) + 3) % 10
    answers = {kept: name[a.y_train[kept]], relabelled: name[new_class], removed: "remove", skipped: None}
    spec = tmp_path / "spec.json"
    export = tmp_path / "export.json"
    spec.write_text(json.dumps({"url": url, "token": token, "config": str(tmp_path / "tasks.config.xml"),
                                "tasks": str(tasks), "n_tasks": len(samples), "export": str(export),
                                "answers": {str(k): v for k, v in answers.items()}}))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run = subprocess.run([str(EXECUTABLE.parent / "python"), str(driver), str(spec)], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(json.loads(export.read_text())) == len(samples)

    assert main(["import", str(a.directory), "--from", "label-studio", str(export)]) == 0
    current = ReviewLog(a.root_analysis).current()
    assert {i: (d.decision, d.new_label) for i, d in current.items()} == {
        kept: ("ok", None), relabelled: ("mislabeled", new_class), removed: ("remove", None)}
    # Label Studio's JSON export names the annotator by user id (the server's first user: the one started with)
    assert {d.reviewer for d in current.values()} == {"label-studio user 1"}
    rows = ReviewLog(a.root_analysis).history(include_undone=True)
    assert main(["import", str(a.directory), "--from", "label-studio", str(export)]) == 0
    assert ReviewLog(a.root_analysis).history(include_undone=True) == rows  # importing again changes nothing
