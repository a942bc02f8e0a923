"""Image-quality issues through a real build (ResNet18 decode loop, pixel sources, precomputed embeddings), the
issues export (CLI and table) and the Overview counts."""
import csv

import numpy as np
import pytest
from PIL import Image, ImageFilter

from coreclean import Analysis, load_source
from coreclean.cli.main import main
from coreclean.embedding.embed import embed_split
from coreclean.review.export import issues_csv, issues_table, logged_decisions
from coreclean.quality.issues import flagged_samples, issue_counts, parse_thresholds, thresholds_from_params
from coreclean.quality.thresholds import ISSUE_NAMES, RAW_COLUMNS, flags, issue_names
from coreclean.embedding.quality_pass import quality_split
from coreclean.review.log import ReviewLog

INJECT = {  # issue -> how a normal image is made to show it
    "dark": lambda im: Image.fromarray((np.asarray(im) * 0.15).astype(np.uint8)),
    "light": lambda im: Image.fromarray((255 - (255 - np.asarray(im, float)) * 0.15).astype(np.uint8)),
    "blurry": lambda im: im.filter(ImageFilter.GaussianBlur(3)),
    "low_information": lambda im: Image.new("RGB", im.size, (90, 140, 60)),
    "grayscale": lambda im: im.convert("L"),
    "odd_size": lambda im: im.resize((im.width // 4, im.height // 4), Image.NEAREST),
    "odd_aspect_ratio": lambda im: im.resize((im.width * 2, im.height // 2), Image.NEAREST),
}
CLASSES = ("cat", "dog")


def texture(size, seed) -> Image.Image:
    """Sharp 6-px colour blocks in mid-range values: an image with no quality issue."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 226, (size[1] // 6 + 1, size[0] // 6 + 1, 3), dtype=np.uint8)
    return Image.fromarray(blocks.repeat(6, 0).repeat(6, 1)[:size[1], :size[0]])


def issue_folder(root, normal_per_class=8):
    """ImageFolder train/ + val/: normal 56-72 px 4:3 textures, plus two images per issue type in train/.
    Returns {relative path: 'normal' or the injected issue}."""
    truth, n = {}, 0
    for split, count in (("train", normal_per_class), ("val", 3)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                width = 56 + 4 * (n % 5)
                path = root / split / name / f"{name}_{i}.png"
                texture((width, width * 3 // 4), n).save(path)
                truth[str(path.relative_to(root))] = "normal"
                n += 1
    for k, (issue, make) in enumerate(INJECT.items()):
        for j, name in enumerate(CLASSES):
            path = root / "train" / name / f"{issue}_{j}.png"
            make(texture((64, 48), 1000 + 10 * k + j)).save(path)
            truth[str(path.relative_to(root))] = issue
    return truth


@pytest.fixture
def issues_build(tmp_path, cache, weights_file):
    truth = issue_folder(tmp_path / "pets")
    analysis = Analysis.build(str(tmp_path / "pets"), cache_dir=cache, weights=str(weights_file))
    return analysis, truth


def test_each_injected_issue_is_flagged_and_normal_images_are_not(issues_build):
    analysis, truth = issues_build
    assert analysis.meta["quality"] == "files"
    scores = np.asarray(analysis.stack("quality_train"))
    assert scores.shape == (analysis.meta["n_train"], len(ISSUE_NAMES))
    assert analysis.stack("quality_raw_train").shape == (analysis.meta["n_train"], len(RAW_COLUMNS))
    assert analysis.stack("quality_test").shape == (analysis.meta["n_test"], len(ISSUE_NAMES))
    flagged = flags(scores)
    kinds = np.array([truth[p] for p in analysis.paths_train])
    for j, issue in enumerate(ISSUE_NAMES):
        assert flagged[kinds == issue, j].all(), (issue, scores[kinds == issue, j])
    assert not flagged[kinds == "normal"].any(), scores[kinds == "normal"]
    # dark and light images are nearly low-information too (about 0.6 for these); nothing else overlaps
    also = {"low_information": {"dark", "light"}}
    for j, issue in enumerate(ISSUE_NAMES):  # the Review page's query: the injected ones, most severe first
        rows = flagged_samples(analysis, issue)
        assert {issue} <= set(kinds[rows]) <= {issue} | also.get(issue, set()), (issue, kinds[rows])
        assert np.all(np.diff(scores[rows, j]) <= 0)
    counts = issue_counts(analysis).set_index("issue")["flagged"]
    assert all(counts[name] == 2 for name in ISSUE_NAMES if name != "low_information")


def test_quality_rows_from_the_loop_equal_a_separate_decode_and_resume(tmp_path, weights_file, monkeypatch):
    issue_folder(tmp_path / "pets", normal_per_class=2)
    dataset = load_source(str(tmp_path / "pets"))
    monkeypatch.setattr("coreclean.embedding.embed.CHUNK", 4)
    out = tmp_path / "work"
    embed_split(dataset, "train", out, weights=str(weights_file))
    written = sorted(out.glob("quality_*.npy"))
    assert len(written) == -(-len(dataset.y_train) // 4)
    from_loop = quality_split(dataset, "train", out)
    written[1].unlink()  # a chunk embedded by an older run, or lost: only its quality is recomputed
    monkeypatch.setattr("coreclean.embedding.embed.resnet18_backbone", lambda *a, **k: 1 / 0)
    again = quality_split(dataset, "train", out)
    np.testing.assert_array_equal(from_loop, again)
    fresh = quality_split(dataset, "train", tmp_path / "decode-only")  # no embedding at all: decodes each file
    np.testing.assert_array_equal(from_loop, fresh)


def test_odd_image_modes_and_broken_files(tmp_path, cache, weights_file):
    truth = issue_folder(tmp_path / "pets", normal_per_class=3)
    deep = np.asarray(texture((64, 48), 7).convert("L"), np.uint16) * 40  # 16-bit, at most 10200 of 65535
    Image.fromarray(deep).save(tmp_path / "pets" / "train" / "cat" / "deep16.png")
    (tmp_path / "pets" / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    analysis = Analysis.build(str(tmp_path / "pets"), cache_dir=cache, weights=str(weights_file))
    assert any("broken.png" in file for file, _ in analysis.meta["skipped"])
    paths = list(analysis.paths_train)
    assert len(paths) == sum(p.startswith("train/") for p in truth) + 1
    row = np.asarray(analysis.stack("quality_train"))[paths.index("train/cat/deep16.png")]
    assert row[ISSUE_NAMES.index("dark")] > 0.68 and row[ISSUE_NAMES.index("grayscale")] == 1.0  # by 16-bit range


def test_in_memory_sources_get_the_issues_that_make_sense(digits_analysis):
    assert digits_analysis.meta["quality"] == "pixels"
    scores = np.asarray(digits_analysis.stack("quality_train"))
    assert scores.shape == (len(digits_analysis.y_train), len(ISSUE_NAMES))
    memory = issue_names("pixels")
    assert np.isfinite(scores[:, [ISSUE_NAMES.index(n) for n in memory]]).all()
    assert np.isnan(scores[:, [ISSUE_NAMES.index(n) for n in ISSUE_NAMES if n not in memory]]).all()
    assert list(issue_counts(digits_analysis)["issue"]) == memory
    with pytest.raises(ValueError, match="issue='odd_size'"):
        flagged_samples(digits_analysis, "odd_size")
    table = issues_table(digits_analysis)
    assert [c for c in table.columns if c.endswith("_score")] == [f"{n}_score" for n in memory]
    assert "path" not in table.columns


def test_precomputed_embeddings_with_and_without_image_paths(tmp_path, cache, write_embeddings):
    plain = write_embeddings(tmp_path / "plain", n=30)
    analysis = Analysis.build(str(plain), cache_dir=cache)
    assert analysis.meta["quality"] is None and analysis.stack("quality_train") is None
    assert issue_counts(analysis).empty and not [c for c in issues_table(analysis).columns if "issue" in c]

    with_images = write_embeddings(tmp_path / "with", n=30)
    (with_images / "images").mkdir()
    for split in ("train", "test"):
        names = [f"{split}_{i}.png" for i in range(30)]
        for i, name in enumerate(names[:-1]):  # the last image of each split is missing
            image = texture((40, 30), i)
            (INJECT["dark"](image) if i == 0 else image).save(with_images / "images" / name)
        names[1] = "../outside.png"  # exists, but outside the image root: never read
        (with_images / f"img_{split}.txt").write_text("\n".join(names) + "\n")
    texture((40, 30), 99).save(with_images / "outside.png")
    analysis = Analysis.build(str(with_images), cache_dir=cache)
    scores = np.asarray(analysis.stack("quality_train"))
    assert analysis.meta["quality"] == "files" and analysis.meta["n_train"] == 30  # a missing image drops no sample
    assert np.isnan(scores[[1, -1]]).all() and np.isfinite(np.delete(scores, [1, 29], axis=0)).all()
    assert list(flagged_samples(analysis, "dark")) == [0]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_export_cli_one_row_per_training_sample(tmp_path, cache, weights_file, capsys):
    truth = issue_folder(tmp_path / "pets", normal_per_class=3)
    out = tmp_path / "issues.csv"
    assert main(["export", str(tmp_path / "pets"), "--cache", str(cache), "--weights", str(weights_file),
                 "--out", str(out)]) == 0
    rows = read_csv(out)
    analysis = Analysis.load(next(cache.iterdir()))
    quality = [f"{prefix}{name}{suffix}" for name in ISSUE_NAMES
               for prefix, suffix in (("", "_score"), ("is_", "_issue"))]
    assert list(rows[0]) == ["index", "path", "label", "label_name", "predicted", "predicted_name", "p_label",
                             "importance", "outlier", "duplicate_of", *quality, "decision", "new_label",
                             "suggested_label", "suggested_name", "suggestion_confidence", "p_label_wrong"]
    assert not any(row["suggested_label"] or row["p_label_wrong"] for row in rows)  # no audit stored: empty
    assert len(rows) == len(analysis.y_train) == sum(p.startswith("train/") for p in truth)
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    for row in rows:
        kind = truth[row["path"]]
        if kind == "normal":
            assert "True" not in row.values()
        else:
            assert row[f"is_{kind}_issue"] == "True"
        assert row["label_name"] == CLASSES[int(row["label"])] and row["decision"] == ""
    assert "flagged: dark 2" in capsys.readouterr().out

    dark = next(int(r["index"]) for r in rows if truth[r["path"]] == "dark")
    ReviewLog(analysis.directory, len(analysis.y_train), 2).record(dark, int(analysis.y_train[dark]), "mislabeled",
                                                                   new_label=1 - int(analysis.y_train[dark]))
    assert main(["export", str(analysis.directory), "--out", str(out), "--threshold", "dark=0.95",
                 "--threshold", "blurry=1"]) == 0
    rows = read_csv(out)
    assert rows[dark]["decision"] == "mislabeled" and rows[dark]["new_label"] == str(1 - int(analysis.y_train[dark]))
    assert not any(r["is_dark_issue"] == "True" or r["is_blurry_issue"] == "True" for r in rows)
    assert out.read_bytes().decode() == issues_csv(issues_table(analysis, logged_decisions(analysis),
                                                      {"dark": 0.95, "blurry": 1.0}))


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/missing/issues.csv"], "does not exist"),
    (["--out", "{tmp}"], "is a directory"),
    (["--out", "{tmp}/issues.csv", "--threshold", "dark"], "ISSUE=VALUE"),
    (["--out", "{tmp}/issues.csv", "--threshold", "darkness=0.5"], "unknown issue 'darkness'"),
    (["--out", "{tmp}/issues.csv", "--threshold", "dark=1.5"], "dark=1.5"),
])
def test_export_bad_arguments_fail_before_any_work(tmp_path, cache, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["export", "digits", "--cache", str(cache), *args]) == 2
    assert message in capsys.readouterr().err
    assert list(cache.iterdir()) == []  # nothing was built


def test_export_of_a_retrain_revision(digits_analysis, tmp_path):
    from coreclean.build.retrain import retrain

    log = ReviewLog(digits_analysis.directory, len(digits_analysis.y_train), digits_analysis.n_classes)
    log.record(5, int(digits_analysis.y_train[5]), "remove")
    revision = Analysis.load(retrain(digits_analysis, log.current()).directory)
    table = issues_table(revision, logged_decisions(revision))
    assert len(table) == len(digits_analysis.y_train)
    assert table.loc[5, "removed"] and table.loc[5, "decision"] == "remove" and table["removed"].sum() == 1
    assert "blurry_score" in table.columns  # quality arrays come from the original build
    assert 5 not in flagged_samples(revision, "blurry", {"blurry": 0.0})


def test_thresholds_from_links_and_the_command_line():
    assert thresholds_from_params({"t_dark": "0.9", "t_blurry": "x", "t_light": "2", "dark": "0.1"}) == {"dark": 0.9}
    assert parse_thresholds(["dark=0.8", "odd_size = 0.7"]) == {"dark": 0.8, "odd_size": 0.7}
    assert parse_thresholds(None) == {}


def test_overview_counts_issues_and_links_to_the_review_grid(tmp_path, cache, weights_file, run_app, monkeypatch):
    issue_folder(tmp_path / "pets", normal_per_class=3)
    monkeypatch.setenv("CORECLEAN_WEIGHTS", str(weights_file))
    at = run_app({"path": str(tmp_path / "pets"), "t_dark": "0.95"})
    counts = next(df.value for df in at.dataframe if "flagged" in df.value.columns)
    assert list(counts["issue"]) == list(ISSUE_NAMES)
    flagged = dict(zip(counts["issue"], counts["flagged"]))
    assert flagged.pop("dark") == 0 and flagged.pop("low_information") >= 2  # dark/light ones may be, too
    assert flagged == {"light": 2, "blurry": 2, "grayscale": 2, "odd_size": 2, "odd_aspect_ratio": 2}
    assert counts.set_index("issue").loc["dark", "threshold"] == 0.95
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    assert links["Review 2 blurry"].page == "review" and not links["Review 2 blurry"].disabled
    assert "issue=blurry" in links["Review 2 blurry"].query_string
    assert "path=" in links["Review 2 blurry"].query_string  # the link keeps the dataset
    assert links["Review 0 dark"].disabled
    assert at.get("download_button")
