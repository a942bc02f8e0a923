"""A built analysis, read from its directory, and the questions the dashboard and CLI ask of it.

``Analysis.build(source)`` runs the pipeline (:mod:`coreclean.build.pipeline`) once and loads the result;
``Analysis.load(directory)`` opens any analysis, a retrain revision included. Large arrays are memory-mapped.
"""
from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np

from ..build import store
from ..importance.sensitivity import normalize_per_class
from ..classifier.model import ConfusionPair, confusion_pairs, predict_proba
from ..build.params import BuildParams
from ..build.pipeline import StageProgress, build_analysis


class Analysis:
    """The arrays and metadata of one analysis (see :mod:`coreclean.build.store` for the layout).

    Attributes
    ----------
    directory : where it lives.   meta : its ``meta.json``.   classes : (K,) class names.
    params : the :class:`~coreclean.build.params.BuildParams` it was built with (older meta mapped).
    y_train : (n,) int64 labels (corrected ones in a revision).   removed_train : (n,) bool, dropped by review.
    importance : (n,) float64 sensitivity.   pred_train : (n,) int64.   p_label_train : (n,) float32.
    y_test, pred_test : (m,) int64.   p_pred_test : (m,) float32.   confusion : (K, K) int64 test counts.
    coef : (d + 1, K) float32 classifier.   x_train, x_test : (n, d), (m, d) float32 memmaps (lazy).
    """

    directory: Path
    meta: dict
    params: BuildParams
    classes: list[str]
    y_train: np.ndarray
    removed_train: np.ndarray
    importance: np.ndarray
    pred_train: np.ndarray
    p_label_train: np.ndarray
    y_test: np.ndarray
    pred_test: np.ndarray
    p_pred_test: np.ndarray
    confusion: np.ndarray
    coef: np.ndarray

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.meta = store.read_meta(self.directory)
        self.classes = [str(c) for c in self.meta["classes"]]
        self.params = BuildParams.from_meta(self.meta, where=f"{self.directory}/meta.json")
        self._chain = store.lineage(self.directory, self.meta)
        self.y_train = self._required("y_train")
        self.importance = self._required("importance")
        self.pred_train = self._required("pred_train")
        self.p_label_train = self._required("p_label_train")
        self.y_test = self._required("y_test")
        self.pred_test = self._required("pred_test")
        self.p_pred_test = self._required("p_pred_test")
        self.confusion = self._required("confusion")
        self.coef = self._required("coef")
        removed = store.load_array(self._chain, "removed_train")
        self.removed_train = np.zeros(len(self.y_train), bool) if removed is None else removed.astype(bool)

    @classmethod
    def load(cls, directory: str | Path) -> "Analysis":
        return cls(directory)

    @classmethod
    def build(cls, source, params: BuildParams | None = None, *, cache_dir: str | Path | None = None,
              progress: StageProgress | None = None, cluster: str | None = None, **settings) -> "Analysis":
        """Build (or reuse) the analysis of ``source`` (see :func:`coreclean.build.pipeline.build_analysis`).

        ``params``: a :class:`~coreclean.build.params.BuildParams`; ``settings`` (``backbone=``, ``weights=``,
        ``pca=``, ``C=``, ``importance=``, ``max_fit_samples=``) build one, or override fields of ``params``.
        ``progress``: a ``(stage, done, total)`` callable; by default bars in Jupyter (tqdm.auto), else quiet.
        """
        from .notebook import default_progress

        params = replace(params, **settings) if params is not None else BuildParams(**settings)
        bars = default_progress() if progress is None else None
        try:
            return cls(build_analysis(source, params, cache_dir=cache_dir, progress=progress or bars,
                                      cluster=cluster))
        finally:
            if bars is not None:
                bars.close()

    @property
    def figures(self):
        """The dashboard's figures of this analysis as plain plotly figures: ``.confusion()``,
        ``.importance_histogram(classes)``, ``.image_grid(indices)``, ``.map(colour=...)`` (drawn by the installed
        dashboard package through an entry point, :mod:`coreclean.analysis.notebook`; this layer draws nothing)."""
        from .notebook import figures_for

        return figures_for(self)

    def _required(self, name: str) -> np.ndarray:
        array = store.load_array(self._chain, name)
        if array is None:
            raise ValueError(f"{self.directory}: {name}.npy is missing; rebuild with 'python -m coreclean build'.")
        return array

    def _optional(self, name: str, *, mmap: bool = False) -> np.ndarray | None:
        return store.load_array(self._chain, name, mmap=mmap)

    @cached_property
    def x_train(self) -> np.ndarray:
        return self._required_mmap("x_train")

    @cached_property
    def x_test(self) -> np.ndarray:
        return self._required_mmap("x_test")

    def _required_mmap(self, name: str) -> np.ndarray:
        array = self._optional(name, mmap=True)
        if array is None:
            raise ValueError(f"{self.directory}: {name}.npy is missing; rebuild with 'python -m coreclean build'.")
        return array

    @cached_property
    def paths_train(self) -> np.ndarray | None:
        """Image paths (relative to ``meta['root']``) of the training samples, when the source has files."""
        return self._optional("paths_train")

    def stack(self, name: str) -> np.ndarray | None:
        """A stored per-sample array such as ``images_train`` or ``paths_test`` (memory-mapped), if present."""
        return self._optional(name, mmap=True)

    # --- lineage -------------------------------------------------------------------------------------------
    @property
    def is_revision(self) -> bool:
        return bool(self.meta.get("lineage"))

    @property
    def root_analysis(self) -> Path:
        """The directory of the original build this analysis descends from."""
        return self._chain[-1]

    # --- summaries -----------------------------------------------------------------------------------------
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

    def train_counts(self) -> np.ndarray:
        """(K,) number of (not removed) training samples per class."""
        return np.bincount(self.y_train[~self.removed_train], minlength=self.n_classes)

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

    # --- sample queries ------------------------------------------------------------------------------------
    def ranked(self, label: int, *, descending: bool = True) -> np.ndarray:
        """Train indices of class ``label`` sorted by importance (most important first unless ``descending=False``);
        samples removed by review are left out."""
        members = np.flatnonzero((self.y_train == label) & ~self.removed_train)
        order = np.argsort(self.importance[members], kind="stable")
        return members[order[::-1] if descending else order]

    def samples_in_range(self, labels: list[int], low: float, high: float) -> np.ndarray:
        """Train indices of classes ``labels`` whose per-class importance lies in [low, high], most important first."""
        shown = self.class_importance
        mask = np.isin(self.y_train, labels) & (shown >= low) & (shown <= high) & ~self.removed_train
        rows = np.flatnonzero(mask)
        return rows[np.argsort(-shown[rows], kind="stable")]

    def confused_test(self, true: int, predicted: int) -> np.ndarray:
        """Test indices with label ``true`` predicted as ``predicted``, most confident first."""
        members = np.flatnonzero((self.y_test == true) & (self.pred_test == predicted))
        return members[np.argsort(-self.p_pred_test[members], kind="stable")]

    def suggested_label(self, index: int) -> int:
        """The class to suggest for a sample marked mislabeled: the predicted one, else the runner-up."""
        label, predicted = int(self.y_train[index]), int(self.pred_train[index])
        if predicted != label:
            return predicted
        proba = predict_proba(np.asarray(self.x_train[index:index + 1]), self.coef)[0]
        proba[label] = -1
        return int(proba.argmax())

    def check_label(self, label: int, what: str = "label") -> int:
        """``label`` as an int if it names one of the classes, else ``ValueError``."""
        if not 0 <= int(label) < self.n_classes:
            raise ValueError(f"{what} {label} is not a class of this analysis (0..{self.n_classes - 1}).")
        return int(label)
