"""coreclean: find mislabeled and problem samples in image-classification datasets, offline.

The pipeline, one layer per step: :mod:`coreclean.data` (sources) → :mod:`coreclean.embed` (backbones) →
:mod:`coreclean.model` / :mod:`coreclean.importance` (classifier and sensitivity) → :mod:`coreclean.pipeline`
(stages) → :mod:`coreclean.store` (the one writer) → :class:`Analysis` (reading and queries) →
:mod:`coreclean.review` / :mod:`coreclean.retrain` (decisions and rounds).
"""
from .analysis import Analysis
from .coreset import coreset
from .data import Dataset, load_source
from .importance import CoresetSensitivity, importance, normalize_per_class

__all__ = ["Analysis", "CoresetSensitivity", "Dataset", "coreset", "importance", "load_source", "normalize_per_class"]
__version__ = "0.1.0"
