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


def restore(directory: str | Path) -> tuple[Path, int]:
    """Put the newest intact backup in place of ``directory/reviews.sqlite`` (kept aside as ``.damaged-…``).

    Returns (backup used, number of decision rows restored); ``ValueError`` when no intact backup exists.
    """
    log_path = Path(directory) / "reviews.sqlite"
    for candidate in backups(log_path):
        try:
            rows = decision_rows(candidate)
        except sqlite3.DatabaseError:
            continue
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            current = Path(f"{log_path}{suffix}")
            if current.exists():
                current.rename(Path(f"{log_path}{suffix}.damaged-{stamp}"))
        tmp = log_path.with_suffix(".restoring")
        with closing(sqlite3.connect(f"file:{candidate}?mode=ro", uri=True)) as source, \
                closing(sqlite3.connect(tmp)) as copy:
            source.backup(copy)
        os.replace(tmp, log_path)
        return candidate, rows
    raise ValueError(f"{log_path}: no intact backup in {backup_dir(log_path)}; nothing to restore.")
