"""Keep streamed passes over a memory-mapped embedding file out of the process's resident set.

Reading a read-only ``np.memmap`` maps the file's pages into the process: after one pass over a 1.28M x 512
float32 file its resident set holds 2.6 GB of them, which is page cache the kernel could drop at any time but
which counts against the process (and its RSS is what a user sees). :func:`release_rows` tells the kernel the
process is done with the rows it just read (``MADV_DONTNEED``): the pages leave the resident set and stay in the
page cache, so a later pass faults them back in without touching the disk. Arrays that are not read-only file
mappings (in-memory arrays, writable or copy-on-write memmaps) are left alone.
"""
from __future__ import annotations

import mmap

import numpy as np


def _mapping(X):
    """(mmap object, byte offset of X's first row in it) for a C-contiguous read-only memmap, else (None, 0)."""
    mm = getattr(X, "_mmap", None)
    if mm is None or getattr(X, "mode", None) != "r" or not X.flags.c_contiguous or not hasattr(mm, "madvise"):
        return None, 0
    try:
        base = np.frombuffer(mm, np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed mapping
        return None, 0
    return mm, X.ctypes.data - base if X.size else 0


def release_rows(X, start: int = 0, stop: int | None = None) -> None:
    """Drop rows ``start:stop`` of ``X`` (n, d) from the resident set when X is a read-only memmap (no-op
    otherwise). Pages are released whole, so a page shared with the next row block is simply read again."""
    mm, offset = _mapping(X)
    if mm is None or len(X) == 0:
        return
    stop = len(X) if stop is None else min(stop, len(X))
    if stop <= start:
        return
    lo = offset + start * X.strides[0]
    hi = offset + stop * X.strides[0]
    lo -= lo % mmap.PAGESIZE
    try:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    except (OSError, ValueError):  # a platform without it: the pages stay, nothing else changes
        pass
