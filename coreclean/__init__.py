"""coreclean: find mislabeled and problem samples in image-classification datasets, offline.

The pipeline, one layer per step: :mod:`coreclean.data` (sources) → :mod:`coreclean.embedding.embed` (backbones) →
:mod:`coreclean.classifier.model` / :mod:`coreclean.importance.sensitivity` (classifier and sensitivity) → :mod:`coreclean.build.pipeline`
(stages) → :mod:`coreclean.build.store` (the one writer) → :class:`Analysis` (reading and queries) →
:mod:`coreclean.review.log` / :mod:`coreclean.build.retrain` (decisions and rounds).
"""
from .analysis.reader import Analysis
from .importance.coreset import coreset
from .data import Dataset, load_source
from .importance.sensitivity import CoresetSensitivity, importance, normalize_per_class

__all__ = ["Analysis", "CoresetSensitivity", "Dataset", "coreset", "importance", "load_source", "normalize_per_class"]
__version__ = "0.1.0"
