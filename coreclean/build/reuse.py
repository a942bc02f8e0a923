"""Incremental rebuilds: a build with a new cache key takes what an earlier analysis of the same source already
computed per image, and embeds only the rest.

Adding files to an ImageFolder (or rows to an embeddings directory) changes the data fingerprint, so the build gets
a new cache key and a new analysis directory. Before embedding, :func:`find_reusable` looks in the cache for a
complete analysis of the same source (same name, kind and root) built with the same backbone and weights, and maps
every sample whose input is unchanged to its row there. Unchanged means:

* image files (ImageFolder, embeddings directories with image paths): the same path under the root with the same
  size and modification time (ns) as when the earlier analysis was built (its ``file_stat_<split>.npy``; the test
  the cache key's fingerprint already relies on). Files are matched by path across both splits, so a hold-out split
  that reshuffles as files are added still reuses every unchanged file;
* in-memory images: the same pixel bytes (sha1 of each image).

Reused per matched sample: with a network backbone (torchvision, CLIP) its features and raw image-quality row;
with precomputed embeddings only the quality row (the features are the source's own rows, read afresh, so an
edited row is never stale). Never reused: pixels and cnn features (PCA and the cross-fitted nets depend on the
whole training set), random-init weights (``weights=None``: every load is another network), and analyses built
before ``file_stat_*`` was stored. The classifier, importance and exploration stages run on all samples, but the
2-D map keeps the earlier map's points whose features are unchanged where they were and places the others by their
neighbours (:func:`earlier_map`; UMAP was most of an embeddings directory's rebuild). The earlier analysis and its
review log are only read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

import numpy as np

from ..data import Dataset
from ..embedding import registry
from ..embedding.quality_pass import raw_quality, source_kind
from . import store
from .params import BuildParams

SPLITS = ("train", "test")
FILE_STAT = "file_stat"  # file_stat_<split>.npy: (n, 2) int64 size, mtime_ns of each sample's image file; -1: none
MAX_CANDIDATES = 4  # earlier analyses compared (the most recent ones): each costs a read of its paths
NETWORK_KINDS = ("torchvision", "clip")

StageProgress = Callable[[str, int, int], None]
EmbedRows = Callable[..., tuple]  # (dataset, work_dir=, progress=) -> (x_train, x_test, [(split, index, reason)])


def file_stats(dataset: Dataset) -> dict[str, np.ndarray]:
    """``{split: (n, 2) int64}`` size and modification time (ns) of each sample's image file, -1 where there is no
    readable file; ``{}`` for sources without image paths.

    Taken before anything reads the images: a file changed while this build runs no longer matches what is stored,
    so the next build embeds it again (the safe direction)."""
    if dataset.paths("train") is None and dataset.paths("test") is None:
        return {}
    stats = {}
    for split in SPLITS:
        rows = np.full((len(dataset.labels(split)), 2), -1, dtype=np.int64)
        for i, relative in enumerate(dataset.paths(split) or []):
            if PurePath(relative).is_absolute() or ".." in PurePath(relative).parts:
                continue  # refused by the decoder anyway; nothing outside the root is looked at
            try:
                stat = (dataset.root / relative).stat()
            except OSError:
                continue
            rows[i] = stat.st_size, stat.st_mtime_ns
        stats[split] = rows
    return stats


def stored_file_stats(stats: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays a build stores so that a later build can reuse its rows: ``file_stat_<split>`` of the kept
    rows."""
    return {f"{FILE_STAT}_{split}": rows[keep[split]] for split, rows in stats.items()}


@dataclass
class ReusePlan:
    """Which samples take their rows from the earlier analysis ``source``.

    rows[split] : (n_split,) int64, the sample's row in ``source`` (its train rows, then its test rows), or -1
        for a sample to embed.
    features : network features are reused (False: precomputed embeddings, where only quality rows are).
    quality : raw image-quality rows are reused.
    """

    source: Path
    rows: dict[str, np.ndarray]
    features: bool
    quality: bool

    @property
    def reused(self) -> int:
        return int(sum((rows >= 0).sum() for rows in self.rows.values()))

    @property
    def total(self) -> int:
        return int(sum(len(rows) for rows in self.rows.values()))

    @property
    def work_stage(self) -> str:
        """The build's work folder for the rows to embed: its chunk files hold those rows only, so it is named
        after the plan's source and a full build (or a plan from another analysis) never resumes from it."""
        return f"embedding-reusing-{self.source.name}"

    def meta(self) -> dict:
        """``meta["reused"]``: where from (an analysis in the same cache), how many samples of how many."""
        return {"from": self.source.name, "rows": self.reused, "of": self.total, "features": self.features,
                "quality": self.quality}


def describe(reused: dict, cache: Path) -> str:
    """The build's line for ``meta["reused"]``: 'reused N of M embeddings from DIR'."""
    what = "embeddings" if reused["features"] else "image-quality rows"
    return f"reused {reused['rows']:,} of {reused['of']:,} {what} from {Path(cache) / reused['from']}"


def find_reusable(cache: Path, dataset: Dataset, params: BuildParams, stats: dict[str, np.ndarray], *,
                  exclude: Path) -> ReusePlan | None:
    """The plan reusing the most samples of one earlier analysis in ``cache`` (``params`` resolved for
    ``dataset``; ``stats`` from :func:`file_stats`), or ``None`` when nothing can be reused."""
    kind = registry.kind(params.backbone)
    features, quality = kind in NETWORK_KINDS, source_kind(dataset) is not None
    weights = params.to_meta()["weights"]
    if (features and weights is None) or not (features or (kind == "precomputed" and quality)):
        return None
    new_keys = _keys_of_dataset(dataset, stats)
    best = None
    for directory in _candidates(Path(cache), dataset, params.backbone, weights, quality, exclude):
        old_keys = _keys_of_analysis(directory, dataset.kind)
        if old_keys is None or not _readable(directory, features, quality):
            continue
        where = {key: row for row, key in enumerate(old_keys) if key is not None}
        rows = {split: np.fromiter((-1 if key is None else where.get(key, -1) for key in keys), np.int64,
                                   count=len(keys)) for split, keys in new_keys.items()}
        plan = ReusePlan(directory, rows, features, quality)
        if plan.reused and (best is None or plan.reused > best.reused):
            best = plan
    return best


def embed_reusing(plan: ReusePlan, dataset: Dataset, work_dir: Path, embed_rows: EmbedRows,
                  progress: StageProgress) -> tuple[np.ndarray, np.ndarray, list, tuple | None]:
    """What the embed stage computes for ``dataset``, taking the planned rows from ``plan.source``:
    (x_train (n, d), x_test (m, d), failures [(split, index, reason)], raw quality ((n, q), (m, q)) or None).

    ``embed_rows`` embeds a dataset (the build's embedder: ``(dataset, work_dir=, progress=)``); it sees only the
    samples to embed, as a dataset of their own. ``progress(stage, done, total)`` counts reused samples as done.
    """
    total, reused = plan.total, plan.reused
    new = {split: np.flatnonzero(rows < 0) for split, rows in plan.rows.items()}
    subset = _subset(dataset, new)
    chain = [plan.source]
    failures: list = []
    if plan.features:
        fresh = (np.zeros((0, 0), np.float32),) * 2
        if len(new["train"]) + len(new["test"]):
            *fresh, failed = embed_rows(subset, work_dir=work_dir,
                                        progress=lambda done, _n: progress("embed", reused + done, total))
            failures = [(split, int(new[split][i]), reason) for split, i, reason in failed]
        old = (store.load_array(chain, "x_train", mmap=True), store.load_array(chain, "x_test", mmap=True))
        x_train, x_test = (_assemble(old, plan.rows[s], new[s], fresh[j], plan.source) for j, s in enumerate(SPLITS))
    else:
        x_train, x_test = dataset.features_train, dataset.features_test  # memmaps, copied file to file
    progress("embed", total, total)
    raw = None
    if plan.quality:
        fresh = raw_quality(subset, work_dir, progress=lambda done, _n: progress("quality", reused + done, total))
        old = (store.load_array(chain, "quality_raw_train"), store.load_array(chain, "quality_raw_test"))
        raw = tuple(_assemble(old, plan.rows[s], new[s], fresh[j], plan.source) for j, s in enumerate(SPLITS))
        progress("quality", total, total)
    return x_train, x_test, failures, raw


def earlier_map(plan: ReusePlan, keep_train: np.ndarray,
                x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, str] | None:
    """What an incremental rebuild's map keeps: (rows (p,), xy (p, 2), earlier analysis's name) for the training
    rows of ``x_train`` (n, d) that were on its map with byte-identical features (an edited row moves), or ``None``
    without a readable map. ``keep_train``: (n_input,) bool, the input rows the build kept."""
    chain = [plan.source]
    try:
        old_rows, old_xy = store.load_array(chain, "map_rows"), store.load_array(chain, "map_xy")
        old_x = store.load_array(chain, "x_train", mmap=True)
    except ValueError:
        return None
    if old_rows is None or old_xy is None or old_x is None or old_x.shape[1:] != x_train.shape[1:]:
        return None
    on_map = np.full(len(old_x), -1, np.int64)
    on_map[old_rows] = np.arange(len(old_rows))
    source = plan.rows["train"][np.asarray(keep_train, bool)]  # stored row -> earlier row (train, then test)
    rows = np.flatnonzero((source >= 0) & (source < len(old_x)))
    rows = rows[on_map[source[rows]] >= 0]
    same = np.concatenate([np.all(np.asarray(x_train[rows[s:s + 65536]]) == old_x[source[rows[s:s + 65536]]], axis=1)
                           for s in range(0, len(rows), 65536)] or [np.zeros(0, bool)])
    rows = rows[same]
    return rows, old_xy[on_map[source[rows]]], plan.source.name


def _candidates(cache: Path, dataset: Dataset, backbone: str, weights: str | None, quality: bool,
                exclude: Path) -> list[Path]:
    """Complete analyses in ``cache`` of the same source, backbone and weights (with quality rows when the source
    has images), most recent first."""
    found = []
    same_source = (dataset.name, dataset.kind, str(dataset.root) if dataset.root else None)
    for directory in cache.iterdir() if cache.is_dir() else ():
        if "." in directory.name or directory == exclude or not directory.is_dir():  # .partial, .damaged-*
            continue
        try:
            meta = store.read_meta(directory)
        except ValueError:
            continue
        params = meta.get("params") or {}
        if (meta.get("name"), meta.get("kind"), meta.get("root")) != same_source or meta.get("lineage") \
                or params.get("backbone") != backbone or params.get("weights") != weights \
                or (quality and meta.get("quality") != source_kind(dataset)):
            continue
        found.append((str(meta.get("created", "")), directory.name, directory))
    return [directory for *_, directory in sorted(found, reverse=True)[:MAX_CANDIDATES]]


def _keys_of_dataset(dataset: Dataset, stats: dict[str, np.ndarray]) -> dict[str, list]:
    if dataset.kind == "pixels":
        return {split: _pixel_keys(dataset.images(split)) for split in SPLITS}
    return {split: _file_keys(dataset.paths(split), stats[split]) if stats else [None] * len(dataset.labels(split))
            for split in SPLITS}


def _keys_of_analysis(directory: Path, kind: str) -> list | None:
    """Keys of the samples of the analysis at ``directory``, train then test; ``None`` when it lacks what they are
    made of (images, or the file stats of analyses built before them) or a stored array is damaged."""
    chain, keys = [directory], []
    try:
        for split in SPLITS:
            if kind == "pixels":
                images = store.load_array(chain, f"images_{split}", mmap=True)
                if images is None:
                    return None
                keys += _pixel_keys(images)
                continue
            stats = store.load_array(chain, f"{FILE_STAT}_{split}")
            if stats is None or stats.ndim != 2 or stats.shape[1] != 2 or stats.dtype.kind not in "iu":
                return None
            paths = store.load_array(chain, f"paths_{split}")
            keys += _file_keys(None if paths is None else paths.tolist(), stats)
    except ValueError:
        return None
    return keys


def _readable(directory: Path, features: bool, quality: bool) -> bool:
    """Whether the rows to reuse are stored whole (one per sample): a damaged earlier analysis is passed over, so
    the build embeds instead of failing on a file it did not ask for."""
    names = [f"{kind}_{split}" for kind in ("x",) * features + ("quality_raw",) * quality for split in SPLITS]
    try:
        return all(store.load_array([directory], name, mmap=True) is not None for name in names)
    except ValueError:
        return False


def _file_keys(paths: list[str] | None, stats: np.ndarray) -> list:
    if paths is None:
        return [None] * len(stats)
    return [None if size < 0 else f"{path}\0{size}\0{mtime}" for path, (size, mtime) in zip(paths, stats.tolist())]


def _pixel_keys(images: np.ndarray) -> list:
    return [f"{hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()}{image.shape}" for image in images]


def _subset(dataset: Dataset, rows: dict[str, np.ndarray]) -> Dataset:
    """The samples ``rows[split]`` of ``dataset`` as a dataset of their own (what the embedder sees)."""
    fields = {}
    for split in SPLITS:
        pixels, paths = dataset.images(split), dataset.paths(split)
        fields[f"y_{split}"] = np.asarray(dataset.labels(split))[rows[split]]
        if pixels is not None:
            fields[f"pixels_{split}"] = np.asarray(pixels[rows[split]])
        if paths is not None:
            fields[f"paths_{split}"] = [paths[i] for i in rows[split]]
    return Dataset(name=dataset.name, classes=list(dataset.classes), fingerprint=f"{dataset.fingerprint}:subset",
                   root=dataset.root, **fields)


def _assemble(old: tuple[np.ndarray, np.ndarray], rows: np.ndarray, new: np.ndarray, fresh: np.ndarray,
              source: Path) -> np.ndarray:
    """(len(rows), width) float32: row ``i`` from ``old`` (train then test rows) at ``rows[i]``, or, for the
    samples ``new`` (where ``rows`` is -1), the freshly computed ``fresh`` rows in that order."""
    width = old[0].shape[1] if old[0].ndim == 2 else old[1].shape[1]
    if len(new) and fresh.shape[1:] != (width,):
        raise ValueError(f"{source}: its stored rows have {width} columns, this build's {fresh.shape[1]}; "
                         "rebuild with --no-reuse.")
    out = np.empty((len(rows), width), dtype=np.float32)
    taken = np.flatnonzero(rows >= 0)
    source_rows = rows[taken]
    in_train = source_rows < len(old[0])
    out[taken[in_train]] = old[0][source_rows[in_train]]
    out[taken[~in_train]] = old[1][source_rows[~in_train] - len(old[0])]
    if len(new):
        out[new] = fresh
    return out
