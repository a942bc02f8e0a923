"""The cached compute layer: build an analysis once, store every artifact on disk, load it fast.

Layout of ``<cache>/<name>-<key>/`` (``.npy`` + JSON only, never pickle; ``meta.json`` is written last, so its
presence means the analysis is complete):

    meta.json            source, parameters, class names, accuracy, skipped files
    x_train.npy x_test.npy      embeddings (float32)        y_train.npy y_test.npy  labels
    coef.npy             classifier (d + 1, K)              confusion.npy  test confusion counts (K, K)
    importance.npy       per-sample sensitivity (train)     pred_*.npy p_pred_*.npy p_label_train.npy
    images_*.npy | paths_*.npy  what the UI shows for a sample
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from .embed import embed
from .importance import CoresetSensitivity, label_statistics, normalize_per_class
from .model import ConfusionPair, confusion_matrix, confusion_pairs
from .sources import Dataset, load_source

FORMAT_VERSION = 3  # 2: the classifier is the robust (trimmed) refit; 3: larger coreset-fit budget
DEFAULT_CACHE = Path(os.environ.get("CORECLEAN_CACHE", ".coreclean-cache"))
StageProgress = Callable[[str, int, int], None]


def default_backbone(dataset: Dataset) -> str:
    return {"embeddings": "precomputed", "pixels": "pixels", "files": "resnet18"}[dataset.kind]


def _weights_identity(weights) -> str | None:
    if weights is None or weights == "imagenet":
        return weights
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"{path}: weights file not found.")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cache_key(dataset: Dataset, params: dict) -> str:
    blob = json.dumps({"data": dataset.fingerprint, "params": params, "v": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _store(path: Path, x: np.ndarray, batch: int = 65536) -> None:
    """Write (n, d) float32 without loading a memory-mapped input whole.

    A float32 ``.npy`` memmap (precomputed embeddings) is copied file to file by the kernel, which keeps the
    copy out of this process's memory; anything else is written in row batches.
    """
    source = getattr(x, "filename", None)
    if source and str(source).endswith(".npy") and x.dtype == np.float32 and x.flags.c_contiguous \
            and x.shape == np.load(source, mmap_mode="r", allow_pickle=False).shape:  # the whole file, as is
        shutil.copyfile(source, path)
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=x.shape)
    for start in range(0, len(x), batch):
        out[start:start + batch] = x[start:start + batch]
    out.flush()
    del out


def _keep_rows(x: np.ndarray, failed: set[int]) -> np.ndarray:
    keep = np.ones(len(x), dtype=bool)
    keep[list(failed)] = False
    return keep


class Analysis:
    """A built analysis, loaded from its cache directory. Arrays are memory-mapped where they can be large."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        meta_file = self.directory / "meta.json"
        if not meta_file.exists():
            raise ValueError(f"{self.directory}: not a built analysis (no meta.json); run 'python -m coreclean build'.")
        self.meta: dict = json.loads(meta_file.read_text(encoding="utf-8"))
        self.classes: list[str] = self.meta["classes"]
        for name in ("y_train", "y_test", "importance", "pred_train", "p_label_train", "pred_test", "p_pred_test",
                     "confusion", "coef"):
            setattr(self, name, self._array(name))

    @classmethod
    def load(cls, directory: str | Path) -> "Analysis":
        return cls(Path(directory))

    @classmethod
    def build(
        cls, source: str | Dataset, *, cache_dir: str | Path = DEFAULT_CACHE, backbone: str | None = None,
        weights=None, pca: int | None = 128, C: float = 1.0, importance: str = "coreclean",
        max_fit_samples: int | str | None = "auto", progress: StageProgress | None = None,
    ) -> "Analysis":
        """Build (or reuse) the analysis of ``source``; returns it loaded from disk.

        ``importance``: "coreclean" (built-in) or "dataheroes" (optional, online; see dataheroes_adapter).
        ``max_fit_samples``: see :class:`~coreclean.importance.CoresetSensitivity` (very large sets only).
        """
        if importance not in ("coreclean", "dataheroes"):
            raise ValueError(f"importance={importance!r}: choose 'coreclean' or 'dataheroes'.")
        dataset = load_source(source) if isinstance(source, str) else source
        backbone = backbone or default_backbone(dataset)
        params = {"backbone": backbone, "weights": _weights_identity(weights),
                  "pca": pca if backbone == "pixels" else None, "C": C}
        if importance != "coreclean":
            params["importance"] = importance
        if max_fit_samples != "auto":
            params["max_fit_samples"] = max_fit_samples
        directory = Path(cache_dir) / f"{_slug(dataset.name)}-{cache_key(dataset, params)}"
        if (directory / "meta.json").exists():
            return cls(directory)
        directory.mkdir(parents=True, exist_ok=True)
        report = progress or (lambda stage, done, total: None)
        started = time.time()
        report("embed", 0, 1)
        x_train, x_test, failures = embed(dataset, backbone, directory, weights=weights, pca=pca,
                                          progress=lambda d, t: report("embed", d, t))
        failed = {s: {i for split, i, _ in failures if split == s} for s in ("train", "test")}
        keep_train, keep_test = _keep_rows(x_train, failed["train"]), _keep_rows(x_test, failed["test"])
        y_train, y_test = np.asarray(dataset.y_train)[keep_train], np.asarray(dataset.y_test)[keep_test]
        x_train = x_train if keep_train.all() else np.asarray(x_train[keep_train], np.float32)
        x_test = x_test if keep_test.all() else np.asarray(x_test[keep_test], np.float32)
        K = len(dataset.classes)
        report("importance", 0, 1)
        est = CoresetSensitivity(C=C, max_fit_samples=max_fit_samples).fit(x_train, y_train, n_classes=K)
        scores = est.importance_
        if importance == "dataheroes":
            from .dataheroes_adapter import dataheroes_importance

            scores = dataheroes_importance(x_train, y_train)
        report("importance", 1, 1)
        report("predict test", 0, 1)
        train = est.stats_
        test = label_statistics(x_test, y_test, est.coef_)
        report("store", 0, 1)
        _store(directory / "x_train.npy", x_train)
        _store(directory / "x_test.npy", x_test)
        arrays = {
            "y_train": y_train, "y_test": y_test, "coef": est.coef_, "importance": scores,
            "pred_train": train["pred"], "p_label_train": train["p_label"].astype(np.float32),
            "pred_test": test["pred"], "p_pred_test": test["p_pred"].astype(np.float32),
            "confusion": confusion_matrix(y_test, test["pred"], K),
        }
        for split, keep in (("train", keep_train), ("test", keep_test)):
            pixels, paths = getattr(dataset, f"pixels_{split}"), getattr(dataset, f"paths_{split}")
            if pixels is not None:
                arrays[f"images_{split}"] = np.asarray(pixels)[keep]
            elif paths is not None:
                arrays[f"paths_{split}"] = np.asarray(paths, dtype=str)[keep]
        for name, value in arrays.items():
            np.save(directory / f"{name}.npy", value, allow_pickle=False)
        meta = {
            "format": FORMAT_VERSION, "source": source if isinstance(source, str) else dataset.name,
            "name": dataset.name, "kind": dataset.kind, "classes": list(dataset.classes), **params,
            "importance": importance,
            "root": str(dataset.root) if dataset.root else None, "n_train": int(len(y_train)),
            "n_test": int(len(y_test)), "n_features": int(x_train.shape[1]),
            "accuracy": float(np.mean(test["pred"] == y_test)) if len(y_test) else float("nan"),
            "classifier_fit_samples": int(len(est.fit_indices_)),
            "skipped": [list(s) for s in dataset.skipped] + [[f"{s}#{i}", r] for s, i, r in failures],
            "build_seconds": round(time.time() - started, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        tmp.replace(directory / "meta.json")
        return cls(directory)

    def _array(self, name: str, mmap: bool = False) -> np.ndarray | None:
        path = self.directory / f"{name}.npy"
        if not path.exists():
            return None
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)

    @cached_property
    def x_train(self) -> np.ndarray:
        return self._array("x_train", mmap=True)

    @cached_property
    def x_test(self) -> np.ndarray:
        return self._array("x_test", mmap=True)

    @cached_property
    def paths_train(self) -> np.ndarray | None:
        """Image paths (relative to ``meta['root']``) of the training samples, when the source has files."""
        return self._array("paths_train")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def accuracy(self) -> float:
        return float(self.meta["accuracy"])

    def per_class_accuracy(self) -> np.ndarray:
        """(K,) test accuracy per true class (NaN where a class has no test samples)."""
        totals = self.confusion.sum(axis=1)
        return np.divide(np.diag(self.confusion), totals, out=np.full(self.n_classes, np.nan), where=totals > 0)

    def pairs(self) -> list[ConfusionPair]:
        """Every confused (true, predicted) pair, worst first (computed once: 1000 classes = 1M cells)."""
        return self._pairs

    @cached_property
    def _pairs(self) -> list[ConfusionPair]:
        return confusion_pairs(self.confusion)

    @cached_property
    def class_importance(self) -> np.ndarray:
        """(n_train,) importance scaled to (0, 1] within each class, for display."""
        return normalize_per_class(self.importance, self.y_train)

    def ranked(self, label: int, *, descending: bool = True) -> np.ndarray:
        """Train indices of class ``label`` sorted by importance (most important first unless ``descending=False``)."""
        members = np.flatnonzero(self.y_train == label)
        order = np.argsort(self.importance[members], kind="stable")
        return members[order[::-1] if descending else order]

    def confused_test(self, true: int, predicted: int) -> np.ndarray:
        """Test indices with label ``true`` predicted as ``predicted``, most confident first."""
        members = np.flatnonzero((self.y_test == true) & (self.pred_test == predicted))
        return members[np.argsort(-self.p_pred_test[members], kind="stable")]


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40] or "dataset"
