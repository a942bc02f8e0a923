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
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .log_file import SCHEMA, LogFile, ReviewLogError

__all__ = ["DECISIONS", "DECISIONS_SHOWN", "SCHEMA", "Decision", "ReviewLog", "ReviewLogError", "apply_corrections",
           "decision_counts", "reviewable"]

_COLUMNS = "id, sample, old_label, new_label, decision, reviewer, created"

DECISIONS = ("mislabeled", "remove", "ok")
DECISIONS_SHOWN = ("ok", "mislabeled", "remove")  # the order review controls offer them


@dataclass(frozen=True)
class Decision:
    id: int
    sample: int
    old_label: int
    new_label: int | None
    decision: str
    reviewer: str | None
    created: float


class ReviewLog(LogFile):
    """Decisions for the training samples of one analysis, stored in ``<directory>/reviews.sqlite``
    (:class:`~coreclean.review.log_file.LogFile`)."""

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
