"""coreclean: find mislabeled and problem samples in image-classification datasets, offline."""
from .analysis import Analysis
from .coreset import coreset
from .importance import CoresetSensitivity, importance, normalize_per_class
from .sources import Dataset, load_source

__all__ = ["Analysis", "CoresetSensitivity", "Dataset", "coreset", "importance", "load_source", "normalize_per_class"]
__version__ = "0.1.0"
