"""Importance backends: the one list of choices (CLI, dashboard and build all read it)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def _dataheroes(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    from .dataheroes_adapter import dataheroes_importance  # lazy: the package dies offline

    return dataheroes_importance(X, y)


# name -> replacement scores (n,) for (X, y), or None to keep the built-in label-aware sensitivity
IMPORTANCE_BACKENDS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray] | None] = {
    "coreclean": None,
    "dataheroes": _dataheroes,
}
IMPORTANCE_HELP = {
    "coreclean": "built-in label-aware local coreset sensitivity (offline)",
    "dataheroes": "DataHeroes' CoresetTreeServiceLG(optimized_for='cleaning'); needs the optional package, an "
                  "account and internet (requirements-dataheroes.txt)",
}


def check_backend(name: str) -> str:
    """``name`` if it is a known importance backend, else ``ValueError`` listing the choices."""
    if name not in IMPORTANCE_BACKENDS:
        raise ValueError(f"importance={name!r}: choose one of {', '.join(IMPORTANCE_BACKENDS)}.")
    return name
