"""coreclean: find mislabeled and problem samples in image-classification datasets, offline.

The subpackages are the pipeline, upstream first (``tests/test_layering.py`` keeps every import pointing
upstream): :mod:`~coreclean.data` (sources) → :mod:`~coreclean.quality` (image quality) →
:mod:`~coreclean.embedding` (backbones) → :mod:`~coreclean.classifier` (the softmax solver) →
:mod:`~coreclean.importance` (sensitivity, coresets) → :mod:`~coreclean.exploration` (neighbours, duplicates,
outliers, map) → :mod:`~coreclean.review` (decisions, exports) → :mod:`~coreclean.build` (typed params, stages,
the store, rounds) → :mod:`~coreclean.analysis` (:class:`Analysis`: reading and queries) →
:mod:`~coreclean.audit` (noise estimate, suggestions, health, the report) → :mod:`~coreclean.cli`.
"""
from .analysis.reader import Analysis
from .config import VERSION
from .importance.coreset import coreset
from .data import Dataset, load_source
from .importance.sensitivity import CoresetSensitivity, importance, normalize_per_class

__all__ = ["Analysis", "CoresetSensitivity", "Dataset", "coreset", "importance", "load_source", "normalize_per_class"]
__version__ = VERSION
