"""The streamed passes over rows (:mod:`coreclean.classifier.row_passes`, its seam :func:`~coreclean.classifier.row_passes.row_passes_on`) as Dask
tasks over chunks of rows.

Embeddings live in ``.npy`` files on a path every worker can read (a shared filesystem); each task opens its file
memory-mapped and reads only its rows, so the matrix is never gathered on the client. Per chunk a task runs the
*local* pass function of the solver on its rows and returns additive sums (moments, loss and gradient, error
counts) or per-row results (leverage, label statistics); the client adds the sums in chunk order. Row-aligned
inputs (labels, weights, row subsets) are scattered to the workers once per fit and reused by every pass, so a pass
moves only the parameters out ((d, K) float32) and the sums back (a (d + 1) x K float64 gradient per chunk).
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .lazy_torch import torch
from ..data.files import load_npy
from .row_passes import (Moments, StandardizedRows, centred_sums, logits_of, loss_and_gradient, mean_scale, moments,
                     resolve_device)

CHUNK_ROWS = 131072  # rows per task: 131072 x 512 float32 = 256 MB read per task
PLANS = 8  # scattered row-aligned inputs kept (a fit uses two: its rows and its validation slice)


@dataclass(frozen=True)
class SharedArray:
    """A (n, d) ``.npy`` file the workers open themselves."""

    path: str
    shape: tuple

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) memory-mapped (read on access)."""
        X = load_npy(Path(self.path), mmap=True)
        if X.shape != self.shape:
            raise ValueError(f"{self.path}: shape {X.shape} on this worker, {self.shape} on the client; the file "
                             "changed or the workers see another filesystem.")
        return X[start:stop]


def share(X: np.ndarray, path: Path, *, batch: int = 65536) -> np.ndarray:
    """``X`` (n, d) written as a float32 ``.npy`` at ``path`` (streamed in row blocks) and opened memory-mapped.
    An ``X`` already memory-mapped from ``path`` is returned as is."""
    path = Path(path)
    if Path(getattr(X, "filename", "") or "").resolve() == path.resolve():
        return X
    partial = path.with_name(path.name + ".part")  # then renamed: a memmap still open on the old file keeps it
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=X.shape)
    for start in range(0, len(X), batch):
        out[start:start + batch] = X[start:start + batch]
    out.flush()
    del out
    os.replace(partial, path)
    return load_npy(path, mmap=True)


class DaskRowPasses:
    """Runs the solver's row passes over registered arrays on a ``distributed.Client``, ``chunk_rows`` per task.

    ``tasks_`` counts the tasks submitted per pass kind (for tests and benchmarks).
    """

    def __init__(self, client, *, chunk_rows: int | None = None):
        self.client = client
        self.chunk_rows = int(chunk_rows or CHUNK_ROWS)
        self._arrays: list[tuple[np.ndarray, SharedArray]] = []
        self._plans: dict = {}
        self.tasks_: dict[str, int] = {}

    def register(self, X: np.ndarray) -> np.ndarray:
        """Take passes over ``X``, a memmap of a whole ``.npy`` file (from :func:`share`)."""
        self._arrays.append((X, SharedArray(str(Path(X.filename).resolve()), tuple(X.shape))))
        return X

    def handles(self, X) -> bool:
        return self._shared(X) is not None

    def _shared(self, X) -> SharedArray | None:
        if not isinstance(X, np.ndarray):
            return None
        where = X.__array_interface__["data"][0]
        for array, shared in self._arrays:  # the registered array or a whole view of it (validation re-wraps)
            if where == array.__array_interface__["data"][0] and X.shape == array.shape \
                    and X.dtype == array.dtype and X.strides == array.strides:
                return shared
        return None

    def _chunks(self, n: int):
        return [(start, min(start + self.chunk_rows, n)) for start in range(0, n, self.chunk_rows)]

    def _plan(self, n: int, **arrays) -> list:
        """Per chunk, a future of {name: the chunk's slice} (``rows``: sorted positions inside the chunk); chunks
        without rows are left out. Cached while the same array objects are alive (one fit's passes reuse it)."""
        key = (n, *((name, id(a)) for name, a in arrays.items()))
        cached = self._plans.get(key)
        if cached is not None and all((ref() if ref is not None else None) is a
                                      for ref, a in zip(cached[0], arrays.values())):
            return cached[1]
        rows = arrays.get("rows")
        if rows is not None:
            rows = np.asarray(rows)
            rows = rows if np.all(rows[1:] > rows[:-1]) else np.unique(rows)
        pieces = []
        for start, stop in self._chunks(n):
            piece = {name: None if a is None else np.asarray(a[start:stop]) for name, a in arrays.items()
                     if name != "rows"}
            if rows is not None:
                lo, hi = np.searchsorted(rows, [start, stop])
                if lo == hi:
                    continue
                piece["rows"] = rows[lo:hi] - start
            elif "rows" in arrays:
                piece["rows"] = None
            pieces.append((start, stop, piece))
        futures = self.client.scatter([piece for _, _, piece in pieces], hash=False)
        plan = [(start, stop, future) for (start, stop, _), future in zip(pieces, futures)]
        self._plans[key] = ([None if a is None else weakref.ref(a) for a in arrays.values()], plan)
        while len(self._plans) > PLANS:
            self._plans.pop(next(iter(self._plans)))
        return plan

    def _run(self, kind: str, function, shared: SharedArray, plan, *args, **kwargs) -> list:
        """``function(shared, start, stop, piece, *args, **kwargs)`` per chunk of ``plan``; results in order."""
        futures = [self.client.submit(function, shared, start, stop, piece, *args, pure=False, **kwargs)
                   for start, stop, piece in plan]
        self.tasks_[kind] = self.tasks_.get(kind, 0) + len(futures)
        return self.client.gather(futures)

    def moments(self, X, y, n_classes, *, sample_weight=None, reference=None, gram=True, batch=None) -> Moments:
        shared, n = self._shared(X), len(X)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        plan = self._plan(n, y=np.asarray(y), w=w)
        if reference is None:
            first = 0 if w is None else int(np.flatnonzero(w > 0)[0])
            shift = np.asarray(X[first], dtype=np.float64)
            sums = self._run("moments", _centred_sums_task, shared, plan, shift)
            s0 = sum(s[0] for s in sums)
            mean, scale = mean_scale(shift, s0, sum(s[1] for s in sums), sum(s[2] for s in sums))
        else:
            mean, scale = reference.mean, reference.scale
        parts = self._run("moments", _moments_task, shared, plan, n_classes, mean, scale, gram)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return replace(total, mean=mean, scale=scale)

    def loss_and_gradient(self, rows: StandardizedRows, w, W: torch.Tensor, b: torch.Tensor):
        shared = self._shared(rows.X)
        plan = self._plan(len(rows.X), y=rows.y, w=w, rows=rows.rows)
        params = self.client.scatter([(W.cpu().numpy(), b.cpu().numpy())], hash=False)[0]
        parts = self._run("loss_and_gradient", _loss_task, shared, plan, rows.mean, rows.scale, params)
        loss = sum(p[0] for p in parts)
        device = W.device
        return (loss, torch.from_numpy(sum(p[1] for p in parts)).to(device),
                torch.from_numpy(sum(p[2] for p in parts)).to(device))

    def validation_error(self, rows: StandardizedRows, W: torch.Tensor, b: torch.Tensor) -> float:
        shared = self._shared(rows.X)
        plan = self._plan(len(rows.X), y=rows.y, rows=rows.rows)
        params = self.client.scatter([(W.cpu().numpy(), b.cpu().numpy())], hash=False)[0]
        parts = self._run("validation_error", _errors_task, shared, plan, rows.mean, rows.scale, params)
        return sum(p[0] for p in parts) / sum(p[1] for p in parts)

    def map_rows(self, function, X, per_row: tuple = (), **kwargs):
        """``function(X[chunk], *(a[chunk] for a in per_row), **kwargs)`` per chunk, concatenated along rows
        (arrays, or dicts of arrays)."""
        shared = self._shared(X)
        plan = self._plan(len(X), **{f"a{i}": np.asarray(a) for i, a in enumerate(per_row)})
        parts = self._run(getattr(function, "__name__", "map_rows"), _map_task, shared, plan, function, kwargs)
        if isinstance(parts[0], dict):
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return np.concatenate(parts)


# Worker side: module-level functions (pickled by reference), each the local pass on one chunk. device "auto":
# a GPU worker uses its GPU.

def _centred_sums_task(shared: SharedArray, start: int, stop: int, piece: dict, shift: np.ndarray):
    w = piece["w"] if piece["w"] is not None else np.ones(stop - start)
    rows = None if piece["w"] is None else np.flatnonzero(w > 0)
    return centred_sums(shared.rows(start, stop), rows, w, shift, resolve_device("auto"))


def _moments_task(shared, start, stop, piece, n_classes, mean, scale, gram) -> Moments:
    reference = Moments(0.0, None, None, None, None, mean, scale)
    return moments(shared.rows(start, stop), piece["y"], n_classes, sample_weight=piece["w"], reference=reference,
                   gram=gram, device="auto")


def _loss_task(shared, start, stop, piece, mean, scale, params):
    device = resolve_device("auto")
    W, b = (torch.from_numpy(p).to(device) for p in params)
    w = piece["w"] if piece["w"] is not None else np.ones(stop - start)
    stream = StandardizedRows(shared.rows(start, stop), piece["rows"], mean, scale, device, y=piece["y"])
    loss, gW, gb = loss_and_gradient(stream, w, W, b)
    return loss, gW.cpu().numpy(), gb.cpu().numpy()


def _errors_task(shared, start, stop, piece, mean, scale, params):
    device = resolve_device("auto")
    W, b = (torch.from_numpy(p).to(device) for p in params)
    stream = StandardizedRows(shared.rows(start, stop), piece["rows"], mean, scale, device, y=piece["y"])
    wrong, count = 0, 0
    for _, z, labels in stream:
        wrong += int((logits_of(z, W, b).argmax(dim=1) != labels).sum())
        count += len(labels)
    return wrong, count


def _map_task(shared, start, stop, piece, function, kwargs):
    return function(shared.rows(start, stop), *(piece[f"a{i}"] for i in range(len(piece))), **kwargs)
