import json
import os

import numpy as np
import pytest
from PIL import Image

from coreclean import load_source
from coreclean.data.fashion_mnist import read_idx


def test_digits_is_default_offline_source():
    ds = load_source("digits")
    assert ds.kind == "pixels" and ds.classes == [str(i) for i in range(10)]
    assert ds.pixels_train.dtype == np.uint8 and ds.pixels_train.shape[1:] == (8, 8)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert set(np.unique(ds.y_test)) == set(range(10))


def test_fashion_mnist_official_split(fashion_dir):
    ds = load_source(f"fashion-mnist:{fashion_dir}")
    assert ds.pixels_train.shape == (60000, 28, 28) and ds.pixels_test.shape == (10000, 28, 28)
    assert ds.classes[6] == "Shirt" and ds.classes[0] == "T-shirt/top"
    assert np.bincount(ds.y_train).tolist() == [6000] * 10


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="x.gz"):
        read_idx(bad)
    truncated = tmp_path / "t-idx1"
    truncated.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated)
    with pytest.raises(ValueError, match="apt-get install"):
        load_source(f"fashion-mnist:{tmp_path}")


def test_image_folder_reports_and_skips_bad_files(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "pets")
    (root / "cat" / "notes.txt").write_text("hello")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 garbage")
    outside = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(outside)
    os.symlink(outside, root / "dog" / "escape.png")
    ds = load_source(str(root))
    assert ds.classes == ["cat", "dog"]
    assert len(ds.y_train) + len(ds.y_test) == 12
    reasons = dict(ds.skipped)
    assert "not an image extension" in reasons["cat/notes.txt"]
    assert "unreadable image" in reasons["dog/broken.jpg"]
    assert "outside the dataset root" in reasons["dog/escape.png"]


def test_image_folder_uses_train_val_split(tmp_path, make_image_folder):
    make_image_folder(tmp_path / "data" / "train", per_class=4)
    make_image_folder(tmp_path / "data" / "val", per_class=2, seed=1)
    ds = load_source(str(tmp_path / "data"))
    assert len(ds.y_train) == 8 and len(ds.y_test) == 4
    assert all(p.startswith("train/") for p in ds.paths_train)
    assert all(p.startswith("val/") for p in ds.paths_test)


def test_embeddings_dir_with_names_and_paths(tmp_path, write_embeddings):
    d = write_embeddings(tmp_path / "emb")
    (d / "classes.json").write_text(json.dumps(["a", "b", "c"]))
    np.save(d / "img_train.npy", np.array([f"im/{i}.png" for i in range(60)]))
    ds = load_source(str(d))
    assert ds.kind == "embeddings" and ds.classes == ["a", "b", "c"]
    assert ds.paths_train[3] == "im/3.png" and ds.paths_test is None
    assert isinstance(ds.features_train, np.memmap)


def test_embeddings_dir_refuses_pickled_paths(tmp_path, write_embeddings):
    d = write_embeddings(tmp_path / "emb")
    np.save(d / "img_train.npy", np.array([f"{i}.png" for i in range(60)], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="img_train.npy.*pickled.*dtype=str"):
        load_source(str(d))


def test_embeddings_dir_mismatch_and_missing(tmp_path, write_embeddings):
    d = write_embeddings(tmp_path / "emb")
    np.save(d / "y_train.npy", np.zeros(59, int))
    with pytest.raises(ValueError, match="x_train.npy has 60 rows but .*y_train.npy has 59"):
        load_source(str(d))
    (d / "x_test.npy").unlink()
    np.save(d / "y_train.npy", np.arange(60) % 3)
    with pytest.raises(ValueError, match="x_test.npy: missing"):
        load_source(str(d))


def test_imagenet_ids_get_imagenet_names(tmp_path):
    d = tmp_path / "inet"
    d.mkdir()
    y = np.arange(1000)
    for split in ("train", "test"):
        np.save(d / f"x_{split}.npy", np.random.default_rng(0).normal(size=(1000, 4)).astype(np.float32))
        np.save(d / f"y_{split}.npy", y)
    ds = load_source(str(d))
    assert len(ds.classes) == 1000
    assert ds.classes[0] == "tench" and "notebook" in ds.classes and "laptop" in ds.classes


def test_unknown_source_says_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match="digits"):
        load_source(str(tmp_path / "nope"))


def test_tiny_image_folder_keeps_one_test_image_per_class(tmp_path, make_image_folder):
    ds = load_source(str(make_image_folder(tmp_path / "tiny", classes=("a", "b", "c", "d"), per_class=2)))
    assert sorted(ds.y_test.tolist()) == [0, 1, 2, 3] and sorted(ds.y_train.tolist()) == [0, 1, 2, 3]


def test_listed_files_agrees_with_inside_and_is_file(tmp_path):
    """The batched check the embeddings directory runs over its image list answers as ``inside`` + ``is_file``."""
    from coreclean.data.files import inside, listed_files

    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "images" / "deep").mkdir(parents=True)
    elsewhere.mkdir()
    for file in (root / "images" / "a.png", root / "images" / "deep" / "b.png", elsewhere / "secret.png"):
        file.write_bytes(b"x")
    os.symlink(root / "images" / "a.png", root / "images" / "link-in.png")
    os.symlink(elsewhere / "secret.png", root / "images" / "link-out.png")
    os.symlink(elsewhere, root / "images" / "folder-out")
    os.symlink(root / "images" / "gone.png", root / "images" / "dangling.png")
    relatives = ["images/a.png", "images/deep/b.png", "images/link-in.png", "images/link-out.png",
                 "images/folder-out/secret.png", "images/missing.png", "images/dangling.png", "images/deep",
                 "images/../../elsewhere/secret.png", "images/deep/../a.png", str(elsewhere / "secret.png"),
                 "images/..", "images/deep/."]
    expected = ["outside" if not inside(root, root / r) else None if (root / r).is_file() else "missing"
                for r in relatives]
    assert listed_files(root, relatives) == expected
    assert expected == [None, None, None, "outside", "outside", "missing", "missing", "missing", "outside", None,
                        "outside", "missing", "missing"]
