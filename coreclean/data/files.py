"""Safe file access shared by every layer: paths confined to a root, ``.npy`` without pickles, atomic writes."""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def inside(root: Path, candidate: Path) -> bool:
    """True when ``candidate`` resolves (symlinks followed) to a location inside ``root``."""
    try:
        return Path(candidate).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def listed_files(root: Path, relatives: Iterable[str]) -> list[str | None]:
    """For each path of ``relatives`` (under ``root``): ``None`` when it is a regular file inside ``root`` (symlinks
    followed, as :func:`inside`), else ``"outside"`` or ``"missing"``.

    The same answer as :func:`inside` plus ``is_file`` per path, for long lists: the root and each parent folder are
    resolved once, and each file costs one ``lstat`` (loading a 61,000-image embeddings directory took 13.9 s under
    the profiler with a resolve per path, 1.9 s with this)."""
    real_root = os.path.realpath(root)
    real_parents: dict[str, str] = {}
    out: list[str | None] = []
    for relative in relatives:
        path = os.path.join(root, relative)  # an absolute ``relative`` stays itself, and is judged as such
        parent, name = os.path.split(path)
        if name in ("", ".", ".."):
            real = os.path.realpath(path)
        else:
            if parent not in real_parents:
                real_parents[parent] = os.path.realpath(parent)
            real = os.path.join(real_parents[parent], name)
        try:
            mode = os.lstat(real).st_mode
            if stat.S_ISLNK(mode):
                real = os.path.realpath(real)
                mode = os.stat(real).st_mode
        except (OSError, ValueError):
            mode = 0
        if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
            out.append("outside")
        else:
            out.append(None if stat.S_ISREG(mode) else "missing")
    return out


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved; ``ValueError`` when it escapes ``root`` (``..``, absolute path, symlink)."""
    candidate = Path(root) / relative
    if not inside(root, candidate):
        raise ValueError(f"{relative}: outside the dataset root; refused")
    return candidate.resolve()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may run as a formula (OWASP CSV injection)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_safe(row: Iterable) -> list:
    """The cells of one CSV row, safe to open in a spreadsheet: text starting with ``= + - @`` (or a tab or carriage
    return), such as a class name ``=HYPERLINK(...)``, gets a leading ``'`` so it is shown, never run (as OWASP
    advises for CSV files); numbers, and text that is a plain number (``-0.5``), are left as they are. Every CSV
    coreclean writes passes its rows through here."""
    return ["'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA_START)
            and not _PLAIN_NUMBER.fullmatch(cell) else cell for cell in row]


def load_npy(path: Path, *, mmap: bool = False, what: str = "") -> np.ndarray:
    """``np.load`` with ``allow_pickle=False`` and errors that name the file and the fix.

    ``what`` says what the file should be, for the "missing" message.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: missing{'; ' + what if what else ''}.")
    _check_npy_magic(path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except ValueError as err:
        if "pickle" in str(err).lower() or "object" in str(err).lower():
            raise ValueError(
                f"{path}: holds a pickled/object array, which coreclean refuses to load (it could run code). "
                "Convert it: for paths np.save(path, np.asarray(paths, dtype=str)) or write one path per line to a "
                ".txt file; for numbers np.save(path, arr.astype(np.float32))."
            ) from err
        raise ValueError(f"{path}: not a valid .npy file ({err}).") from err
    except OSError as err:
        raise ValueError(f"{path}: unreadable ({err}).") from err


def _check_npy_magic(path: Path) -> None:
    """``ValueError`` saying what ``path`` is when it is not a ``.npy`` file at all (numpy would call anything
    without its header a pickle)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as err:
        raise ValueError(f"{path}: unreadable ({err.strerror or err}).") from err
    if head.startswith(b"\x93NUMPY"):
        return
    if head.startswith(b"PK\x03\x04"):
        kind = "a zip archive (an .npz?); save one array with np.save"
    elif not head:
        kind = "empty"
    elif b"\0" not in head:
        kind = "a text file" + (" (CSV?)" if b"," in head else "") + "; save the array with np.save(path, array)"
    else:
        kind = "no .npy header; save the array with np.save(path, array)"
    raise ValueError(f"{path}: not a .npy file: {kind}.")


def save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically (a reader never sees half a file), never as a pickle."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, np.asarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def files_fingerprint(root: Path, relative_paths: list[str], salt: str = "") -> str:
    """Cheap content identity for files under ``root``: names, sizes and modification times."""
    digest = hashlib.sha256(f"{Path(root).resolve()}\0{salt}".encode())
    for rel in relative_paths:
        stat = (Path(root) / rel).stat()
        digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def file_digest(path: Path, length: int = 16) -> str:
    """sha256 of a file's bytes (streamed), truncated to ``length`` hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]
