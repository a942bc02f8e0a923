"""Incremental rebuilds (issue 28 item 4): a Fashion-MNIST source of N images is built, ADD more are added, and the
rebuild embeds only those; compared with a full build of the same N + ADD images.

    python bench/incremental.py [--n 6000] [--add 100] [--backbone resnet18] [--work DIR]
                                [--no-folder] [--embeddings] [--pixels] [--pixels-n 59000] [--pixels-add 1000]

The images are Fashion-MNIST's 60,000 training then 10,000 test images (70,000 in all, so N + ADD may exceed 60k).
Sources (each built three times, timed end to end in this process, stage seconds from ``meta["stages"]``):

* the ImageFolder (default): the first N images as ``<class>/<index>.png``, then ADD more files. No train/test
  sub-folders, so the build holds out a stratified 20%, which reshuffles when files are added: reuse matches files
  by path across both splits. Backbone: any torchvision classification model with a seeded random state_dict
  written here (pretrained weights cannot be downloaded; the cost of embedding does not depend on their values).
* ``--embeddings``: an embeddings directory (``x_*.npy``, ``y_*.npy``, ``img_*.txt`` paths to PNG files under
  ``images/``) whose test rows are the last 10,000 of the N images and whose train rows are the rest, then ADD rows
  appended to the train arrays. The features are a seeded random projection of the pixels to 128 dimensions (the
  user's own embeddings: nothing to embed); what an incremental build reuses there is the image-quality rows.

Builds: ``first`` (N images, nothing to reuse), ``incremental`` (N + ADD, reusing the first build's rows,
``meta["reused"]``), ``full`` (the same N + ADD with ``reuse=False``, in a cache of its own: same cache key).

``--pixels`` adds the in-memory ``pixels`` backbone (Fashion-MNIST's default) on the first PIXELS_N, then
PIXELS_N + PIXELS_ADD training images: nothing is reused there (the PCA is fit on the whole training set), so both
are full builds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine, markdown_table  # noqa: E402
from coreclean.build.params import BuildParams  # noqa: E402
from coreclean.build.pipeline import build_analysis  # noqa: E402
from coreclean.data import Dataset, load_source  # noqa: E402

STAGES = ("embed", "quality", "fit", "evaluate", "neighbours", "duplicates", "outliers", "map", "store")
TEST_ROWS = 10_000  # --embeddings: test rows of the directory, the last of the N images


def write_pngs(folder: Path, images: np.ndarray, rows, subfolders: list[str] | None = None) -> list[str]:
    """Images ``rows`` as ``folder/[<subfolders[row]>/]<row>.png`` (written once); their paths under ``folder``."""
    paths = []
    for i in map(int, rows):
        relative = f"{subfolders[i]}/{i:05d}.png" if subfolders else f"{i:05d}.png"
        target = folder / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(target)
        paths.append(relative)
    return paths


def seeded_weights(backbone: str, path: Path) -> Path:
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    torch.save(get_model(backbone, weights=None).state_dict(), path)
    return path


def timed_build(name: str, source, params: BuildParams, cache: Path, *, reuse: bool = True,
                network: bool = True) -> tuple[dict, Path]:
    """One build, timed; its table row. ``network``: the backbone embeds images (else the features are given)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    directory = build_analysis(source, params, cache_dir=cache, reuse=reuse)
    wall = time.perf_counter() - started
    meta = json.loads((directory / "meta.json").read_text())
    reused = meta.get("reused") or {}
    total = meta["n_train"] + meta["n_test"]
    fresh = f"{total - reused.get('rows', 0):,}"
    row = {"build": name, "images": f"{total:,}", "embedded": fresh if network else "0 (given)", "decoded": fresh,
           "wall s": wall, **{f"{s} s": meta["stages"].get(s, {}).get("seconds", 0.0) for s in STAGES},
           "load": f"{load:.1f}-{os.getloadavg()[0]:.1f}", "accuracy": meta["accuracy"]}
    print(f"{name}: {wall:.1f} s, reused {reused or 'nothing'}", flush=True)
    return row, directory


def rows_by_path(directory: Path, name: str) -> dict[str, np.ndarray]:
    """{image path: row of ``name``_<split>} over both splits of an analysis."""
    return {str(p): x for split in ("train", "test") for p, x in
            zip(np.load(directory / f"paths_{split}.npy"), np.load(directory / f"{name}_{split}.npy", mmap_mode="r"))}


def compare(label: str, rows: list[dict], first: Path, incremental: Path, full: Path) -> None:
    """Prints the ratios and whether the incremental analysis equals the full one: the features (and raw quality
    rows) of every sample by path, and the test accuracy."""
    per_image = [row["embed s"] + row["quality s"] for row in rows]
    print(f"{label}: incremental / full {rows[1]['wall s'] / rows[2]['wall s']:.3f} of the wall time; embed + "
          f"quality stages {per_image[1] / max(per_image[2], 1e-9):.3f}")
    for name in ("x", "quality_raw"):
        old, reused, fresh = (rows_by_path(d, name) for d in (first, incremental, full))
        same = all(np.array_equal(old[p], reused[p], equal_nan=True) for p in old)
        gap = max(float(np.nanmax(np.abs(reused[p] - fresh[p]), initial=0.0)) for p in fresh)
        print(f"  {name}: incremental rows of the first build's files equal the first build's: {same}; largest "
              f"|incremental - full| over all {len(fresh):,} rows {gap:.3g}")
    print(f"  accuracy incremental {rows[1]['accuracy']:.4f}, full {rows[2]['accuracy']:.4f}", flush=True)
    kept = json.loads((incremental / "meta.json").read_text())["map"].get("kept", {}).get("points", 0)
    print(f"  map: {kept:,} points kept from the first build's; 10-NN label accuracy on the map: first "
          f"{map_accuracy(first):.4f}, incremental {map_accuracy(incremental):.4f}, full {map_accuracy(full):.4f}",
          flush=True)


def map_accuracy(directory: Path) -> float:
    """How well the map keeps classes apart: the share of map points whose 10 nearest map points' majority label
    is their own."""
    from sklearn.neighbors import NearestNeighbors

    xy, rows = np.load(directory / "map_xy.npy"), np.load(directory / "map_rows.npy")
    labels = np.load(directory / "y_train.npy")[rows]
    neighbours = NearestNeighbors(n_neighbors=11).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    votes = np.apply_along_axis(np.bincount, 1, labels[neighbours], minlength=labels.max() + 1)
    return float((votes.argmax(axis=1) == labels).mean())


def three_builds(label: str, source: str, add_images, params: BuildParams, work: Path, network: bool) -> list[dict]:
    """first / incremental / full builds of ``source``, ``add_images()`` adding the new images in between."""
    first_row, first = timed_build("first", source, params, work / "cache", network=network)
    add_images()
    incremental_row, incremental = timed_build("**incremental**", source, params, work / "cache", network=network)
    full_row, full = timed_build("full", source, params, work / "cache-full", reuse=False, network=network)
    rows = [first_row, incremental_row, full_row]
    compare(label, rows, first, incremental, full)
    return rows


def folder_builds(images, labels, classes, n: int, add: int, backbone: str, work: Path) -> list[dict]:
    folder, subfolders = work / "fashion-folder", [classes[y].replace("/", "-") for y in labels]  # 'T-shirt/top'
    write_pngs(folder, images, range(n), subfolders)
    params = BuildParams(backbone=backbone, weights=str(seeded_weights(backbone, work / "weights.pt")))
    print(f"ImageFolder: {n:,} + {add:,} PNG files, backbone {backbone}", flush=True)
    return three_builds("ImageFolder", str(folder), lambda: write_pngs(folder, images, range(n, n + add), subfolders),
                        params, work, network=True)


def embeddings_builds(images, labels, classes, n: int, add: int, work: Path) -> list[dict]:
    directory = work / "fashion-embeddings"
    projection = np.random.default_rng(0).normal(size=(images[0].size, 128)).astype(np.float32) / 28
    features = (images.reshape(len(images), -1) / np.float32(255)) @ projection

    def save_split(split: str, rows: np.ndarray) -> None:
        """The split's arrays and image list for the pool's ``rows`` (images written once)."""
        np.save(directory / f"x_{split}.npy", features[rows])
        np.save(directory / f"y_{split}.npy", labels[rows])
        paths = write_pngs(directory / "images", images, rows)
        (directory / f"img_{split}.txt").write_text("\n".join(paths) + "\n")

    (directory / "images").mkdir(parents=True)
    (directory / "classes.txt").write_text("\n".join(classes) + "\n")
    train = np.arange(n - TEST_ROWS)
    save_split("train", train)
    save_split("test", np.arange(n - TEST_ROWS, n))
    print(f"embeddings directory: {len(train):,} train + {TEST_ROWS:,} test rows, then +{add:,} train rows", flush=True)
    appended = np.r_[train, n:n + add]  # after the test rows in the pool: no image is in both splits
    return three_builds("embeddings directory", str(directory), lambda: save_split("train", appended), BuildParams(),
                        work / "embeddings", network=False)


def pixels_rows(fashion: Dataset, n: int) -> Dataset:
    return Dataset(name="fashion-mnist-subset", classes=list(fashion.classes), y_train=fashion.y_train[:n],
                   y_test=fashion.y_test, pixels_train=fashion.pixels_train[:n], pixels_test=fashion.pixels_test,
                   fingerprint=f"bench-incremental:{n}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000, help="images of the first build")
    parser.add_argument("--add", type=int, default=100, help="images added before the rebuild")
    parser.add_argument("--backbone", default="resnet18", help="the ImageFolder's torchvision classification model")
    parser.add_argument("--work", type=Path, default=None, help="work folder (emptied first; default: a temp dir)")
    parser.add_argument("--no-folder", action="store_true", help="skip the ImageFolder builds")
    parser.add_argument("--embeddings", action="store_true", help="also an embeddings directory with image paths")
    parser.add_argument("--pixels", action="store_true", help="also the pixels backbone (no reuse possible)")
    parser.add_argument("--pixels-n", type=int, default=59000, help="training images of the first pixels build")
    parser.add_argument("--pixels-add", type=int, default=1000, help="training images added for the second")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="coreclean-incremental-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fashion = load_source("fashion-mnist")
    images = np.concatenate([fashion.pixels_train, fashion.pixels_test])
    labels = np.concatenate([fashion.y_train, fashion.y_test]).astype(np.int64)
    if args.n + args.add > len(labels) or (args.embeddings and args.n <= TEST_ROWS):
        raise SystemExit(f"--n + --add must be at most {len(labels)} (and --n above {TEST_ROWS} with --embeddings)")
    if args.pixels and args.pixels_n + args.pixels_add > len(fashion.y_train):
        raise SystemExit(f"--pixels-n + --pixels-add must be at most {len(fashion.y_train)}")
    print(f"{machine()}", flush=True)
    tables = []
    if not args.no_folder:
        tables.append(folder_builds(images, labels, fashion.classes, args.n, args.add, args.backbone, work))
    if args.embeddings:
        tables.append(embeddings_builds(images, labels, list(fashion.classes), args.n, args.add, work))
    if args.pixels:
        sizes = (("pixels first", args.pixels_n), ("pixels +add", args.pixels_n + args.pixels_add))
        tables.append([timed_build(name, pixels_rows(fashion, n), BuildParams(backbone="pixels"),
                                   work / "cache-pixels")[0] for name, n in sizes])
    for rows in tables:  # pixels rows: "embedded" counts the images featurized
        print(markdown_table(rows, list(rows[0]), digits=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
