"""The build, as the pipeline it is: source → embeddings → classifier → evaluation → store.

Each stage is a function of the previous stage's arrays; :func:`build_analysis` chains them and hands the result to
the one writer (:mod:`coreclean.build.store`). :mod:`coreclean.build.retrain` reuses the fit and evaluate stages.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..classifier.model import confusion_matrix
from ..classifier.row_passes import row_passes_on
from ..config import cluster_address, writable_cache_dir
from ..data import Dataset, load_source
from ..embedding.embed import embed
from ..embedding.quality_pass import raw_quality, source_kind, split_scores
from ..embedding.text import tower_meta, zero_shot_train
from ..exploration.stage import explore_stage
from ..importance.backends import IMPORTANCE_BACKENDS, check_backend
from ..importance.sensitivity import CoresetSensitivity, label_statistics
from . import store
from .cluster import open_cluster, parse_cluster
from .params import BuildParams
from .reuse import ReusePlan, earlier_map, embed_reusing, file_stats, find_reusable, stored_file_stats
from .timing import StageClock

StageProgress = Callable[[str, int, int], None]


@dataclass
class Embedded:
    """Features of the rows that could be embedded, and which input rows those are."""

    x_train: np.ndarray  # (n, d) float32, possibly a memmap
    x_test: np.ndarray  # (m, d)
    y_train: np.ndarray  # (n,) int64
    y_test: np.ndarray  # (m,)
    keep_train: np.ndarray  # (n_input,) bool: input rows that were embedded
    keep_test: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or row, reason)
    quality_kind: str | None = None  # 'files' | 'pixels': which quality issues apply; None: no images, no quality
    quality: dict[str, np.ndarray] = field(default_factory=dict)  # quality[_raw]_{train,test} of the kept rows


@dataclass
class Fitted:
    coef: np.ndarray  # (d + 1, K) float32
    importance: np.ndarray  # (n,) float64
    pred_train: np.ndarray  # (n,) int64
    p_label_train: np.ndarray  # (n,) float32
    p_pred_train: np.ndarray  # (n,) float32
    loss_term_train: np.ndarray  # (n,) float64, the two terms of the importance bound ("why flagged")
    leverage_term_train: np.ndarray  # (n,) float64
    fit_samples: int

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-sample arrays the store keeps, by their stored names."""
        return {"coef": self.coef, "importance": self.importance, "pred_train": self.pred_train,
                "p_label_train": self.p_label_train, "p_pred_train": self.p_pred_train,
                "loss_term_train": self.loss_term_train, "leverage_term_train": self.leverage_term_train}


@dataclass
class Evaluated:
    pred_test: np.ndarray  # (m,) int64
    p_pred_test: np.ndarray  # (m,) float32
    confusion: np.ndarray  # (K, K) int64
    accuracy: float


def embed_stage(dataset: Dataset, params: BuildParams, work_dir: Path, *, progress: StageProgress | None = None,
                client=None, feature_files: dict[str, Path] | None = None, reuse: ReusePlan | None = None) -> Embedded:
    """Embed both splits and score image quality (:mod:`coreclean.embedding.quality_pass`); rows whose image failed to
    decode are dropped and listed by file name. With a ``distributed.Client``, ResNet embedding runs per shard
    of images on its workers (:mod:`coreclean.embedding.dask_embed`). With ``reuse``, the planned rows come from an
    earlier analysis and only the other samples are embedded (:mod:`coreclean.build.reuse`)."""
    report = progress or (lambda stage, done, total: None)
    total = len(dataset.y_train) + len(dataset.y_test)
    report("embed", 0, total)
    embedder = partial(embed, stage_progress=report)  # the cnn backbone: one bar per fold
    if client is not None and params.backbone == "resnet18":
        from ..embedding.dask_embed import embed_on
        embedder = partial(embed_on, client, feature_files=None if reuse else feature_files)
    if reuse is None:
        x_train, x_test, failures = embedder(dataset, params.backbone, work_dir, weights=params.weights,
                                             pca=params.pca, progress=lambda done, _total: report("embed", done, total))
        report("embed", total, total)
        raw = raw_quality(dataset, work_dir, progress=lambda done, _total: report("quality", done, total))
    else:
        x_train, x_test, failures, raw = embed_reusing(reuse, dataset, work_dir, partial(
            embedder, backbone=params.backbone, weights=params.weights, pca=params.pca), report)
    keep = {}
    for split, x in (("train", x_train), ("test", x_test)):
        keep[split] = np.ones(len(x), dtype=bool)
        keep[split][[i for s, i, _ in failures if s == split]] = False
    skipped = list(dataset.skipped)
    for split, i, reason in failures:
        paths = dataset.paths(split)
        skipped.append((paths[i] if paths is not None else f"{split} row {i}", reason))
    quality = {}
    if raw is not None:  # severities of the rows that stay: odd size/aspect are relative to the analysed images
        raw = (raw[0][keep["train"]], raw[1][keep["test"]])
        scores = split_scores(*raw, source_kind(dataset))
        quality = {"quality_raw_train": raw[0], "quality_raw_test": raw[1],
                   "quality_train": scores[0], "quality_test": scores[1]}
    return Embedded(
        x_train=x_train if keep["train"].all() else np.asarray(x_train[keep["train"]], np.float32),
        x_test=x_test if keep["test"].all() else np.asarray(x_test[keep["test"]], np.float32),
        y_train=np.asarray(dataset.y_train)[keep["train"]], y_test=np.asarray(dataset.y_test)[keep["test"]],
        keep_train=keep["train"], keep_test=keep["test"], skipped=skipped,
        quality_kind=source_kind(dataset) if quality else None, quality=quality,
    )


def fit_stage(x_train: np.ndarray, y_train: np.ndarray, n_classes: int, params: BuildParams, *,
              progress: StageProgress | None = None) -> Fitted:
    """Fit the classifier and score every training sample with ``params.importance``."""
    report = progress or (lambda stage, done, total: None)
    replacement = IMPORTANCE_BACKENDS[check_backend(params.importance)]
    report("fit", 0, 1)
    est = CoresetSensitivity(C=params.C, max_fit_samples=params.max_fit_samples).fit(x_train, y_train,
                                                                                       n_classes=n_classes)
    scores = est.importance_
    if replacement is not None:
        scores = replacement(x_train, y_train)
    report("fit", 1, 1)
    return Fitted(coef=est.coef_, importance=scores, pred_train=est.stats_["pred"],
                  p_label_train=est.stats_["p_label"].astype(np.float32),
                  p_pred_train=est.stats_["p_pred"].astype(np.float32), loss_term_train=est.loss_,
                  leverage_term_train=est.leverage_term_, fit_samples=int(len(est.fit_indices_)))


def evaluate_stage(x_test: np.ndarray, y_test: np.ndarray, coef: np.ndarray, n_classes: int, *,
                   progress: StageProgress | None = None) -> Evaluated:
    """Predictions, confusion counts and accuracy on the test split."""
    report = progress or (lambda stage, done, total: None)
    report("evaluate", 0, 1)
    stats = label_statistics(x_test, y_test, coef)
    report("evaluate", 1, 1)
    return Evaluated(pred_test=stats["pred"], p_pred_test=stats["p_pred"].astype(np.float32),
                     confusion=confusion_matrix(y_test, stats["pred"], n_classes),
                     accuracy=float(np.mean(stats["pred"] == y_test)) if len(y_test) else float("nan"))


def cache_key(dataset: Dataset, params: BuildParams) -> str:
    blob = json.dumps({"data": dataset.fingerprint, "params": params.cache_params(), "v": store.FORMAT_VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_analysis(source: str | Dataset, params: BuildParams | None = None, *, cache_dir: str | Path | None = None,
                   progress: StageProgress | None = None, cluster: str | None = None, reuse: bool = True) -> Path:
    """Build (or reuse) the analysis of ``source`` with ``params`` (default :class:`BuildParams`); returns its
    directory. ``meta.json`` records the params and each stage's seconds, CPU seconds and peak memory.

    ``cluster``: ``local:N`` or ``tcp://HOST:PORT`` (default ``$CORECLEAN_CLUSTER``; none: this process) runs the
    embedding and the row passes of the fit and evaluation on Dask (:mod:`coreclean.build.cluster`); the cache must
    then be on a path every worker can read. The result (and its cache key) is that of the single-process build.

    ``reuse``: take the features (and quality rows) of unchanged samples from an earlier analysis of the same source
    in the cache and embed only the rest (:mod:`coreclean.build.reuse`; recorded as ``meta["reused"]``); False
    embeds every sample.
    """
    params = params or BuildParams()
    address = cluster_address(cluster)
    spec = parse_cluster(address) if address else None
    cache = writable_cache_dir(cache_dir)
    dataset = load_source(source, cache_dir=cache) if isinstance(source, str) else source
    params = params.resolved(dataset)
    directory = cache / f"{_slug(dataset.name)}-{cache_key(dataset, params)}"
    if store.is_complete(directory):
        return directory
    started = time.time()
    K = len(dataset.classes)
    with StageClock(progress) as clock:
        with open_cluster(spec) if spec else nullcontext() as client:
            clock("embed", 0, len(dataset.y_train) + len(dataset.y_test))  # looking for reusable rows is embedding
            stats = file_stats(dataset)  # before anything reads the images (see reuse.file_stats)
            plan = find_reusable(cache, dataset, params, stats, exclude=directory) if reuse else None
            features = {split: store.feature_file(directory, f"x_{split}") for split in ("train", "test")}
            embedded = embed_stage(dataset, params, store.work_dir(directory, plan.work_stage if plan else "embedding"),
                                   progress=clock, client=client, feature_files=features, reuse=plan)
            tower = tower_meta(params.backbone, params.weights)  # CLIP-style backbones: text search, zero-shot
            text = {} if tower is None else {"zero_shot_train": zero_shot_train(
                tower, list(dataset.classes), embedded.x_train, embedded.y_train)}
            passes = None
            if client is not None:  # the features as files the workers read; the passes as tasks over their rows
                from ..classifier.dask_passes import DaskRowPasses, share
                passes = DaskRowPasses(client)
                embedded.x_train = passes.register(share(embedded.x_train, features["train"]))
                embedded.x_test = passes.register(share(embedded.x_test, features["test"]))
            with row_passes_on(passes):
                fitted = fit_stage(embedded.x_train, embedded.y_train, K, params, progress=clock)
                evaluated = evaluate_stage(embedded.x_test, embedded.y_test, fitted.coef, K, progress=clock)
            cluster_meta = None if client is None else {"spec": spec.spec, "workers": len(
                client.scheduler_info()["workers"]), "tasks": dict(passes.tasks_)}
        explored = explore_stage(embedded.x_train, embedded.x_test, embedded.y_train, fitted.importance,
                                 **_images_for_explore(dataset, embedded), progress=clock,
                                 earlier_map=earlier_map(plan, embedded.keep_train, embedded.x_train) if plan else None)
        clock("store", 0, 1)
        arrays = {"y_train": embedded.y_train, "y_test": embedded.y_test, **fitted.arrays(),
                  "pred_test": evaluated.pred_test, "p_pred_test": evaluated.p_pred_test,
                  "confusion": evaluated.confusion, **embedded.quality, **explored.arrays, **text,
                  **stored_file_stats(stats, {"train": embedded.keep_train, "test": embedded.keep_test})}
        for split, keep in (("train", embedded.keep_train), ("test", embedded.keep_test)):
            pixels, paths = dataset.images(split), dataset.paths(split)
            if pixels is not None:
                arrays[f"images_{split}"] = np.asarray(pixels)[keep]
            elif paths is not None:
                arrays[f"paths_{split}"] = np.asarray(paths, dtype=str)[keep]
        meta = {
            "source": source if isinstance(source, str) else dataset.name, "name": dataset.name,
            "kind": dataset.kind, "classes": list(dataset.classes), "params": params.to_meta(),
            "root": str(dataset.root) if dataset.root else None,
            "n_train": int(len(embedded.y_train)), "n_test": int(len(embedded.y_test)),
            "n_features": int(embedded.x_train.shape[1]), "accuracy": evaluated.accuracy,
            "classifier_fit_samples": fitted.fit_samples, "skipped": [list(s) for s in embedded.skipped],
            "quality": embedded.quality_kind, **explored.meta, "lineage": None,
            **({"cluster": cluster_meta} if cluster_meta else {}), **({"text_tower": tower} if tower else {}),
            **({"reused": plan.meta()} if plan else {}),
        }
        store.write_analysis(directory, arrays, lambda: {  # evaluated once the arrays are written: "store" counts
            **meta, "stages": clock.finish(), "build_seconds": round(time.time() - started, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
            features={"x_train": embedded.x_train, "x_test": embedded.x_test})
        clock("store", 1, 1)
    return directory


def _images_for_explore(dataset: Dataset, embedded: Embedded) -> dict:
    """What the exploration stage compares for duplicates: in-memory pixels, or the image files of a folder."""
    keep = {"train": embedded.keep_train, "test": embedded.keep_test}
    if dataset.kind == "pixels":
        return {f"pixels_{s}": np.asarray(dataset.images(s))[keep[s]] for s in keep}
    if dataset.kind == "files":
        return {f"files_{s}": [dataset.root / p for p, kept in zip(dataset.paths(s), keep[s]) if kept] for s in keep}
    return {}


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40] or "dataset"
