"""Review decisions: an append-only SQLite log next to the analysis, exports, and applying corrections.

Each decision is one row (sample, old label, new label, decision, reviewer, time). The current decision of a
sample is its latest row that was not undone; undo marks that row, so the previous decision (if any) comes back.
Every call opens its own connection, so threads, processes and Streamlit sessions can write at once; WAL mode and
``synchronous=FULL`` make a committed decision survive a crash, and a killed writer leaves no partial row. A damaged
or unwritable log raises :class:`ReviewLogError` naming the file and the fix; rolling backups
(:mod:`coreclean.review.backup`) bound what a damaged file can cost.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from typing import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backup as log_backup

DECISIONS = ("mislabeled", "remove", "ok")
DECISIONS_SHOWN = ("ok", "mislabeled", "remove")  # the order review controls offer them
SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample INTEGER NOT NULL CHECK (sample >= 0),
    old_label INTEGER NOT NULL,
    new_label INTEGER,
    decision TEXT NOT NULL CHECK (decision IN ('mislabeled', 'remove', 'ok')),
    reviewer TEXT,
    created REAL NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS decisions_sample ON decisions (sample, id);
"""


class ReviewLogError(ValueError):
    """The review log cannot be read or written; the message names the file and what to do."""


@dataclass(frozen=True)
class Decision:
    id: int
    sample: int
    old_label: int
    new_label: int | None
    decision: str
    reviewer: str | None
    created: float


class ReviewLog:
    """Decisions for the training samples of one analysis, stored in ``<directory>/reviews.sqlite``."""

    def __init__(self, directory: str | Path, n_samples: int | None = None, n_classes: int | None = None):
        self.path = Path(directory) / "reviews.sqlite"
        self.n_samples = n_samples
        self.n_classes = n_classes
        self._check_not_emptied()
        self._connect().close()

    def _check_not_emptied(self) -> None:
        """A log truncated to nothing would open as a new, empty log; refuse when a backup says it held rows."""
        try:
            emptied = self.path.exists() and self.path.stat().st_size == 0
        except OSError:
            return
        if emptied and log_backup.backups(self.path):
            hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
            raise ReviewLogError(f"{self.path}: the review log is empty but backups of it exist (it was truncated?); "
                                 f"{hint}.")

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(SCHEMA)  # idempotent; also recreates a log someone deleted while the server runs
            return db
        except sqlite3.OperationalError as err:  # read-only volume, missing folder, permissions
            raise ReviewLogError(f"{self.path}: cannot open the review log for writing ({err}); make its folder "
                                 "writable (a read-only hosting volume cannot store decisions).") from err
        except sqlite3.DatabaseError as err:  # truncated or overwritten file
            hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
            raise ReviewLogError(f"{self.path}: the review log is damaged ({err}); {hint}.") from err

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """An open connection; damage found mid-query becomes a :class:`ReviewLogError` too."""
        db = self._connect()
        try:
            yield db
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise
            raise ReviewLogError(f"{self.path}: cannot write the review log ({err}); make its folder writable.") from err
        except sqlite3.DatabaseError as err:
            hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
            raise ReviewLogError(f"{self.path}: the review log is damaged ({err}); {hint}.") from err
        finally:
            db.close()

    def check(self) -> None:
        """Raise :class:`ReviewLogError` now if the log became unusable (emptied, damaged, unwritable)."""
        self._check_not_emptied()
        with self._session() as db:
            db.execute("SELECT COUNT(*) FROM decisions").fetchone()

    def record(self, sample: int, old_label: int, decision: str, new_label: int | None = None,
               reviewer: str | None = None) -> int:
        """Append a decision; returns its id. ``mislabeled`` needs ``new_label`` different from ``old_label``."""
        if decision not in DECISIONS:
            raise ValueError(f"decision={decision!r}: choose one of {DECISIONS}.")
        if self.n_samples is not None and not 0 <= int(sample) < self.n_samples:
            raise ValueError(f"sample {sample} out of range 0..{self.n_samples - 1}.")
        for name, label in (("old_label", old_label), ("new_label", new_label)):
            if label is not None and self.n_classes is not None and not 0 <= int(label) < self.n_classes:
                raise ValueError(f"sample {sample}: {name}={label} is not a class (0..{self.n_classes - 1}).")
        if decision == "mislabeled":
            if new_label is None or int(new_label) == int(old_label):
                raise ValueError(f"sample {sample}: a 'mislabeled' decision needs a new label other than {old_label}.")
            new_label = int(new_label)
        else:
            new_label = None
        with self._session() as db:
            cursor = db.execute(
                "INSERT INTO decisions (sample, old_label, new_label, decision, reviewer, created) VALUES (?,?,?,?,?,?)",
                (int(sample), int(old_label), new_label, decision, reviewer or None, time.time()),
            )
            row = int(cursor.lastrowid)
            if row % log_backup.BACKUP_EVERY == 0 or row == 1:
                log_backup.take_backup(db, self.path)
            return row

    def decide(self, sample: int, old_label: int, choice: str | None, new_label: int | None = None,
               reviewer: str | None = None) -> None:
        """Make ``choice`` the current decision of ``sample``; ``None`` clears it (undoes the current one)."""
        if choice is None:
            self.undo(sample)
        else:
            self.record(sample, old_label, choice, new_label=new_label if choice == "mislabeled" else None,
                        reviewer=reviewer)

    def undo(self, sample: int) -> Decision | None:
        """Undo the current decision of ``sample``; returns the decision now current (or ``None``)."""
        with self._session() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM decisions WHERE sample=? AND undone=0 ORDER BY id DESC LIMIT 1",
                             (int(sample),)).fetchone()
            if row:
                db.execute("UPDATE decisions SET undone=1 WHERE id=?", row)
            db.execute("COMMIT")
        return self.current().get(int(sample))

    def current(self) -> dict[int, Decision]:
        """sample -> its current decision."""
        with self._session() as db:
            rows = db.execute(
                "SELECT id, sample, old_label, new_label, decision, reviewer, created FROM decisions "
                "WHERE id IN (SELECT MAX(id) FROM decisions WHERE undone=0 GROUP BY sample)"
            ).fetchall()
        return {r[1]: Decision(*r) for r in rows}

    def history(self, *, decisions: list[str] | None = None, old_labels: list[int] | None = None,
                reviewer: str | None = None, include_undone: bool = False) -> list[dict]:
        """Every row, newest first, optionally filtered by decision kinds, old labels and reviewer."""
        query = "SELECT id, sample, old_label, new_label, decision, reviewer, created, undone FROM decisions WHERE 1=1"
        params: list = []
        if not include_undone:
            query += " AND undone=0"
        for column, values in (("decision", decisions), ("old_label", old_labels)):
            if values:
                query += f" AND {column} IN ({','.join('?' * len(values))})"
                params.extend(values)
        if reviewer:
            query += " AND reviewer=?"
            params.append(reviewer)
        with self._session() as db:
            rows = db.execute(query + " ORDER BY id DESC", params).fetchall()
        keys = ("id", "sample", "old_label", "new_label", "decision", "reviewer", "created", "undone")
        return [dict(zip(keys, r)) for r in rows]


def decision_counts(decided: dict[int, Decision]) -> dict[str, int]:
    """Number of current decisions of each kind (every kind present, zeros included)."""
    counts = dict.fromkeys(DECISIONS, 0)
    for d in decided.values():
        counts[d.decision] += 1
    return counts


def reviewable(ranked: np.ndarray, decided: dict[int, Decision], keep_visible: set[int] = frozenset()) -> np.ndarray:
    """``ranked`` (indices, in order) without samples already decided, except those in ``keep_visible`` (the
    ones decided during this visit, which stay on screen so a reviewer can change their mind)."""
    if not len(ranked):
        return ranked
    mask = np.fromiter((i not in decided or i in keep_visible for i in ranked.tolist()), bool, len(ranked))
    return ranked[mask]


def apply_corrections(y: np.ndarray, decisions: dict[int, Decision]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, keep): ``y`` (n,) with 'mislabeled' samples relabelled, and a mask (n,) that drops 'remove'."""
    labels = np.array(y, dtype=np.int64, copy=True)
    keep = np.ones(len(labels), dtype=bool)
    for sample, d in decisions.items():
        if d.decision == "mislabeled":
            labels[sample] = d.new_label
        elif d.decision == "remove":
            keep[sample] = False
    return labels, keep
