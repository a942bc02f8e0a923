"""Review decisions: an append-only SQLite log next to the analysis, exports, and applying corrections.

Each decision is one row (sample, old label, new label, decision, reviewer, time). The current decision of a
sample is its latest row that was not undone; undo marks that row, so the previous decision (if any) comes back.
Every call opens its own connection, so threads, processes and Streamlit sessions can write at once; WAL mode and
``synchronous=FULL`` make a committed decision survive a crash, and a killed writer leaves no partial row.
Every operation that reads the log to decide what to write (:meth:`ReviewLog.undo`,
:meth:`ReviewLog.toggle_mislabeled`, :meth:`ReviewLog.accept_undecided`, :meth:`ReviewLog.keep_first`) is one
``BEGIN IMMEDIATE`` transaction, so concurrent writers never act on a stale read; callers hold no locks. A damaged
or unwritable log raises :class:`ReviewLogError` naming the file and the fix; rolling backups
(:mod:`coreclean.review.backup`) bound what a damaged file can cost.
"""
from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from . import backup as log_backup

_COLUMNS = "id, sample, old_label, new_label, decision, reviewer, created"

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

    def __init__(self, directory: str | Path, n_samples: int | None = None, n_classes: int | None = None, *,
                 read_only: bool = False):
        """``read_only``: only read an existing log (``export`` of an analysis on a read-only mount); nothing is
        created or written, and a write is a :class:`ReviewLogError`."""
        self.path = Path(directory) / "reviews.sqlite"
        self.n_samples = n_samples
        self.n_classes = n_classes
        self.read_only = read_only
        self._check_not_emptied()
        self._connect().close()

    def _check_not_emptied(self) -> None:
        """A log truncated to nothing or deleted would open as a new, empty log; refuse when a backup says it held
        rows."""
        try:
            missing = not self.path.exists()
            emptied = not missing and self.path.stat().st_size == 0
        except OSError:
            return
        if (missing or emptied) and log_backup.backups(self.path):
            hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
            what = "missing" if missing else "empty"
            raise ReviewLogError(f"{self.path}: the review log is {what} but backups of it exist (it was "
                                 f"{'deleted' if missing else 'truncated'}?); {hint}.")

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            return self._connect_read_only()
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

    def _connect_read_only(self) -> sqlite3.Connection:
        """The log opened for reading only: ``mode=ro`` (sees a live writer's WAL), else, where SQLite cannot even
        create its shared-memory file next to it (a read-only folder), ``immutable=1`` (the file as it is)."""
        if not self.path.is_file():
            raise ReviewLogError(f"{self.path}: no review log to read.")
        error = None
        for flags in ("mode=ro", "immutable=1"):
            try:
                db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{flags}", uri=True, timeout=60,
                                     isolation_level=None)
                db.execute("SELECT COUNT(*) FROM decisions").fetchone()
                return db
            except sqlite3.OperationalError as err:
                error = err
            except sqlite3.DatabaseError as err:
                hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
                raise ReviewLogError(f"{self.path}: the review log is damaged ({err}); {hint}.") from err
        raise ReviewLogError(f"{self.path}: cannot read the review log ({error}).") from error

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """An open connection; damage found mid-query becomes a :class:`ReviewLogError` too."""
        db = self._connect()
        try:
            yield db
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise
            raise ReviewLogError(f"{self.path}: cannot write the review log ({err}); make the file and its folder "
                                 "writable.") from err
        except sqlite3.DatabaseError as err:
            hint = log_backup.RESTORE_HINT.format(directory=self.path.parent)
            raise ReviewLogError(f"{self.path}: the review log is damaged ({err}); {hint}.") from err
        finally:
            db.close()

    def check(self) -> None:
        """Raise :class:`ReviewLogError` now if the log became unusable (emptied, damaged, unwritable)."""
        self._check_not_emptied()
        with self._session() as db:
            self._check_rows(db)
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            db.execute("BEGIN IMMEDIATE")  # a write that is rolled back: a read-only or immutable file says so now,
            try:  # not on the reviewer's first decision
                db.execute(f"PRAGMA user_version = {version}")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")

    @staticmethod
    @contextmanager
    def _immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``db`` inside one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before the first read, so
        nothing read goes stale before the writes. Commits when the block ends, rolls back when it raises."""
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # (an error SQLite already rolled back leaves none)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _row(self, sample: int, old_label: int, decision: str, new_label: int | None) -> tuple:
        """``(sample, old_label, new_label, decision)`` checked and normalized; ``ValueError`` names what is wrong."""
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
        return int(sample), int(old_label), new_label, decision

    @staticmethod
    def _insert(db: sqlite3.Connection, row: tuple, reviewer: str | None) -> int:
        cursor = db.execute(
            "INSERT INTO decisions (sample, old_label, new_label, decision, reviewer, created) VALUES (?,?,?,?,?,?)",
            (*row, reviewer or None, time.time()),
        )
        return int(cursor.lastrowid)

    def _backup_if_due(self, db: sqlite3.Connection, ids: Iterable[int]) -> None:
        """Snapshot the log (after the commit) when a row just written is the first or a :data:`BACKUP_EVERY`-th."""
        if any(i % log_backup.BACKUP_EVERY == 0 or i == 1 for i in ids):
            log_backup.take_backup(db, self.path)

    @staticmethod
    def _current_of(db: sqlite3.Connection, sample: int) -> Decision | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM decisions WHERE sample=? AND undone=0 ORDER BY id DESC LIMIT 1",
                         (int(sample),)).fetchone()
        return Decision(*row) if row else None

    def record(self, sample: int, old_label: int, decision: str, new_label: int | None = None,
               reviewer: str | None = None) -> int:
        """Append a decision; returns its id. ``mislabeled`` needs ``new_label`` different from ``old_label``."""
        row = self._row(sample, old_label, decision, new_label)
        with self._session() as db:
            written = self._insert(db, row, reviewer)
            self._backup_if_due(db, [written])
            return written

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
        with self._session() as db, self._immediate(db):
            current = self._current_of(db, sample)
            if current is not None:
                db.execute("UPDATE decisions SET undone=1 WHERE id=?", (current.id,))
            return self._current_of(db, sample)

    def toggle_mislabeled(self, sample: int, old_label: int, new_label: int, *,
                          reviewer: str | None = None) -> Decision | None:
        """Flip ``sample`` in or out of "mislabeled", in one transaction (a review tile's key ``1``–``9``).

        Parameters
        ----------
        sample : int
            The training sample.
        old_label : int
            Its label in the dataset.
        new_label : int
            The class to relabel it to when it is not marked mislabeled yet (the suggested class).
        reviewer : str, optional
            Who decides; stored with the row.

        Returns
        -------
        Decision or None
            The decision now current: the new ``mislabeled`` row, or, when the current decision was ``mislabeled``
            and got undone, the one before it (``None`` if there is none).
        """
        row = self._row(sample, old_label, "mislabeled", new_label)
        with self._session() as db:
            with self._immediate(db):
                current = self._current_of(db, sample)
                if current is not None and current.decision == "mislabeled":
                    db.execute("UPDATE decisions SET undone=1 WHERE id=?", (current.id,))
                    return self._current_of(db, sample)
                written = self._insert(db, row, reviewer)
                now = self._current_of(db, sample)
            self._backup_if_due(db, [written])
            return now

    def accept_undecided(self, samples: Sequence[int] | np.ndarray, y: Sequence[int] | np.ndarray, *,
                         reviewer: str | None = None) -> list[int]:
        """Record ``ok`` for every sample of ``samples`` without a current decision, in one transaction ("accept
        the page"); samples already decided keep their decision.

        Parameters
        ----------
        samples : array-like of int, shape (n_shown,)
            Training samples, in order; a sample listed twice is written once.
        y : array-like of int, shape (n_samples,)
            The dataset's labels (``Analysis.y_train``), indexed by sample: each new row's old label.
        reviewer : str, optional
            Who decides; stored with every row.

        Returns
        -------
        list of int
            The samples that got ``ok``, in the order of ``samples``.
        """
        rows = [(self._row(s, self._label_of(y, s), "ok", None), reviewer) for s in samples]
        return self._write_where(rows, lambda current, row: current is None)

    def keep_first(self, groups: Sequence[Sequence[int]], y: Sequence[int] | np.ndarray, *,
                   reviewer: str | None = None) -> list[int]:
        """"Keep one, remove the rest" of duplicate groups, in one transaction: every member of each group but
        its first gets a ``remove`` decision; members whose current decision is ``remove`` are left as they are.

        Parameters
        ----------
        groups : sequence of sequences of int, each of shape (group_size,)
            Groups of training samples; the first of each is kept (gets no row).
        y : array-like of int, shape (n_samples,)
            The dataset's labels (``Analysis.y_train``), indexed by sample: each new row's old label.
        reviewer : str, optional
            Who decides; stored with every row.

        Returns
        -------
        list of int
            The samples that got ``remove``, group by group.
        """
        rows = [(self._row(s, self._label_of(y, s), "remove", None), reviewer)
                for group in groups for s in list(group)[1:]]
        return self._write_where(rows, lambda current, row: current is None or current.decision != "remove")

    def record_changes(self, decisions: Sequence[tuple[int, int, str, int | None, str | None]]) -> list[int]:
        """Record each ``(sample, old_label, decision, new_label, reviewer)`` whose decision differs from the
        sample's current one, in one transaction (an import: importing the same decisions again writes nothing,
        and a bad row refuses the whole call before anything is written).

        Returns
        -------
        list of int
            The samples written, in order.
        """
        rows = [(self._row(sample, old, decision, new), reviewer) for sample, old, decision, new, reviewer in decisions]
        return self._write_where(rows, lambda current, row: current is None
                                 or (current.decision, current.new_label) != (row[3], row[2]))  # row: sample, old, new, decision

    @staticmethod
    def _label_of(y: Sequence[int] | np.ndarray, sample: int) -> int:
        if not 0 <= int(sample) < len(y):
            raise ValueError(f"sample {sample} out of range 0..{len(y) - 1}.")
        return int(y[int(sample)])

    def _write_where(self, rows: list[tuple[tuple, str | None]],
                     writes: Callable[[Decision | None, tuple], bool]) -> list[int]:
        """Insert each ``(row, reviewer)`` of ``rows`` (rows checked by :meth:`_row`) for which
        ``writes(current decision of its sample, row)`` holds, reading and writing in one transaction (a row sees
        the ones written before it); returns the samples written. Every row is checked before the transaction,
        so a bad one refuses the whole call."""
        written, ids = [], []
        with self._session() as db:
            with self._immediate(db):
                for row, reviewer in rows:
                    if writes(self._current_of(db, row[0]), row):
                        ids.append(self._insert(db, row, reviewer))
                        written.append(row[0])
            self._backup_if_due(db, ids)
        return written

    def _check_rows(self, db: sqlite3.Connection) -> None:
        """:class:`ReviewLogError` naming the first row whose sample or labels this analysis does not have (a log
        edited by hand, or copied from another analysis): applying it would index past the arrays."""
        if self.n_samples is None and self.n_classes is None:
            return
        samples, classes = self.n_samples or 2 ** 62, self.n_classes or 2 ** 62
        bad = db.execute("SELECT id, sample, old_label, new_label, decision FROM decisions WHERE sample < 0 OR "
                         "sample >= ? OR old_label < 0 OR old_label >= ? OR (new_label IS NOT NULL AND (new_label < 0 "
                         "OR new_label >= ?)) OR typeof(sample) != 'integer' OR typeof(old_label) != 'integer' OR "
                         "(decision = 'mislabeled' AND typeof(new_label) != 'integer') ORDER BY id LIMIT 1",
                         (samples, classes, classes)).fetchone()
        if bad is not None:
            row, sample, old_label, new_label, decision = bad
            raise ReviewLogError(
                f"{self.path}: row id {row} ({decision} of sample {sample}, label {old_label} -> {new_label}) does not "
                f"fit this analysis ({self.n_samples} samples, {self.n_classes} classes); the log was edited or "
                f"copied from another analysis. Delete that row (sqlite3 {self.path} 'DELETE FROM decisions WHERE "
                f"id={row}') or restore a backup with 'python -m coreclean restore-log {self.path.parent} --force'.")

    def current(self) -> dict[int, Decision]:
        """sample -> its current decision (:class:`ReviewLogError` for a row this analysis does not have)."""
        with self._session() as db:
            self._check_rows(db)
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM decisions "
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
        if not 0 <= sample < len(labels):  # ReviewLog.current() refuses such rows; decisions from elsewhere too
            raise ValueError(f"decision {d.id}: sample {sample} is not one of the {len(labels)} training samples.")
        if d.decision == "mislabeled":
            labels[sample] = d.new_label
        elif d.decision == "remove":
            keep[sample] = False
    return labels, keep
