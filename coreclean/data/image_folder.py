"""ImageFolder trees: one sub-folder per class, optionally under ``train/`` and ``val/`` or ``test/``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from .files import files_fingerprint, inside
from .decode import UnreadableImage, check_image
from .dataset import Dataset


MAX_NOT_IMAGES = 10_000  # more files without an image extension: not an image dataset (a home folder?); refused


def scan_class_tree(tree: Path, root: Path, class_to_idx: dict[str, int], skipped: list[tuple[str, str]]):
    """Relative paths and labels of readable images under ``tree/<class>/``; the rest goes to ``skipped``.
    ``ValueError`` as soon as more than ``MAX_NOT_IMAGES`` files are not images: a folder such as a home directory
    is refused in seconds instead of being walked (and every file in it listed) for minutes."""
    paths, labels = [], []
    not_images = 0
    for name, label in class_to_idx.items():
        folder = tree / name
        if not folder.is_dir():
            continue
        files = []
        for file in folder.rglob("*"):  # lazily: the bound stops the walk early
            if not (file.is_file() or file.is_symlink()):
                continue
            files.append(file)
            if not file.name.lower().endswith(IMG_EXTENSIONS):
                not_images += 1
                if not_images > MAX_NOT_IMAGES:
                    raise ValueError(f"{root}: more than {MAX_NOT_IMAGES:,} files that are not images (e.g. "
                                     f"{file.relative_to(root)}): not an ImageFolder dataset; point at the folder "
                                     "holding one sub-folder of images per class.")
        for file in sorted(files):
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
    """Load an ImageFolder tree; uses ``train/`` + ``val/``|``test/`` when present, else a stratified hold-out.
    A home folder or the file system's root is refused without a scan."""
    root = root.resolve()
    if root in _home_folders() or root == Path(root.anchor):
        raise ValueError(f"{root}: a home folder or the file system root, not an image dataset; point at the folder "
                         "holding one sub-folder of images per class.")
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


def _home_folders() -> set[Path]:
    """Every user's home folder on this machine (and ``~``)."""
    import pwd

    homes = {Path.home().resolve()}
    for entry in pwd.getpwall():
        try:
            homes.add(Path(entry.pw_dir).resolve())
        except (OSError, RuntimeError):
            continue
    return homes
