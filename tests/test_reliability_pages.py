"""Reliability, third pass (issue 23), the dashboard's side: a damaged file is a message in the page that reads it
(the other pages keep working), a refused Apply & retrain is a message, and first contact shows the titled
navigation. Each test names the item of the issue it guards."""
import numpy as np
import pytest

from coreclean import Analysis
from coreclean.review.log import ReviewLog

PER_SAMPLE = ["images_train", "map_xy", "quality_train", "x_train", "neighbors_train", "outlier_train"]


def _truncate(analysis, name: str) -> None:
    path = analysis.directory / f"{name}.npy"
    np.save(path, np.load(path)[:-3])


# --- item 6: every stored per-sample array is checked by the store's loader, whichever reader asks ---------------
@pytest.mark.parametrize("name", PER_SAMPLE)
def test_a_truncated_array_is_named_by_the_loader(digits_analysis, name):
    _truncate(digits_analysis, name)
    analysis = Analysis.load(digits_analysis.directory)
    with pytest.raises(ValueError, match=rf"{name}\.npy: \d+ rows, but meta\.json says .*rebuild with"):
        getattr(analysis, name) if name == "x_train" else analysis.stack(name)


# --- item 6: ... and the page that reads it shows that as a message, while the other pages keep working -----------
@pytest.mark.parametrize("name, page", [("map_xy", "map"), ("quality_train", "overview"),
                                        ("outlier_train", "sample"), ("images_train", "review")])
def test_a_truncated_array_is_a_message_in_the_page(digits_analysis, run_app, name, page):
    _truncate(digits_analysis, name)
    at = run_app(page=f"pages/{page}.py")  # run_app fails on any exception (a red box)
    assert any(f"{name}.npy" in e.value and "rebuild with" in e.value for e in at.error), [e.value for e in at.error]
    at.switch_page("pages/importance.py").run()
    assert not at.exception and not at.error and at.title[0].value == "Importance"


# --- item 6: Apply & retrain whose decisions leave a class with one sample: a message, no traceback ---------------
def test_retrain_leaving_a_class_with_one_sample_is_a_message(digits_analysis, run_app):
    log = ReviewLog(digits_analysis.directory, len(digits_analysis.y_train), digits_analysis.n_classes)
    log.keep_first([np.flatnonzero(digits_analysis.y_train == 1).tolist()], digits_analysis.y_train)
    at = run_app(page="pages/decisions.py")
    next(b for b in at.button if b.label == "Apply & retrain").click().run()
    assert not at.exception, [e.value for e in at.exception]
    failed = [e.value for e in at.error if e.value.startswith("Apply & retrain failed")]
    assert failed and "single sample" in failed[0], [e.value for e in at.error]
    assert not (digits_analysis.directory / "revisions").exists() or not any(
        (digits_analysis.directory / "revisions").glob("*/meta.json"))


# --- item 8: export reads the review log without writing anything (an analysis on a read-only mount) --------------
def test_export_from_a_read_only_analysis(digits_analysis, tmp_path, capsys):
    import sqlite3
    import subprocess

    from coreclean.cli.main import main

    directory = digits_analysis.directory
    log = ReviewLog(directory, len(digits_analysis.y_train), digits_analysis.n_classes)
    log.record(3, int(digits_analysis.y_train[3]), "remove")
    with sqlite3.connect(directory / "reviews.sqlite") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    frozen = [directory / "reviews.sqlite", directory]  # the log and its folder: nothing can be created or changed
    if subprocess.run(["chattr", "+i", *map(str, frozen)], capture_output=True, check=False).returncode:
        pytest.skip("chattr +i needs root and a filesystem with attributes")
    try:
        code = main(["export", str(directory), "--out", str(tmp_path / "issues.csv")])
    finally:
        subprocess.run(["chattr", "-i", *map(str, frozen)], check=True)
    assert code == 0, capsys.readouterr().err
    rows = (tmp_path / "issues.csv").read_text().splitlines()
    assert rows[4].split(",")[rows[0].split(",").index("decision")] == "remove"  # header, then samples 0..3


# --- item 8: no CSV cell a spreadsheet would run as a formula (OWASP), in every CSV coreclean writes ----------------
def test_csv_cells_are_never_formulas(digits_analysis, tmp_path, capsys):
    import csv
    import json

    from coreclean.cli.main import main
    from coreclean.data.files import csv_safe
    from coreclean.review import export

    assert csv_safe(["=1+1", "+A1", "-2+3", "@SUM(A1)", "\tx", "-0.5", "+1e3", -1, "plain", ""]) == \
        ["'=1+1", "'+A1", "'-2+3", "'@SUM(A1)", "'\tx", "-0.5", "+1e3", -1, "plain", ""]
    formula = '=HYPERLINK("http://example.invalid","click")'
    meta_file = digits_analysis.directory / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "classes": [formula, *meta["classes"][1:]]}))
    assert main(["export", str(digits_analysis.directory), "--out", str(tmp_path / "issues.csv")]) == 0, \
        capsys.readouterr().err
    with open(tmp_path / "issues.csv", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert "'" + formula in cells and formula not in cells
    assert not [c for c in cells if c[:1] in tuple("=+@") or (c[:1] == "-" and not c[1:2].isdigit())]
    decision = ReviewLog(digits_analysis.directory, len(digits_analysis.y_train), 10).record(
        0, int(digits_analysis.y_train[0]), "mislabeled", new_label=0 if digits_analysis.y_train[0] else 1)
    decided = ReviewLog(digits_analysis.directory).current()
    names = [formula, *meta["classes"][1:]]
    for text in (export.corrections_csv(decided, names, ["-x.png"] * 1437),
                 export.cleaned_labels_csv(["@x.png"] * 1437, digits_analysis.y_train, decided, names)):
        cells = [cell for row in csv.reader(text.splitlines()) for cell in row]
        assert not [c for c in cells if c[:1] in tuple("=+@-")], decision


# --- item 8: odd inputs get an accurate error line ------------------------------------------------------------------
def test_a_text_file_named_npy_is_called_a_text_file(tmp_path, capsys):
    from coreclean.cli.main import main

    (tmp_path / "x.npy").write_text("0.1,0.2\n0.3,0.4\n")
    np.save(tmp_path / "y.npy", np.arange(2))
    assert main(["rank", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--out", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "x.npy: not a .npy file: a text file" in err and "pickle" not in err, err


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_features_far_outside_float32_distances_are_an_error_line(tmp_path, capsys, scale):
    from coreclean.cli.main import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", (rng.normal(size=(60, 8)) * scale).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(60) % 3)
    assert main(["rank", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--out", str(tmp_path / "out.csv")]) == 2  # before: "Eigenvalues did not converge"
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "rescale the features" in err, err
    assert not (tmp_path / "out.csv").exists()


def test_image_paths_outside_the_root_or_missing_are_listed_as_skipped(tmp_path, write_embeddings,
                                                                       make_image_folder):
    from coreclean.data import load_source

    directory = write_embeddings(tmp_path / "emb", n=6)
    make_image_folder(directory / "images", classes=("a",), per_class=4)
    (tmp_path / "secret.png").write_bytes((directory / "images" / "a" / "a_0.png").read_bytes())
    paths = ["a/a_0.png", "a/a_1.png", "../../secret.png", "/etc/hostname", "a/gone.png", "a/a_2.png"]
    np.save(directory / "img_train.npy", np.asarray(paths))
    skipped = dict(load_source(str(directory)).skipped)
    assert set(skipped) == {"../../secret.png", "/etc/hostname", "a/gone.png"}, skipped
    assert "outside" in skipped["/etc/hostname"] and "missing" in skipped["a/gone.png"]


def test_a_home_folder_is_refused_without_a_scan(tmp_path, monkeypatch):
    from coreclean.data import image_folder, load_source

    with pytest.raises(ValueError, match="a home folder"):  # ?path=~ in the dashboard: the server user's home
        load_source("~")
    monkeypatch.setattr(image_folder, "_home_folders", lambda: {tmp_path.resolve()})
    (tmp_path / "projects").mkdir()
    with pytest.raises(ValueError, match="a home folder"):
        load_source(str(tmp_path))
    # a folder that merely holds many files that are not images: refused at the bound, not walked to the end
    monkeypatch.setattr(image_folder, "MAX_NOT_IMAGES", 20)
    for name in ("cache", "documents"):
        (tmp_path / "other" / name).mkdir(parents=True)
        for i in range(15):
            (tmp_path / "other" / name / f"note{i}.txt").write_text("x")
    with pytest.raises(ValueError, match="more than 20 files that are not images"):
        load_source(str(tmp_path / "other"))


# --- item 9: first contact: the titled navigation from the first moment, /overview opens the Overview -------------
def test_first_contact_shows_the_titled_navigation(tmp_path, serve_dashboard, browser, make_image_folder):
    from urllib.parse import quote, urlparse

    titles = ["Overview", "Confusion", "Importance", "Review", "Decisions", "Map", "Duplicates", "Sample"]
    folder = make_image_folder(tmp_path / "pets")  # a small first build (the server waits for it when stopped)
    with serve_dashboard(tmp_path / "empty-cache") as url:  # a fresh server: its first run is Streamlit's legacy mode
        page = browser.new_page()
        page.goto(f"{url}/overview?path={quote(str(folder))}")
        page.get_by_text("Building analysis").first.wait_for()  # the first build runs
        links = page.locator("[data-testid=stSidebarNav] a").all_inner_texts()
        assert [text.split("\n")[-1] for text in links] == titles, links  # before: dashboard, confusion, ...
        assert "Page not found" not in page.locator("body").inner_text()
        assert urlparse(page.url).path in ("/overview", "/")  # the default page may show as the root
        # a second visitor, now that the server has left the legacy mode: /overview is the Overview, not "Page not
        # found" (the default page lives at the root URL), and the link's parameters are kept
        second = browser.new_page()
        second.goto(f"{url}/overview?path={quote(str(folder))}&reviewer=ann")
        second.get_by_text("Building analysis").first.wait_for()
        assert "Page not found" not in second.locator("body").inner_text()
        assert urlparse(second.url).path == "/" and "reviewer=ann" in second.url, second.url
        second.close()
        page.close()


# --- item 8: class names are plain text wherever the dashboard writes Markdown ----------------------------------
def test_class_names_render_as_plain_text(digits_analysis, run_app):
    import json

    from ui.widgets import plain

    meta_file = digits_analysis.directory / "meta.json"
    meta = json.loads(meta_file.read_text())
    names = [f"[**{i}**](http://evil.invalid/{i})" for i in range(len(meta["classes"]))]  # a link, bold
    meta_file.write_text(json.dumps({**meta, "classes": names}))
    for page in ("pages/confusion.py", "pages/sample.py", "pages/duplicates.py"):
        at = run_app(page=page)
        texts = [e.value for kind in ("subheader", "markdown", "caption", "info") for e in getattr(at, kind)]
        assert not [t for t in texts if "](http://evil" in t or "[**" in t], (page, texts)
    at = run_app(page="pages/confusion.py")
    heading = next(h.value for h in at.subheader if "predicted as" in h.value)
    assert any(plain(name) in heading for name in names), heading
