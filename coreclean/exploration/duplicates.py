"""Exact and near duplicates, and train/test leakage, from content hashes and stored nearest neighbours.

Group encoding used everywhere: ``duplicate_of`` (n,) int64 holds, for each sample in a group of two or more, the
smallest index of its group (the group's "first member", which points to itself), and -1 for a sample with no
duplicate. So ``duplicate_of >= 0`` marks every member, and ``duplicate_of[i] not in (-1, i)`` marks the redundant
copies one would remove to keep one per group.

Near duplicates come from stored neighbour lists: an edge joins i and its j-th neighbour when their similarity is
>= threshold; groups are the connected components. Two kinds of lists: embedding neighbours
(:func:`coreclean.exploration.neighbors.nearest_neighbors`, centred cosine, scored by
:func:`coreclean.exploration.copy_distance.copy_similarities` so one threshold fits any feature space; the build and
``rank --features`` both call it; analyses built before it stored :func:`relative_similarity`) for any source, and
— for in-memory pixels — neighbours of :func:`image_fingerprints` scored by :func:`shift_similarity`, which also
catch shifted, noised and darker copies that standardized-pixel embeddings miss (bench/explore.py). A new threshold
only re-reads the stored (n, k) arrays (no new search, ~0.01 s for 60k rows); groups larger than k + 1 are found
when members chain through their lists.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def content_hash(data) -> str:
    """Hex BLAKE2b-128 digest of ``data``: bytes, or an array (its shape, dtype and raw C-order bytes, so equal
    pixels hash equal whatever their memory layout)."""
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(data, (bytes, bytearray, memoryview)):
        digest.update(bytes(data))
    else:
        array = np.ascontiguousarray(data)
        if array.dtype == object:
            raise ValueError("data: holds Python objects; hash bytes or a numeric array.")
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def hash_rows(pixels) -> np.ndarray:
    """(n,) str content hashes of each image (row) of an in-memory array (n, ...), e.g. uint8 pixels."""
    pixels = np.asarray(pixels)
    if pixels.ndim < 2:
        raise ValueError(f"pixels: expected (n, ...) images, got shape {pixels.shape}.")
    return np.array([content_hash(row) for row in pixels])


def hash_files(paths) -> np.ndarray:
    """(n,) str content hashes of the bytes of each file (read in 1 MB chunks). Raises ValueError naming the first
    unreadable path."""
    out = []
    for path in paths:
        digest = hashlib.blake2b(digest_size=16)
        try:
            with open(Path(path), "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as err:
            raise ValueError(f"{path}: cannot read it to hash ({err.strerror}); fix or drop that file.") from err
        out.append(digest.hexdigest())
    return np.array(out)


def image_fingerprints(pixels, *, max_side: int = 32, blur: float = 0.7) -> np.ndarray:
    """(n, h, w) float32 images for near-duplicate search among in-memory pixels (n, H, W[, C]).

    Grayscale, block-averaged to at most ``max_side`` per side, rolled so each image's centre of intensity sits
    at the centre (a copy shifted by a few pixels lands on the original), Gaussian-blurred by ``blur`` pixels
    (pixel noise then weighs less than shape), minus its own mean (cosine similarity ignores brightness scaling
    and offsets). Find candidates with ``nearest_neighbors(candidate_vectors(f))`` and score them with
    :func:`shift_similarity`; on Fashion-MNIST a threshold of 0.997 found 97% of injected shifted, noised,
    darker and exact copies (bench/explore.py).
    """
    x = np.asarray(pixels)
    if x.ndim == 4:
        x = x.mean(axis=3)
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number) or min(x.shape[1:]) < 3:
        raise ValueError(f"pixels: expected numeric images (n, H, W) or (n, H, W, C), got {x.dtype} {x.shape}.")
    n, h, w = x.shape
    step = max(1, -(-max(h, w) // max_side))
    x = x[:, :h // step * step, :w // step * step].astype(np.float32)
    x = x.reshape(n, h // step, step, w // step, step).mean(axis=(2, 4)) if step > 1 else x
    n, h, w = x.shape
    total = x.sum(axis=(1, 2)) + 1e-6
    cy = (x.sum(axis=2) * np.arange(h)).sum(axis=1) / total
    cx = (x.sum(axis=1) * np.arange(w)).sum(axis=1) / total
    dy = np.round((h - 1) / 2 - cy).astype(int)
    dx = np.round((w - 1) / 2 - cx).astype(int)
    out = np.empty_like(x)
    for shift in set(zip(dy.tolist(), dx.tolist())):  # one roll per distinct shift, not per image
        rows = (dy == shift[0]) & (dx == shift[1])
        out[rows] = np.roll(x[rows], shift, axis=(1, 2))
    if blur > 0:
        from scipy.ndimage import gaussian_filter

        out = gaussian_filter(out, sigma=(0, blur, blur), mode="constant")
    out -= out.mean(axis=(1, 2), keepdims=True)
    return out


def candidate_vectors(fingerprints, *, max_side: int = 14) -> np.ndarray:
    """(n, <= max_side**2) float32 block-averaged, flattened fingerprints (n, h, w) to search candidates on:
    coarser than the fingerprints, so copies whose centring rounded differently still meet."""
    f = np.asarray(fingerprints, dtype=np.float32)
    if f.ndim != 3:
        raise ValueError(f"fingerprints: expected (n, h, w) from image_fingerprints, got shape {f.shape}.")
    n, h, w = f.shape
    step = max(1, -(-max(h, w) // max_side))
    f = f[:, :h // step * step, :w // step * step]
    return f.reshape(n, h // step, step, w // step, step).mean(axis=(2, 4)).reshape(n, -1)


def _unit(images: np.ndarray) -> np.ndarray:
    """Rows of (..., h, w) images flattened, centred and scaled to unit norm."""
    flat = images.reshape(*images.shape[:-2], -1)
    flat = flat - flat.mean(axis=-1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=-1, keepdims=True), 1e-12)


def shift_similarity(images, indices, *, queries=None, max_shift: int = 1, block_rows: int = 1024) -> np.ndarray:
    """(m, k) float32: for each query image and each of its candidate neighbours ``indices`` (m, k) into
    ``images`` (n, h, w) (from :func:`image_fingerprints`), the best cosine similarity over relative shifts of up
    to ``max_shift`` pixels (fixes the centring's rounding). ``queries`` (m, h, w): None for images themselves."""
    images = np.asarray(images, dtype=np.float32)
    query_images = images if queries is None else np.asarray(queries, dtype=np.float32)
    indices = np.asarray(indices)
    if images.ndim != 3 or query_images.shape[1:] != images.shape[1:] or indices.shape[:1] != query_images.shape[:1]:
        raise ValueError(f"images {images.shape}, queries {query_images.shape}, indices {indices.shape}: need "
                         "(n, h, w) fingerprints, queries of the same h, w, and one (m, k) row per query.")
    m = int(max_shift)
    h, w = images.shape[1:]
    if m < 0 or 2 * m >= min(h, w):
        raise ValueError(f"max_shift={max_shift!r}: must be >= 0 and smaller than half the image side.")
    shifts = [(dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)]
    windows = lambda a, dy, dx: a[..., m + dy:h - m + dy, m + dx:w - m + dx]
    # The query core is centred, so its dot product with a raw window equals that with the centred window; each
    # image's window norms after centring come from per-image sums, leaving one einsum per shift.
    d = (h - 2 * m) * (w - 2 * m)
    norms = np.stack([np.sqrt(np.maximum((windows(images, dy, dx) ** 2).sum(axis=(1, 2))
                                         - windows(images, dy, dx).sum(axis=(1, 2)) ** 2 / d, 0))
                      for dy, dx in shifts], axis=1)                                   # (n, shifts)
    out = np.full(indices.shape, -1.0, dtype=np.float32)
    for s in range(0, len(indices), block_rows):
        rows = indices[s:s + block_rows]
        base = _unit(query_images[s:s + block_rows, m:h - m, m:w - m]).reshape(-1, h - 2 * m, w - 2 * m)
        gathered = images[rows]                                                       # (b, k, h, w), read once
        for j, (dy, dx) in enumerate(shifts):
            dots = np.einsum("bkij,bij->bk", windows(gathered, dy, dx), base)
            np.maximum(out[s:s + block_rows], dots / np.maximum(norms[rows, j], 1e-12), out=out[s:s + block_rows])
    return out


def _first_member(labels: np.ndarray) -> np.ndarray:
    """duplicate_of from group labels (n,): the smallest index sharing a label, -1 where the label is unique."""
    n = len(labels)
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    first = np.full(len(uniq), n, dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(n, dtype=np.int64))
    out = first[inverse]
    out[counts[inverse] < 2] = -1
    return out


def exact_duplicate_groups(hashes) -> np.ndarray:
    """duplicate_of (n,) int64 for samples whose content hashes (n,) are equal (see the module docstring)."""
    hashes = np.asarray(hashes)
    if hashes.ndim != 1:
        raise ValueError(f"hashes: expected one hash per sample (n,), got shape {hashes.shape}.")
    if hashes.dtype == object:
        hashes = hashes.astype(str)
    return _first_member(hashes)


def _check_neighbors(indices, similarities, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    indices, similarities = np.asarray(indices), np.asarray(similarities)
    if indices.ndim != 2 or indices.shape != similarities.shape:
        raise ValueError(f"{name}indices {indices.shape} and {name}similarities {similarities.shape}: need two (n, k) "
                         "arrays from nearest_neighbors.")
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"{name}indices: dtype {indices.dtype} is not integer; pass the indices array, not distances.")
    return indices.astype(np.int64, copy=False), similarities


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, (int, float, np.floating)) or not -1 <= threshold <= 1:
        raise ValueError(f"threshold={threshold!r}: a cosine similarity in [-1, 1] (e.g. 0.95).")
    return float(threshold)


# the k-th neighbour distance used as a row's scale is at least this share of its median over the rows, so a group
# of more than k near-identical copies (whose k-th neighbour is another copy) still reads as duplicates
SCALE_FLOOR = 0.2


def neighbor_scale(similarities, *, floor: float = SCALE_FLOOR) -> np.ndarray:
    """(n,) float64 local distance scale of each row: its cosine distance to the k-th (last) neighbour of
    ``similarities`` (n, k), raised to ``floor`` x the median of those distances (and above 0)."""
    similarities = np.asarray(similarities, dtype=np.float64)
    if similarities.ndim != 2 or similarities.shape[1] < 1:
        raise ValueError(f"similarities: expected (n, k) from nearest_neighbors, got shape {similarities.shape}.")
    last = np.maximum(1 - similarities[:, -1], 0)
    median = float(np.median(last)) if len(last) else 0.0
    return np.maximum(last, max(floor * median, 1e-12))


def relative_similarity(similarities, scale=None) -> np.ndarray:
    """(n, k) float32 1 - (cosine distance to each neighbour) / (the row's own scale, :func:`neighbor_scale`).

    A fixed cosine cut means different things in different spaces (0.98 flags 5% of Fashion-MNIST's PCA features,
    none of a CNN's). Measured against each row's distance to its k-th neighbour, a copy stands out wherever it
    lies: 0.9 means "ten times closer than the row's k-th neighbour"; a constant offset or rescaling of the
    features changes nothing (with centred neighbours). ``scale`` (n,): the query rows' scales, default from
    ``similarities`` itself (test-vs-train lists: the test rows' own k-th train neighbour). Negative values
    (farther than the k-th neighbour) are kept, so 1.0 still means identical.
    """
    similarities = np.asarray(similarities, dtype=np.float64)
    scale = neighbor_scale(similarities) if scale is None else np.asarray(scale, dtype=np.float64)
    if scale.shape != similarities.shape[:1]:
        raise ValueError(f"scale: shape {scale.shape}, expected one value per row of similarities "
                         f"{similarities.shape}.")
    return np.maximum(1 - np.maximum(1 - similarities, 0) / scale[:, None], -1).astype(np.float32)


def near_duplicate_groups(indices, similarities, threshold: float) -> np.ndarray:
    """duplicate_of (n,) int64 grouping samples joined by neighbour edges with cosine similarity >= threshold.

    indices, similarities : (n, k) from ``nearest_neighbors(X)`` (self excluded, rows index the same X).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    indices, similarities = _check_neighbors(indices, similarities)
    threshold = _check_threshold(threshold)
    n = len(indices)
    if len(indices) and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"indices: values must be rows 0..{n - 1} of the same set; for test-vs-train lists use "
                         "leakage().")
    rows, cols = np.nonzero(similarities >= threshold)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, indices[rows, cols])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _first_member(labels)


def merge_groups(*duplicate_of) -> np.ndarray:
    """One duplicate_of (n,) joining several groupings (e.g. exact by hash and near by embedding)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    arrays = [np.asarray(d, dtype=np.int64) for d in duplicate_of]
    if not arrays or any(a.ndim != 1 or len(a) != len(arrays[0]) for a in arrays):
        raise ValueError("duplicate_of: pass one or more (n,) arrays of the same length.")
    n = len(arrays[0])
    rows = np.concatenate([np.flatnonzero(a >= 0) for a in arrays])
    cols = np.concatenate([a[a >= 0] for a in arrays])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return _first_member(connected_components(graph, directed=False)[1])


def group_members(duplicate_of) -> list[np.ndarray]:
    """Groups as arrays of sample indices (ascending), largest group first, then by first member."""
    duplicate_of = np.asarray(duplicate_of, dtype=np.int64)
    members = np.flatnonzero(duplicate_of >= 0)
    if not len(members):
        return []
    keys = duplicate_of[members]
    order = np.lexsort((members, keys))
    members, keys = members[order], keys[order]
    groups = np.split(members, np.flatnonzero(np.diff(keys)) + 1)
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def leakage(test_indices, test_similarities, threshold: float) -> np.ndarray:
    """leak_of (m,) int64: for each test sample, its most similar training sample when their cosine similarity is
    >= threshold (a near-duplicate across the split), else -1. Count leaks with ``(leak_of >= 0).sum()``.

    test_indices, test_similarities : (m, k) from ``nearest_neighbors(X_train, queries=X_test)``.
    """
    indices, similarities = _check_neighbors(test_indices, test_similarities, "test_")
    threshold = _check_threshold(threshold)
    best = np.argmax(similarities, axis=1)
    rows = np.arange(len(indices))
    return np.where(similarities[rows, best] >= threshold, indices[rows, best], -1)


def hash_leakage(train_hashes, test_hashes) -> np.ndarray:
    """leak_of (m,) int64: the first training sample with the same content hash as each test sample, else -1."""
    train, test = np.asarray(train_hashes).astype(str), np.asarray(test_hashes).astype(str)
    if train.ndim != 1 or test.ndim != 1:
        raise ValueError("train_hashes, test_hashes: need two 1-D arrays of hashes.")
    uniq, first = np.unique(train, return_index=True)
    pos = np.clip(np.searchsorted(uniq, test), 0, max(len(uniq) - 1, 0))
    found = (uniq[pos] == test) if len(uniq) else np.zeros(len(test), dtype=bool)
    return np.where(found, first[pos] if len(uniq) else -1, -1).astype(np.int64)
