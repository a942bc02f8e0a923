"""ImageFolder trees: one sub-folder per class, optionally under ``train/`` and ``val/`` or ``test/``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from .files import files_fingerprint, inside
from .decode import UnreadableImage, check_image
from .dataset import Dataset


def scan_class_tree(tree: Path, root: Path, class_to_idx: dict[str, int], skipped: list[tuple[str, str]]):
    """Relative paths and labels of readable images under ``tree/<class>/``; the rest goes to ``skipped``."""
    paths, labels = [], []
    for name, label in class_to_idx.items():
        folder = tree / name
        if not folder.is_dir():
            continue
        for file in sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink()):
            rel = str(file.relative_to(root))
            reason = _unusable(file, root)
            if reason:
                skipped.append((rel, reason))
                continue
            paths.append(rel)
            labels.append(label)
    return paths, np.asarray(labels, dtype=np.int64)


def _unusable(file: Path, root: Path) -> str | None:
    if not inside(root, file):
        return "points outside the dataset root (symlink); copy the file into the tree"
    if not file.name.lower().endswith(IMG_EXTENSIONS):
        return f"not an image extension ({file.suffix or 'none'})"
    try:
        check_image(file)
    except UnreadableImage as err:
        return str(err)
    return None


def load_image_folder(root: Path, *, test_size: float = 0.2, random_state: int = 0) -> Dataset:
    """Load an ImageFolder tree; uses ``train/`` + ``val/``|``test/`` when present, else a stratified hold-out."""
    root = root.resolve()
    holdout_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    train_dir = root / "train" if (root / "train").is_dir() and holdout_dir else root
    try:
        classes, class_to_idx = find_classes(str(train_dir))
    except FileNotFoundError as err:
        raise ValueError(f"{train_dir}: no class sub-folders found ({err}); expected DIR/<class>/<image>.") from err
    skipped: list[tuple[str, str]] = []
    paths, labels = scan_class_tree(train_dir, root, class_to_idx, skipped)
    if holdout_dir is not None:
        test_paths, test_labels = scan_class_tree(holdout_dir, root, class_to_idx, skipped)
        train_idx = np.arange(len(paths))
    else:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(labels, minlength=len(classes)) if len(labels) else np.zeros(0)
        if len(labels) == 0 or counts.min() < 2:
            raise ValueError(f"{root}: every class needs at least 2 readable images for a hold-out split "
                             f"(counts: {dict(zip(classes, counts.tolist()))}).")
        n_test = max(int(round(test_size * len(labels))), len(classes))  # at least one test image per class
        train_idx, test_idx = train_test_split(
            np.arange(len(paths)), test_size=n_test, random_state=random_state, stratify=labels
        )
        test_paths, test_labels = [paths[i] for i in test_idx], labels[test_idx]
    train_paths = [paths[i] for i in train_idx]
    return Dataset(
        name=root.name, classes=classes, y_train=labels[train_idx], y_test=test_labels,
        paths_train=train_paths, paths_test=test_paths, root=root, skipped=skipped,
        fingerprint=f"folder:{files_fingerprint(root, train_paths + test_paths)}",
    )
