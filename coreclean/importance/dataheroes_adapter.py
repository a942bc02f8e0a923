"""Optional backend: importance from DataHeroes' ``CoresetTreeServiceLG(optimized_for="cleaning")``.

For users with a DataHeroes account and internet access (``pip install -r requirements-dataheroes.txt``). The
package is imported lazily inside a child process with a time limit: it contacts a license server when the
service is constructed, which fails (or hangs) offline. Every failure becomes one :class:`DataHeroesUnavailable`
that says how to fall back to the built-in importance.
"""
from __future__ import annotations

import multiprocessing
import queue
import tempfile
from pathlib import Path

import numpy as np

FALLBACK = ("Use the built-in importance instead (the default: drop '--importance dataheroes', or pick "
            "'coreclean' in the dashboard).")


class DataHeroesUnavailable(ValueError):
    """dataheroes is missing, its license check failed, or it did not answer in time."""


def importance_from_result(result: dict, n_samples: int) -> np.ndarray:
    """Convert a ``get_cleaning_samples`` result (``idx``, ``importance``) into an importance array (n,).

    Samples DataHeroes did not return get 0. Raises ``ValueError`` for a malformed result.
    """
    try:
        idx = np.asarray(result["idx"]).astype(np.int64).ravel()
        values = np.asarray(result["importance"], dtype=np.float64).ravel()
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"dataheroes result must hold 'idx' and 'importance' arrays ({err}).") from err
    if len(idx) != len(values):
        raise ValueError(f"dataheroes result: {len(idx)} indices but {len(values)} importance values.")
    if len(idx) and (idx.min() < 0 or idx.max() >= n_samples):
        raise ValueError(f"dataheroes result: index out of range 0..{n_samples - 1}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("dataheroes result: non-finite importance values.")
    out = np.zeros(n_samples)
    out[idx] = values
    return out


def _child(x_path: str, y_path: str, answer) -> None:
    try:
        from dataheroes import CoresetTreeServiceLG
    except ImportError as err:
        answer.put(("error", f"the optional package 'dataheroes' is not installed ({err}); install it with "
                             "'pip install -r requirements-dataheroes.txt'."))
        return
    try:
        X = np.load(x_path, allow_pickle=False)
        y = np.load(y_path, allow_pickle=False)
        service = CoresetTreeServiceLG(optimized_for="cleaning")
        service.build(X, y)
        result = service.get_cleaning_samples(class_size={int(c): "all" for c in np.unique(y)})
        answer.put(("ok", {"idx": np.asarray(result["idx"]), "importance": np.asarray(result["importance"])}))
    except Exception as err:  # license server, network and API errors all end here
        answer.put(("error", f"dataheroes failed ({type(err).__name__}: {err}); it needs an account and internet "
                             "access for its license check."))


def dataheroes_importance(X: np.ndarray, y: np.ndarray, *, timeout: float = 120.0) -> np.ndarray:
    """Importance (n,) from DataHeroes' cleaning coreset tree, or :class:`DataHeroesUnavailable`."""
    ctx = multiprocessing.get_context("spawn")
    answer = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="coreclean-dh-") as tmp:
        x_path, y_path = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(x_path, np.asarray(X, dtype=np.float32))
        np.save(y_path, np.asarray(y, dtype=np.int64))
        child = ctx.Process(target=_child, args=(str(x_path), str(y_path), answer), daemon=True)
        child.start()
        hung = False
        try:
            status, payload = answer.get(timeout=timeout)
        except queue.Empty:
            hung = True
            status, payload = "error", f"dataheroes did not answer within {timeout:.0f} s (offline license check?)."
        finally:
            child.join(0 if hung else 5)  # a child that answered gets time to exit; a hung one is killed at once
            if child.is_alive():
                child.kill()
                child.join()
    if status != "ok":
        raise DataHeroesUnavailable(f"{payload} {FALLBACK}")
    return importance_from_result(payload, len(y))
