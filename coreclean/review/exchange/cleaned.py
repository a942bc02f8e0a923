"""The cleaned dataset: the source after the review decisions, in a new folder a user trains from.

Relabelled samples go under their new class, removed ones are left out, and ``manifest.csv`` lists every written
sample (``path,label,original_label,decision,split,index``). Image folders become ``OUT/train/<class>/<file>`` and
``OUT/test/<class>/<file>`` (hard links or copies), which ``coreclean build OUT`` reads with the same test split;
embeddings directories and in-memory sets (digits, Fashion-MNIST) become ``x_train.npy``, ``y_train.npy``,
``x_test.npy``, ``y_test.npy`` and ``classes.txt`` (embeddings keep their image paths, images linked or copied
under ``OUT/images``). The folder is assembled beside ``OUT`` and renamed into place, so a failure leaves nothing
half-written; it is never inside the source dataset or the analysis cache.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ...data.files import csv_safe, inside, load_npy
from ..export import logged_decisions
from ..log import Decision, apply_corrections

MANIFEST_COLUMNS = ["path", "label", "original_label", "decision", "split", "index"]
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CleanedSummary:
    directory: Path
    written: int      # training samples in the cleaned set
    relabelled: int
    removed: int
    test: int         # test samples carried over unchanged
    layout: str       # 'imagefolder' | 'arrays'


def original_labels(analysis) -> np.ndarray:
    """(n,) int64 labels of the original build (review decisions are relative to these, in every round)."""
    return np.asarray(load_npy(analysis.root_analysis / "y_train.npy"), dtype=np.int64)


def check_out_dir(out: str | Path, protected: list[Path], *, force: bool) -> Path:
    """``out`` as a Path if a new dataset may be written there, else ValueError naming why and what to do."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {out}: is a file; give a folder path.")
    for kept in protected:
        if inside(kept, path) or inside(path, kept):
            raise ValueError(f"--out {out}: overlaps {kept} (the source dataset or the analysis); choose a folder "
                             "outside both.")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(f"--out {out}: folder is not empty; choose a new folder or pass --force to replace it.")
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: folder {path.parent} does not exist; create it first.")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"--out {out}: {path.parent} is not writable; choose a folder you can write to.")
    return path


def _place(file: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(file, target)
        except OSError as err:
            raise ValueError(f"--link: cannot hard-link {file} ({err.strerror}); the output must be on the same "
                             "filesystem as the dataset, or drop --link to copy.") from err
    else:
        shutil.copy2(file, target)


def _free_name(target: Path, index: int, taken: set[Path]) -> Path:
    """``target``, or ``<index>_<name>`` beside it when another sample already took the name (a relabelled image
    can meet a namesake in its new class)."""
    if target in taken:
        target = target.with_name(f"{index}_{target.name}")
    taken.add(target)
    return target


def _image_folder(analysis, labels, keep, work: Path, link: bool, progress: Progress | None) -> list[list]:
    root = Path(analysis.meta["root"])
    names = analysis.classes
    rows, taken = [], set()
    splits = [("train", np.asarray(analysis.paths_train), labels, keep),
              ("test", analysis.stack("paths_test"), np.asarray(analysis.y_test), None)]
    total = int(keep.sum()) + (len(splits[1][1]) if splits[1][1] is not None else 0)
    done = 0
    for split, paths, split_labels, kept in splits:
        if paths is None:
            continue
        for i, relative in enumerate(np.asarray(paths).tolist()):
            if kept is not None and not kept[i]:
                continue
            file = root / str(relative)
            if not inside(root, file) or not file.is_file():
                raise ValueError(f"{file}: missing from the dataset (or outside its root); restore it, or rebuild "
                                 "the analysis from the dataset as it is now.")
            target = _free_name(work / split / names[split_labels[i]] / file.name, i, taken)
            _place(file, target, link)
            rows.append([target.relative_to(work).as_posix(), names[split_labels[i]], i, split])
            done += 1
            if progress:
                progress("write", done, total)
    return rows


def _arrays(analysis, labels, keep, work: Path, link: bool, progress: Progress | None) -> list[list]:
    pixels = analysis.stack("images_train") is not None
    x_name = "images" if pixels else "x"
    x_train = np.asarray(analysis.stack(f"{x_name}_train"))[keep]
    x_test = np.asarray(analysis.stack(f"{x_name}_test"))
    for name, array in (("x_train", x_train), ("y_train", labels[keep]), ("x_test", x_test),
                        ("y_test", np.asarray(analysis.y_test, dtype=np.int64))):
        np.save(work / f"{name}.npy", array, allow_pickle=False)
    (work / "classes.txt").write_text("".join(f"{c}\n" for c in analysis.classes), encoding="utf-8")
    kept_rows = np.flatnonzero(keep)
    paths = analysis.paths_train
    root = Path(analysis.meta["root"]) if analysis.meta.get("root") else None
    if paths is not None and root is not None:  # embeddings with images: the images travel along
        for split, split_paths, rows_of in (("train", paths, kept_rows),
                                            ("test", analysis.stack("paths_test"), None)):
            if split_paths is None:
                continue
            chosen = [str(split_paths[i]) for i in (rows_of if rows_of is not None else range(len(split_paths)))]
            (work / f"img_{split}.txt").write_text("".join(f"{p}\n" for p in chosen), encoding="utf-8")
            for done, relative in enumerate(chosen, 1):
                file = root / relative
                if not inside(root, file) or not file.is_file():
                    raise ValueError(f"{file}: missing from the dataset (or outside its root); restore it first.")
                _place(file, work / "images" / relative, link)
                if progress:
                    progress(f"write {split}", done, len(chosen))
    where = [f"images/{paths[i]}" if paths is not None else f"x_train.npy[{row}]"
             for row, i in enumerate(kept_rows)]
    names = analysis.classes
    return [[where[row], names[labels[i]], i, "train"] for row, i in enumerate(kept_rows.tolist())]


def write_cleaned(analysis, out: str | Path, *, decided: dict[int, Decision] | None = None, link: bool = False,
                  force: bool = False, progress: Progress | None = None) -> CleanedSummary:
    """Write the dataset of ``analysis`` (an :class:`~coreclean.Analysis`) after ``decided`` (default: the
    current decisions of its review log) to the new folder ``out``; see the module docstring for the layout.

    ``link`` hard-links image files instead of copying them; ``force`` replaces a non-empty ``out``.
    """
    decided = logged_decisions(analysis) if decided is None else decided
    kind = analysis.meta["kind"]
    root = analysis.meta.get("root")
    protected = [analysis.root_analysis.parent] + ([Path(root)] if root else [])
    if kind == "embeddings" and root:
        protected.append(Path(root).parent if Path(root).name == "images" else Path(root))
    out = check_out_dir(out, protected, force=force)
    original = original_labels(analysis)
    labels, keep = apply_corrections(original, decided)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        if kind == "files":
            rows, layout = _image_folder(analysis, labels, keep, work, link, progress), "imagefolder"
        else:
            rows, layout = _arrays(analysis, labels, keep, work, link, progress), "arrays"
        names = analysis.classes
        with open(work / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(csv_safe(MANIFEST_COLUMNS))
            for path, label, index, split in rows:
                d = decided.get(index) if split == "train" else None
                source_label = original[index] if split == "train" else int(analysis.y_test[index])
                writer.writerow(csv_safe([path, label, names[source_label], d.decision if d else "", split, index]))
        _swap_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    relabelled = sum(1 for d in decided.values() if d.decision == "mislabeled")
    return CleanedSummary(out, int(keep.sum()), relabelled, int((~keep).sum()),
                          len(analysis.y_test), layout)


def _swap_into_place(work: Path, out: Path) -> None:
    """Rename the finished ``work`` folder to ``out``; an existing ``out`` (``--force``) is removed only after."""
    if not out.exists():
        os.replace(work, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
    os.replace(out, old / "previous")
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)
