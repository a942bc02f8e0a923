"""Incremental rebuilds (issue 28 item 4): an ImageFolder of the first N Fashion-MNIST training images (PNG files)
is built, ADD more files are added, and the rebuild embeds only those; compared with a full build of the same
N + ADD files.

    python bench/incremental.py [--n 6000] [--add 100] [--backbone resnet18] [--work DIR]
                                [--pixels] [--pixels-n 59000] [--pixels-add 1000]

Builds, each timed end to end in this process (stage seconds from ``meta["stages"]``):

* ``first``: N files, nothing to reuse;
* ``incremental``: N + ADD files, reusing the first build's rows (``meta["reused"]``);
* ``full``: the same N + ADD files with ``reuse=False``, in a cache of its own (it has the incremental build's key).

The folder has no train/test sub-folders, so the build holds out a stratified 20%, which reshuffles when files are
added: reuse matches files by path across both splits. The weights are a seeded random state_dict (pretrained
weights cannot be downloaded here); the cost of embedding does not depend on their values.

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


def write_folder(folder: Path, images: np.ndarray, labels: np.ndarray, classes: list[str], rows: range) -> None:
    """Fashion-MNIST rows as ``folder/<class>/<row>.png`` (class names made file-safe: 'T-shirt/top')."""
    for i in rows:
        target = folder / classes[labels[i]].replace("/", "-") / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(target)


def seeded_weights(backbone: str, path: Path) -> Path:
    import torch
    from torchvision.models import get_model

    torch.manual_seed(0)
    torch.save(get_model(backbone, weights=None).state_dict(), path)
    return path


def timed_build(name: str, source, params: BuildParams, cache: Path, *, reuse: bool = True) -> tuple[dict, Path]:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    directory = build_analysis(source, params, cache_dir=cache, reuse=reuse)
    wall = time.perf_counter() - started
    meta = json.loads((directory / "meta.json").read_text())
    reused = meta.get("reused") or {}
    total = meta["n_train"] + meta["n_test"]
    row = {"build": name, "images": f"{total:,}", "embedded": f"{total - reused.get('rows', 0):,}"
           if reused.get("features", True) else "0 (precomputed)", "wall s": wall,
           **{f"{s} s": meta["stages"].get(s, {}).get("seconds", 0.0) for s in STAGES},
           "load": f"{load:.1f}-{os.getloadavg()[0]:.1f}", "accuracy": meta["accuracy"]}
    print(f"{name}: {wall:.1f} s, reused {reused or 'nothing'}", flush=True)
    return row, directory


def features_by_path(directory: Path) -> dict[str, np.ndarray]:
    return {str(p): x for split in ("train", "test") for p, x in
            zip(np.load(directory / f"paths_{split}.npy"), np.load(directory / f"x_{split}.npy", mmap_mode="r"))}


def pixels_rows(fashion: Dataset, n: int) -> Dataset:
    return Dataset(name="fashion-mnist-subset", classes=list(fashion.classes), y_train=fashion.y_train[:n],
                   y_test=fashion.y_test, pixels_train=fashion.pixels_train[:n], pixels_test=fashion.pixels_test,
                   fingerprint=f"bench-incremental:{n}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=6000, help="images of the first build")
    parser.add_argument("--add", type=int, default=100, help="images added before the rebuild")
    parser.add_argument("--backbone", default="resnet18", help="a torchvision classification model")
    parser.add_argument("--work", type=Path, default=None, help="work folder (emptied first; default: a temp dir)")
    parser.add_argument("--pixels", action="store_true", help="also the pixels backbone (no reuse possible)")
    parser.add_argument("--pixels-n", type=int, default=59000, help="training images of the first pixels build")
    parser.add_argument("--pixels-add", type=int, default=1000, help="training images added for the second")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="coreclean-incremental-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fashion = load_source("fashion-mnist")
    if max(args.n + args.add, args.pixels_n + args.pixels_add if args.pixels else 0) > len(fashion.y_train):
        raise SystemExit(f"--n + --add and --pixels-n + --pixels-add must be at most {len(fashion.y_train)}")
    folder = work / "fashion-folder"
    write_folder(folder, fashion.pixels_train, fashion.y_train, fashion.classes, range(args.n))
    params = BuildParams(backbone=args.backbone, weights=str(seeded_weights(args.backbone, work / "weights.pt")))
    print(f"{machine()}; {args.n:,} + {args.add:,} PNG files, backbone {args.backbone}", flush=True)
    rows = []
    row, first = timed_build("first", str(folder), params, work / "cache")
    rows.append(row)
    write_folder(folder, fashion.pixels_train, fashion.y_train, fashion.classes, range(args.n, args.n + args.add))
    row, incremental = timed_build("incremental", str(folder), params, work / "cache")
    rows.append(row)
    row, full = timed_build("full", str(folder), params, work / "cache-full", reuse=False)
    rows.append(row)
    if args.pixels:
        for name, n in (("pixels first", args.pixels_n), ("pixels +add", args.pixels_n + args.pixels_add)):
            rows.append(timed_build(name, pixels_rows(fashion, n), BuildParams(backbone="pixels"),
                                    work / "cache-pixels")[0])
    print(markdown_table(rows, list(rows[0]), digits=2))  # pixels rows: "embedded" counts the images featurized
    print(f"incremental / full: {rows[1]['wall s'] / rows[2]['wall s']:.3f} of the wall time; "
          f"embed stage {rows[1]['embed s'] / max(rows[2]['embed s'], 1e-9):.3f}")
    old, reused, fresh = features_by_path(first), features_by_path(incremental), features_by_path(full)
    same = all(np.array_equal(old[p], reused[p]) for p in old)
    gap = max(float(np.abs(reused[p] - fresh[p]).max()) for p in fresh)
    scale = float(np.median([np.abs(x).max() for x in fresh.values()]))
    print(f"incremental rows of the first build's files equal the first build's: {same}; largest |incremental - "
          f"full| over all features {gap:.3g} (median row max |x| {scale:.3g}); accuracy incremental "
          f"{rows[1]['accuracy']:.4f}, full {rows[2]['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
