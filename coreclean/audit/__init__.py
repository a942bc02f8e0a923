"""Dataset audit (above :mod:`coreclean.analysis` in the pipeline): how many labels are wrong and where they go,
suggested labels with calibrated confidence, overlapping classes, class balance, health scores, and the
self-contained report (:mod:`coreclean.audit.report`)."""
from .audit import Audit, audit_of, compute_audit
from .noise import NoiseEstimate, estimate_noise

__all__ = ["Audit", "NoiseEstimate", "audit_of", "compute_audit", "estimate_noise"]
