"""The review log's file: one SQLite database per analysis (``<directory>/reviews.sqlite``), opened per call.

:class:`LogFile` owns opening (WAL, ``synchronous=FULL``, read-only mounts), the schema, damage and truncation
checks, transactions and backups; :class:`coreclean.review.log.ReviewLog` keeps the decisions in it.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from . import backup as log_backup

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


class LogFile:
    """The SQLite file of one analysis's review log, and the checks every read and write goes through."""

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

    def _backup_if_due(self, db: sqlite3.Connection, ids: Iterable[int]) -> None:
        """Snapshot the log (after the commit) when a row just written is the first or a :data:`BACKUP_EVERY`-th."""
        if any(i % log_backup.BACKUP_EVERY == 0 or i == 1 for i in ids):
            log_backup.take_backup(db, self.path)

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
