"""Incremental rebuilds (issue 28 item 4): a rebuild after images were added embeds only the new ones and takes the
rest from the earlier analysis, which stays untouched; changed or removed files are never reused."""
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from coreclean.build.params import BuildParams
from coreclean.build.pipeline import build_analysis
from coreclean.build.reuse import file_stats, find_reusable
from coreclean.cli.main import main
from coreclean.data import Dataset, load_source
from coreclean.data.decode import open_image
from coreclean.embedding import embed as embed_module
from coreclean.quality.thresholds import image_scores


BACKBONE = "shufflenet_v2_x0_5"  # any torchvision backbone reuses alike; this one embeds ~5x faster than resnet18


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A state_dict of BACKBONE (random, seeded: pretrained weights cannot be downloaded here). Read-only."""
    import torch
    from torchvision.models import shufflenet_v2_x0_5

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / f"{BACKBONE}.pt"
    torch.save(shufflenet_v2_x0_5(weights=None).state_dict(), path)
    return path


@pytest.fixture
def params(weights_file):
    return BuildParams(backbone=BACKBONE, weights=str(weights_file))


@pytest.fixture
def embedded_rows(monkeypatch):
    """Batch sizes the backbone ran on in this test: a forward hook on the real network, however it is loaded."""
    rows = []
    real = embed_module.load_backbone

    def counting(*args, **kwargs):
        loaded = real(*args, **kwargs)
        loaded.model.register_forward_hook(lambda module, inputs, output: rows.append(len(output)))
        return loaded

    monkeypatch.setattr(embed_module, "load_backbone", counting)
    return rows


def _add_image(path, seed, size=16):
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _by_path(directory, name):
    """{image path: row of ``name``_<split>} over both splits of an analysis."""
    return {str(p): row for split in ("train", "test")
            for p, row in zip(np.load(directory / f"paths_{split}.npy"), np.load(directory / f"{name}_{split}.npy"))}


def _files(directory):
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _other(cache, first):
    (directory,) = [d for d in cache.iterdir() if d != first and (d / "meta.json").exists()]
    return directory


def _meta(directory):
    return json.loads((directory / "meta.json").read_text())


def build_command(root, cache, weights_file, *options):
    return ["build", str(root), "--cache", str(cache), "--backbone", BACKBONE, "--weights", str(weights_file),
            *options]


def test_added_files_are_the_only_ones_embedded(tmp_path, cache, make_image_folder, params, weights_file,
                                                embedded_rows, capsys):
    root = make_image_folder(tmp_path / "pets", per_class=4)  # 2 classes x 4 images, a 20% hold-out split
    first = build_analysis(str(root), params, cache_dir=cache)
    assert sum(embedded_rows) == 8
    before = _files(first)
    for c in ("cat", "dog"):
        for i in range(2):
            _add_image(root / c / f"{c}_new{i}.png", seed=10 + i + (c == "dog"))
    embedded_rows.clear()
    assert main(build_command(root, cache, weights_file)) == 0
    assert f"reused 8 of 12 embeddings from {first}" in capsys.readouterr().out
    assert sum(embedded_rows) == 4  # the new files only
    second = _other(cache, first)
    meta = _meta(second)
    assert meta["reused"] == {"from": first.name, "rows": 8, "of": 12, "features": True, "quality": True}
    assert meta["n_train"] + meta["n_test"] == 12 and len(np.load(second / "importance.npy")) == meta["n_train"]
    old, new = _by_path(first, "x"), _by_path(second, "x")
    assert set(old) < set(new) and all(np.array_equal(old[p], new[p]) for p in old)  # wherever the split put them
    old_q, new_q = _by_path(first, "quality_raw"), _by_path(second, "quality_raw")
    assert all(np.array_equal(old_q[p], new_q[p], equal_nan=True) for p in old_q)
    assert _files(first) == before  # the earlier analysis is only read


def test_changed_and_removed_files_are_not_reused(tmp_path, cache, make_image_folder, params, embedded_rows):
    root = make_image_folder(tmp_path / "pets", per_class=4)
    first = build_analysis(str(root), params, cache_dir=cache)
    _add_image(root / "cat" / "cat_0.png", seed=99)  # same name, other content
    (root / "dog" / "dog_0.png").unlink()
    embedded_rows.clear()
    second = build_analysis(str(root), params, cache_dir=cache)
    assert sum(embedded_rows) == 1
    assert _meta(second)["reused"]["rows"] == 6 and _meta(second)["reused"]["of"] == 7
    old, new = _by_path(first, "x"), _by_path(second, "x")
    assert "dog/dog_0.png" not in new and not np.array_equal(old["cat/cat_0.png"], new["cat/cat_0.png"])
    changed_quality = _by_path(second, "quality_raw")["cat/cat_0.png"]
    np.testing.assert_allclose(changed_quality, image_scores(open_image(root / "cat" / "cat_0.png")), rtol=1e-6)


def test_no_reuse_embeds_every_image(tmp_path, cache, make_image_folder, params, weights_file, embedded_rows,
                                     capsys):
    root = make_image_folder(tmp_path / "pets", per_class=3)
    first = build_analysis(str(root), params, cache_dir=cache)
    _add_image(root / "cat" / "cat_new.png", seed=5)
    embedded_rows.clear()
    assert main(build_command(root, cache, weights_file, "--no-reuse")) == 0
    assert sum(embedded_rows) == 7 and "reused" not in capsys.readouterr().out
    assert "reused" not in _meta(_other(cache, first))


def test_random_init_weights_are_never_reused(tmp_path, cache, make_image_folder):
    root = make_image_folder(tmp_path / "pets", per_class=3)
    params = BuildParams(backbone=BACKBONE, weights=None)  # every load is another random network: no mixing
    first = build_analysis(str(root), params, cache_dir=cache)
    _add_image(root / "cat" / "cat_new.png", seed=5)
    dataset = load_source(str(root))
    resolved = params.resolved(dataset)
    assert (cache / first.name).exists()
    assert find_reusable(cache, dataset, resolved, file_stats(dataset), exclude=cache / "new") is None


def _write_embeddings_with_images(directory, n_train, n_test, seed=0):
    rng = np.random.default_rng(seed)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 3
        np.save(directory / f"x_{split}.npy", (rng.normal(size=(n, 5)) + y[:, None]).astype(np.float32))
        np.save(directory / f"y_{split}.npy", y)
        names = [f"{split}_{i}.png" for i in range(n)]
        for i, name in enumerate(names):
            if not (directory / "images" / name).exists():
                _add_image(directory / "images" / name, seed=1000 * (split == "test") + i, size=8)
        (directory / f"img_{split}.txt").write_text("\n".join(names) + "\n")


def test_embeddings_directory_with_appended_rows_reuses_the_old_rows(tmp_path, cache, monkeypatch):
    directory = tmp_path / "emb"
    _write_embeddings_with_images(directory, 30, 30)
    first = build_analysis(str(directory), cache_dir=cache)
    x_old, y_old = np.load(directory / "x_train.npy"), np.load(directory / "y_train.npy")
    x_old[0] += 1.0  # an old row edited in place
    extra = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    np.save(directory / "x_train.npy", np.concatenate([x_old, extra]))
    np.save(directory / "y_train.npy", np.concatenate([y_old, np.arange(6) % 3]))
    names = (directory / "img_train.txt").read_text().split() + [f"train_new{i}.png" for i in range(6)]
    for i in range(6):
        _add_image(directory / "images" / f"train_new{i}.png", seed=500 + i, size=8)
    (directory / "img_train.txt").write_text("\n".join(names) + "\n")
    _add_image(directory / "images" / "train_1.png", seed=77, size=12)  # an old row's image replaced
    decoded = []
    real = image_scores
    monkeypatch.setattr("coreclean.embedding.quality_pass.image_scores",
                        lambda image: decoded.append(1) or real(image))
    second = build_analysis(str(directory), cache_dir=cache)
    assert len(decoded) == 7  # the appended rows' images and the replaced one
    assert _meta(second)["reused"] == {"from": first.name, "rows": 59, "of": 66, "features": False,
                                       "quality": True}
    np.testing.assert_array_equal(np.load(second / "x_train.npy")[0], x_old[0])  # features: the source's, as edited
    old_q, new_q = _by_path(first, "quality_raw"), _by_path(second, "quality_raw")
    assert all(np.array_equal(old_q[p], new_q[p], equal_nan=True) for p in old_q if p != "train_1.png")
    assert not np.array_equal(old_q["train_1.png"], new_q["train_1.png"])  # 8 x 8 then 12 x 12
    # the map keeps the unchanged rows where they were (not row 0, edited, nor train_1, its image replaced) and
    # places the 6 appended ones and those two by their neighbours
    assert _meta(second)["map"]["kept"] == {"from": first.name, "points": 28}
    old_xy, new_xy = np.load(first / "map_xy.npy"), np.load(second / "map_xy.npy")
    assert np.array_equal(np.load(second / "map_rows.npy"), np.arange(36)) and len(old_xy) == 30
    for axis in range(2):
        slope, offset = np.polyfit(old_xy[2:, axis], new_xy[2:30, axis], 1)
        np.testing.assert_allclose(slope * old_xy[2:, axis] + offset, new_xy[2:30, axis], atol=1e-5)


def _pixels_dataset(pixels_train, y_train, pixels_test, y_test):
    digest = hashlib.sha256(pixels_train.tobytes() + pixels_test.tobytes()).hexdigest()[:16]
    return Dataset(name="tiny", classes=["a", "b"], y_train=y_train, y_test=y_test, pixels_train=pixels_train,
                   pixels_test=pixels_test, fingerprint=f"tiny:{digest}")


def test_in_memory_images_are_matched_by_their_pixels(cache, params, embedded_rows):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 255, (18, 12, 12), dtype=np.uint8), np.arange(18) % 2
    first = build_analysis(_pixels_dataset(images[:10], labels[:10], images[14:], labels[14:]), params,
                           cache_dir=cache)
    changed = images[:14].copy()
    changed[3] = 255 - changed[3]  # same row, other pixels: embedded again
    embedded_rows.clear()
    second = build_analysis(_pixels_dataset(changed, labels[:14], images[14:], labels[14:]), params,
                            cache_dir=cache)
    assert sum(embedded_rows) == 5  # rows 10-13 appended, row 3 changed
    assert _meta(second)["reused"]["rows"] == 13
    old, new = np.load(first / "x_train.npy"), np.load(second / "x_train.npy")
    unchanged = [0, 1, 2, 4, 5, 6, 7, 8, 9]
    np.testing.assert_array_equal(new[unchanged], old[unchanged])
    np.testing.assert_array_equal(np.load(second / "x_test.npy"), np.load(first / "x_test.npy"))


def test_a_damaged_earlier_analysis_is_passed_over(tmp_path, cache, make_image_folder, params, embedded_rows):
    root = make_image_folder(tmp_path / "pets", per_class=3)
    first = build_analysis(str(root), params, cache_dir=cache)
    x = np.load(first / "x_train.npy")
    np.save(first / "x_train.npy", x[:-1])  # truncated: one row short of meta's n_train
    _add_image(root / "cat" / "cat_new.png", seed=5)
    embedded_rows.clear()
    second = build_analysis(str(root), params, cache_dir=cache)
    assert sum(embedded_rows) == 7 and "reused" not in _meta(second)


def test_random_init_is_one_network_and_leaves_the_callers_rng_alone():
    """``--weights none``: every load is the same network, so an interrupted build that resumes describes its
    remaining chunks in the space of the chunks already written."""
    import torch

    from coreclean.embedding.registry import torchvision_backbone

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = torchvision_backbone(BACKBONE, None, "cpu").model.state_dict()
    assert torch.equal(torch.rand(3), expected)  # the caller's random stream is where it was
    second = torchvision_backbone(BACKBONE, None, "cpu").model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_the_overview_says_the_build_was_incremental(cache, run_app, digits_build, copy_analysis):
    meta_file = copy_analysis(digits_build, cache) / "meta.json"  # the copy the dashboard opens
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "reused": {"from": "digits-earlier", "rows": 1400, "of": 1437,
                                                         "features": True, "quality": True},
                                     "map": {**meta["map"], "kept": {"from": "digits-earlier", "points": 1400}}}))
    at = run_app(page="pages/overview.py")
    assert any("reused 1,400 of 1,437 embeddings from" in c.value and "digits-earlier" in c.value
               for c in at.caption), [c.value for c in at.caption]
    at = run_app(page="pages/map.py")  # and the map says which points kept their place
    assert any("1,400 points keep their place" in c.value for c in at.caption), [c.value for c in at.caption]
