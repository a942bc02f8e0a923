"""``torch``, imported on first use.

Opening an analysis (the dashboard's pages, ``report``, ``export``, a notebook) reads arrays and never runs the
solver, yet importing torch is most of a fresh process's start (~2 s of CPU of the ~4 s a dashboard server needs to
draw its first page). The modules that run rows through torch import this stand-in instead; attribute access on it
imports torch once and is then an attribute lookup on the real module.
"""
from __future__ import annotations

import importlib
from typing import Any


class _TorchOnFirstUse:
    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("torch"), name)

    def __repr__(self) -> str:
        return "<torch, imported on first use>"


torch: Any = _TorchOnFirstUse()
