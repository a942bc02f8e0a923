"""Cleaning in rounds: the revisions of a build (review → apply & retrain → review again), as a history.

A round is an analysis directory: the original build is round 0, each retrain writes a revision under its parent's
``revisions/`` folder (:mod:`coreclean.build.retrain`). A round is named in links by its id, the revision stamps from the
original down, joined by ``/`` (``""`` is the original); ids are resolved only against the revisions that exist,
never as a path.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import store
from ..classifier.model import confusion_pairs


@dataclass(frozen=True)
class Round:
    id: str  # "" for the original build
    directory: Path
    number: int  # 0 for the original
    created: str
    accuracy: float
    relabelled: int  # cumulative, as applied in this round
    removed: int
    decisions: int  # review decisions applied (cumulative)
    errors: int  # of those, relabel/remove decisions (cumulative)

    @property
    def label(self) -> str:
        return "original" if not self.id else f"round {self.number} · {self.id}"


def list_rounds(original: Path) -> list[Round]:
    """The original build and every revision below it (depth first, oldest first)."""
    rounds: list[Round] = []

    def visit(directory: Path, rid: str) -> None:
        try:
            meta = store.read_meta(directory)
        except ValueError:
            return  # a damaged or half-written revision is not offered
        lineage = meta.get("lineage") or {}
        rounds.append(Round(id=rid, directory=directory, number=int(lineage.get("round", 0)),
                            created=str(meta.get("created", "")), accuracy=float(meta["accuracy"]),
                            relabelled=int(lineage.get("relabelled", 0)), removed=int(lineage.get("removed", 0)),
                            decisions=int(lineage.get("decisions_applied", 0)),
                            errors=int(lineage.get("errors_applied", 0))))
        children = directory / "revisions"
        if children.is_dir():
            for child in sorted(p for p in children.iterdir() if p.is_dir() and not p.name.endswith(".partial")):
                visit(child, f"{rid}/{child.name}" if rid else child.name)

    visit(Path(original), "")
    return rounds


def round_id(original: Path, directory: Path) -> str:
    """The id of ``directory`` among the rounds of ``original`` (ValueError if it is not one of them)."""
    for candidate in list_rounds(original):
        if candidate.directory.resolve() == Path(directory).resolve():
            return candidate.id
    raise ValueError(f"{directory}: not a round of {original}.")


def find_round(original: Path, rid: str) -> Round:
    """The round called ``rid``; ``ValueError`` naming the known ids otherwise."""
    rounds = list_rounds(original)
    for candidate in rounds:
        if candidate.id == rid:
            return candidate
    raise ValueError(f"round {rid!r} does not exist; known: {[r.id or 'original' for r in rounds]}.")


def rounds_table(rounds: list[Round], worst_pairs: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per round: effort (decisions, relabels, removals), accuracy, and errors found per 100 reviews in the
    decisions that round applied for the first time."""
    rows, previous = [], None
    for r in sorted(rounds, key=lambda r: (r.decisions, r.number, r.created)):
        new_decisions = r.decisions - (previous.decisions if previous else 0)
        new_errors = r.errors - (previous.errors if previous else 0)
        rows.append({"round": r.label, "decisions applied": r.decisions, "relabelled": r.relabelled,
                     "removed": r.removed, "test accuracy": r.accuracy,
                     "errors per 100 reviews": round(100 * new_errors / new_decisions, 1) if new_decisions > 0 else None,
                     "worst confusions": (worst_pairs or {}).get(r.id, "")})
        previous = r
    return pd.DataFrame(rows, columns=["round", "decisions applied", "relabelled", "removed", "test accuracy",
                                       "errors per 100 reviews", "worst confusions"])


def worst_pairs(rounds: list[Round], names: list[str], k: int = 3) -> dict[str, str]:
    """Round id -> its ``k`` worst confusion pairs as text ("Shirt → T-shirt/top 0.21, ...")."""
    out = {}
    for r in rounds:
        confusion = store.load_array([r.directory], "confusion")
        pairs = confusion_pairs(confusion)[:k] if confusion is not None else []
        out[r.id] = ", ".join(f"{names[p.true]} → {names[p.predicted]} {p.rate:.2f}" for p in pairs)
    return out
