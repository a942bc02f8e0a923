"""The one writer (and the low-level reader) of analysis directories.

Layout of an analysis directory (``.npy`` + JSON only, never pickle)::

    meta.json            source, build params (``"params"``, :class:`~coreclean.build.params.BuildParams`), class
                         names, accuracy, skipped files, lineage, per-stage seconds/CPU/peak memory (``"stages"``)
    x_train.npy x_test.npy      embeddings (float32)        y_train.npy y_test.npy  labels
    coef.npy             classifier (d + 1, K)              confusion.npy  test confusion counts (K, K)
    importance.npy       per-sample sensitivity (train)     pred_*.npy p_pred_*.npy p_label_train.npy
    loss_term_train.npy leverage_term_train.npy   the two terms of the importance bound ("why flagged")
    removed_train.npy    (revisions) samples dropped by review decisions
    images_*.npy | paths_*.npy  what the UI shows for a sample
    file_stat_*.npy      (sources with image paths) (n, 2) int64 size, mtime_ns of each image file when it was read:
                         what a later build of the same source compares to reuse rows (:mod:`coreclean.build.reuse`)
    quality_raw_*.npy    (optional) per-image quality rows (n, 7) in ``coreclean.quality.thresholds.RAW_COLUMNS`` order
    quality_*.npy        (optional) issue severities (n, 7) in ``ISSUE_NAMES`` order, NaN = failed / not applicable;
                         meta["quality"] is the source kind they were scored for ('files' | 'pixels'); older
                         analyses and embeddings without images have neither
    reviews.sqlite       the review log (written by :mod:`coreclean.review.log`, never by the store)

A directory is written whole into ``<name>.partial`` and renamed into place, so a reader sees either nothing or a
complete analysis. A revision (``<analysis>/revisions/<stamp>``) stores only what changed and names its parent in
``meta["lineage"]``; arrays it lacks (embeddings, test labels, images) are read from the parent.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.files import load_npy, save_npy, write_json

FORMAT_VERSION = 4  # 4: revisions are analyses (lineage in meta); atomic directory writes
REQUIRED_META = ("format", "name", "kind", "classes", "n_train", "n_test", "accuracy")


WORK = "work"  # inside the partial directory: the stages' resumable work files, removed once the analysis is stored


def partial_dir(directory: Path) -> Path:
    """Where ``directory`` is assembled before it is renamed into place."""
    return directory.with_name(directory.name + ".partial")


def work_dir(directory: Path, stage: str) -> Path:
    """A folder (created) where ``stage`` keeps resumable work files for the analysis being assembled at
    ``directory``: it survives an interrupted build (the next one resumes from it) and is removed, whole, when
    :func:`write_analysis` stores the analysis. The stage names what is inside; nothing else is."""
    path = partial_dir(Path(directory)) / WORK / stage
    path.mkdir(parents=True, exist_ok=True)
    return path


def feature_file(directory: Path, name: str) -> Path:
    """Where features ``name`` (``x_train``/``x_test``) of the analysis being assembled at ``directory`` will be
    stored; a stage that must write them to disk anyway (a cluster build shares them with its workers) writes them
    here, and :func:`write_analysis` then keeps the file instead of copying it."""
    path = partial_dir(Path(directory)) / f"{name}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_analysis(directory: Path, arrays: dict[str, np.ndarray], meta: dict | Callable[[], dict], *,
                   features: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``arrays`` (name -> array) and ``meta`` as the analysis at ``directory``, atomically.

    ``features`` (``x_train``/``x_test``) are copied in row blocks, or file to file when they are whole float32
    ``.npy`` memmaps, so large embeddings never sit in memory. ``meta`` may be a callable, called once every array
    is written (so it can say how long that took). The stages' work files (:func:`work_dir`) are removed once
    everything is stored.
    """
    directory = Path(directory)
    staging = partial_dir(directory)
    staging.mkdir(parents=True, exist_ok=True)
    for name, x in (features or {}).items():
        _copy_features(staging / f"{name}.npy", x)
    for name, value in arrays.items():
        save_npy(staging / f"{name}.npy", value)
    meta = meta() if callable(meta) else meta
    missing = [key for key in REQUIRED_META if key not in meta and key != "format"]
    if missing:
        raise ValueError(f"store: meta lacks {missing}")  # a programming error, caught by the tests
    write_json(staging / "meta.json", {**meta, "format": FORMAT_VERSION})
    shutil.rmtree(staging / WORK, ignore_errors=True)
    if directory.exists():  # a damaged analysis: keep it aside, never delete what a user saved (reviews)
        aside = directory.with_name(f"{directory.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        directory.rename(aside)
        if (aside / "reviews.sqlite").exists():
            shutil.copy2(aside / "reviews.sqlite", staging / "reviews.sqlite")
    staging.rename(directory)
    return directory


def read_meta(directory: Path) -> dict:
    """``meta.json`` of an analysis, validated; ``ValueError`` naming the file and what to do."""
    meta_file = Path(directory) / "meta.json"
    if not meta_file.exists():
        raise ValueError(f"{directory}: not a built analysis (no meta.json); run 'python -m coreclean build'.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{meta_file}: damaged ({err}); rebuild with 'python -m coreclean build' "
                         "(the review log next to it is kept).") from err
    missing = [key for key in REQUIRED_META if not isinstance(meta, dict) or key not in meta]
    if missing or not isinstance(meta.get("classes"), list):
        raise ValueError(f"{meta_file}: damaged or from another tool (missing {missing or ['classes']}); "
                         "rebuild with 'python -m coreclean build' (the review log next to it is kept).")
    if meta["format"] != FORMAT_VERSION:
        raise ValueError(f"{meta_file}: format {meta['format']}, this coreclean reads {FORMAT_VERSION}; rebuild it "
                         "with 'python -m coreclean build'.")
    return meta


def is_complete(directory: Path) -> bool:
    """True when ``directory`` holds a readable analysis of the current format."""
    try:
        read_meta(directory)
    except ValueError:
        return False
    return True


def lineage(directory: Path, meta: dict) -> list[Path]:
    """``directory`` followed by its ancestors (a revision's parents), nearest first."""
    chain = [Path(directory)]
    parent = (meta.get("lineage") or {}).get("parent")
    while parent:
        here = (chain[-1] / parent).resolve()
        if here in chain or not (here / "meta.json").exists():
            break
        chain.append(here)
        parent = (read_meta(here).get("lineage") or {}).get("parent")
    return chain


def load_array(chain: list[Path], name: str, *, mmap: bool = False) -> np.ndarray | None:
    """Array ``name`` from the first directory of ``chain`` that has it (``None`` if none does), validated against
    the meta of ``chain[0]``: a per-sample array has one row per sample of its split, labels are integers naming
    a class. ``ValueError`` naming the file and the fix otherwise (a truncated or hand-edited file), never an
    IndexError later."""
    for directory in chain:
        path = directory / f"{name}.npy"
        if path.exists():
            array = load_npy(path, mmap=mmap)
            _check_stored(path, name, array, _meta_counts(chain[0]))
            return array
    return None


_PER_SPLIT = {"importance": "train", "coef": None, "confusion": None, "map_xy": None, "map_rows": None}


_Counts = tuple[int, int, int, "int | None"]  # n_train, n_test, n_classes, map points (None: no map in meta)


def _meta_counts(directory: Path) -> _Counts | None:
    """(n_train, n_test, n_classes, map points or ``None``) of the analysis at ``directory``, or ``None`` when its
    meta is unreadable."""
    try:
        meta = read_meta(directory)
        points = (meta.get("map") or {}).get("points")
        return (int(meta["n_train"]), int(meta["n_test"]), len(meta["classes"]),
                None if points is None else int(points))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _check_stored(path: Path, name: str, array: np.ndarray, counts: _Counts | None) -> None:
    if counts is None:
        return
    n_train, n_test, n_classes, map_points = counts
    split = _PER_SPLIT.get(name, "train" if name.endswith("_train") else "test" if name.endswith("_test") else None)
    fix = "rebuild with 'python -m coreclean build' (the review log next to it is kept)"
    if split is not None:
        rows = n_train if split == "train" else n_test
        if array.ndim == 0 or len(array) != rows:
            raise ValueError(f"{path}: {0 if array.ndim == 0 else len(array)} rows, but meta.json says {rows} "
                             f"{split} samples; {fix}.")
    if name in ("y_train", "y_test"):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(f"{path}: labels must be one integer per sample, got {array.dtype} {array.shape}; {fix}.")
        if len(array) and (int(array.min()) < 0 or int(array.max()) >= n_classes):
            raise ValueError(f"{path}: labels {int(array.min())}..{int(array.max())}, but meta.json names "
                             f"{n_classes} classes; {fix}.")
    if name == "map_xy" and (array.ndim != 2 or array.shape[1:] != (2,)):
        raise ValueError(f"{path}: expected (m, 2) map coordinates, got {array.shape}; {fix}.")
    if name in ("map_xy", "map_rows") and map_points is not None and (array.ndim == 0 or len(array) != map_points):
        raise ValueError(f"{path}: {0 if array.ndim == 0 else len(array)} rows, but meta.json says the map has "
                         f"{map_points} points; {fix}.")
    if name == "map_rows" and len(array) and (array.dtype.kind not in "iu" or int(array.min()) < 0
                                              or int(array.max()) >= n_train):
        raise ValueError(f"{path}: map rows must be training sample numbers 0..{n_train - 1}; {fix}.")


def _copy_features(path: Path, x: np.ndarray, batch: int = 65536) -> None:
    source = getattr(x, "filename", None)
    if source and Path(source).resolve() == path.resolve():  # already in place (a cluster build shares it there)
        return
    if source and str(source).endswith(".npy") and x.dtype == np.float32 and x.flags.c_contiguous \
            and x.shape == np.load(source, mmap_mode="r", allow_pickle=False).shape:  # the whole file, as is
        shutil.copyfile(source, path)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=x.shape)
    for start in range(0, len(x), batch):
        out[start:start + batch] = x[start:start + batch]
    out.flush()
    del out


AUDIT = "audit"  # inside an analysis directory: the dataset audit's cached results (coreclean.audit)


def write_audit(directory: Path, summary: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Store an audit of the analysis at ``directory`` (``summary`` as ``audit/summary.json``, per-sample
    ``arrays`` as ``audit/<name>.npy``), atomically: assembled beside it and renamed into place, replacing an
    older audit (derived data, recomputable; nothing a user saved lives there)."""
    target = Path(directory) / AUDIT
    staging = target.with_name(f"{AUDIT}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name, value in arrays.items():
        save_npy(staging / f"{name}.npy", value)
    write_json(staging / "summary.json", summary)
    old = target.with_name(f"{AUDIT}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def read_audit(directory: Path, names: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]] | None:
    """(summary, arrays ``names``) of the stored audit of ``directory``; ``None`` when there is none or it is
    incomplete or unreadable (the caller recomputes it)."""
    folder = Path(directory) / AUDIT
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        return summary, {name: load_npy(folder / f"{name}.npy") for name in names}
    except (OSError, ValueError):
        return None
