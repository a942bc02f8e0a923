"""Rolling backups of a review log, and restoring one: a damaged ``reviews.sqlite`` costs at most the last few
decisions.

Backups are consistent snapshots taken with SQLite's online backup API (safe while other processes write) into
``reviews.backup/`` next to the log, every :data:`BACKUP_EVERY` decisions; the newest :data:`KEEP` are kept.
Restore with ``python -m coreclean restore-log ANALYSIS_DIR``: the damaged file is kept aside, never deleted.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

BACKUP_EVERY = 10
KEEP = 5
RESTORE_HINT = "restore the last backup with 'python -m coreclean restore-log {directory}'"


def backup_dir(log_path: Path) -> Path:
    return Path(log_path).with_name("reviews.backup")


def backups(log_path: Path) -> list[Path]:
    """Backups of ``log_path``, newest first."""
    folder = backup_dir(log_path)
    return sorted(folder.glob("reviews-*.sqlite"), reverse=True) if folder.is_dir() else []


def decision_rows(path: Path) -> int:
    """Number of rows in the decisions table of ``path`` (raises ``sqlite3.DatabaseError`` when damaged)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError(f"{path}: integrity check failed")
        return int(db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])


def take_backup(db: sqlite3.Connection, log_path: Path) -> Path:
    """Snapshot the open log ``db`` into the backup folder (atomically) and prune old backups."""
    folder = backup_dir(log_path)
    folder.mkdir(exist_ok=True)
    target = folder / f"reviews-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}.sqlite"
    tmp = target.with_suffix(".tmp")
    with closing(sqlite3.connect(tmp)) as copy:
        db.backup(copy)
    os.replace(tmp, target)
    for old in backups(log_path)[KEEP:]:
        old.unlink(missing_ok=True)
    return target


def log_state(log_path: Path) -> str:
    """``"missing"``, ``"emptied"`` (0 bytes), ``"damaged"`` (unreadable or failing its integrity check) or
    ``"intact"``."""
    log_path = Path(log_path)
    if not log_path.exists():
        return "missing"
    try:
        if log_path.stat().st_size == 0:
            return "emptied"
        decision_rows(log_path)
    except (sqlite3.DatabaseError, OSError):
        return "damaged"
    return "intact"


def _aside_name(log_path: Path, kind: str) -> str:
    """A stamp for setting ``log_path`` (and its -wal/-shm) aside that names no existing file: two restores within
    one second never overwrite the first one's copy."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for attempt in range(1, 10_000):
        tag = f"{kind}-{stamp}" + (f"-{attempt}" if attempt > 1 else "")
        if not any(Path(f"{log_path}{suffix}.{tag}").exists() for suffix in ("", "-wal", "-shm")):
            return tag
    raise ValueError(f"{log_path}: too many copies set aside this second; try again.")


def restore(directory: str | Path, *, force: bool = False) -> tuple[Path, int, str | None]:
    """Put the newest intact backup in place of ``directory/reviews.sqlite``.

    A damaged, emptied or missing log is replaced; an intact one only with ``force`` (it may hold decisions newer
    than every backup). Whatever is replaced is kept aside as ``reviews.sqlite.damaged-…`` (``.replaced-…`` when
    it was intact), under a name no earlier copy has, never deleted.

    Returns (backup used, number of decision rows restored, the name the old log was set aside as or ``None``);
    ``ValueError`` when no intact backup exists or the log is intact and ``force`` is not given.
    """
    log_path = Path(directory) / "reviews.sqlite"
    state = log_state(log_path)
    if state == "intact" and not force:
        raise ValueError(f"{log_path}: intact ({decision_rows(log_path)} decision rows), nothing to restore; "
                         "restoring would drop decisions made after the newest backup. Add --force to replace it "
                         "anyway (it is kept aside).")
    for candidate in backups(log_path):
        try:
            rows = decision_rows(candidate)
        except sqlite3.DatabaseError:
            continue
        tag = _aside_name(log_path, "replaced" if state == "intact" else "damaged")
        for suffix in ("", "-wal", "-shm"):  # a stray -wal would otherwise be replayed into the restored copy
            current = Path(f"{log_path}{suffix}")
            if current.exists():
                current.rename(Path(f"{log_path}{suffix}.{tag}"))
        aside = None if state == "missing" else f"{log_path.name}.{tag}"
        tmp = log_path.with_suffix(".restoring")
        with closing(sqlite3.connect(f"file:{candidate}?mode=ro", uri=True)) as source, \
                closing(sqlite3.connect(tmp)) as copy:
            source.backup(copy)
        os.replace(tmp, log_path)
        return candidate, rows, aside
    raise ValueError(f"{log_path}: no intact backup in {backup_dir(log_path)}; nothing to restore.")
