"""How an analysis is built: :class:`BuildParams`, typed and frozen, the one owner of every build setting.

The CLI and the dashboard construct it, every stage and :func:`coreclean.build.retrain.retrain` read it, and
``meta.json`` stores it under ``"params"`` with a schema version, so a round refits exactly as its build did
(same ``C``, sample cap and importance backend). Where a build runs (``--cluster``) is not a parameter: a cluster
build gives the single-process result.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from ..config import weights_setting
from ..data import Dataset
from ..embedding.embed import check_backbone, default_backbone, weights_identity
from ..embedding.registry import resolve_weights
from ..importance.backends import check_backend

PARAMS_SCHEMA = 1


@dataclass(frozen=True)
class BuildParams:
    """Every setting a build reads.

    backbone : a name of the registry (:mod:`coreclean.embedding.registry`: pixels, precomputed, cnn, any
        torchvision classification model, clip:ARCH, clip); None: the source's default.
    weights : network weights: ``"imagenet"`` (torchvision's DEFAULT enum; for clip:ARCH its first open_clip tag),
        an enum member name or open_clip tag, a state_dict / checkpoint file (a model directory for ``clip``), or
        None (random init); ``"none"`` reads as None. Default: the one weights policy,
        :func:`coreclean.config.weights_setting` (``$CORECLEAN_WEIGHTS``, else ``"imagenet"``). Only network
        backbones use them; a file is kept as its absolute path (a text query reloads it later).
    pca : components for the pixels backbone (None or 0: off).
    C : inverse L2 strength of the classifier (> 0).
    importance : importance backend (:data:`coreclean.importance.backends.IMPORTANCE_BACKENDS`).
    max_fit_samples : rows the classifier is fit on: ``"auto"``, None (all) or a positive int.
    """

    backbone: str | None = None
    weights: str | None = field(default_factory=weights_setting)
    pca: int | None = 128
    C: float = 1.0
    importance: str = "coreclean"
    max_fit_samples: int | str | None = "auto"

    def __post_init__(self):
        if self.weights is not None:  # a Path is kept as its string; "none" means random init
            weights = str(self.weights)
            object.__setattr__(self, "weights", None if weights.strip().lower() == "none" else weights)
        if not isinstance(self.C, (int, float)) or isinstance(self.C, bool) or not math.isfinite(self.C) \
                or self.C <= 0:
            raise ValueError(f"C={self.C!r}: expected a positive finite number.")
        if self.pca is not None and (not isinstance(self.pca, int) or isinstance(self.pca, bool) or self.pca < 0):
            raise ValueError(f"pca={self.pca!r}: expected a non-negative integer (0 = off).")
        mfs = self.max_fit_samples
        if not (mfs is None or mfs == "auto" or (isinstance(mfs, int) and not isinstance(mfs, bool) and mfs > 0)):
            raise ValueError(f"max_fit_samples={mfs!r}: expected 'auto', None (all rows) or a positive integer.")

    def resolved(self, dataset: Dataset) -> "BuildParams":
        """These params for ``dataset``: backbone and importance backend checked (the backbone defaults to the
        source's), and settings the backbone does not read set to None so they cannot split the cache."""
        check_backend(self.importance)
        backbone = check_backbone(dataset, self.backbone or default_backbone(dataset))
        return replace(self, backbone=backbone, weights=resolve_weights(backbone, self.weights),
                       pca=self.pca if backbone == "pixels" else None)

    def cache_params(self) -> dict:
        """What identifies the result in the cache key (resolved params; the weights by identity, a file by its
        digest). Defaults of later settings are left out so keys of earlier analyses stay valid."""
        params = {"backbone": self.backbone, "weights": weights_identity(self.weights), "pca": self.pca, "C": self.C}
        if self.importance != "coreclean":
            params["importance"] = self.importance
        if self.max_fit_samples != "auto":
            params["max_fit_samples"] = self.max_fit_samples
        return params

    def to_meta(self) -> dict:
        """The stored form (``meta["params"]``): the weights by identity (a file by its sha256), a schema version."""
        return {"schema": PARAMS_SCHEMA, **asdict(self), "weights": weights_identity(self.weights)}

    @classmethod
    def from_meta(cls, meta: dict, where: str = "meta.json") -> "BuildParams":
        """The params an analysis was built with. Older analyses (settings as flat keys of meta) are mapped; a
        newer schema is refused with what to do."""
        stored = meta.get("params")
        if stored is None:  # before schema 1: flat keys, defaults where absent
            stored = {"schema": PARAMS_SCHEMA, "backbone": meta.get("backbone"), "weights": meta.get("weights"),
                      "pca": meta.get("pca"), "C": meta.get("C", 1.0),
                      "importance": meta.get("importance", "coreclean"),
                      "max_fit_samples": meta.get("max_fit_samples", "auto")}
        if not isinstance(stored, dict) or stored.get("schema") != PARAMS_SCHEMA:
            schema = stored.get("schema") if isinstance(stored, dict) else None
            raise ValueError(f"{where}: build params schema {schema!r}, this coreclean reads {PARAMS_SCHEMA}; "
                             "upgrade coreclean or rebuild with 'python -m coreclean build'.")
        fields = {k: stored.get(k) for k in ("backbone", "weights", "pca", "C", "importance", "max_fit_samples")}
        try:  # stored weights are an identity (a file's digest), for reading, not for loading again
            return cls(**fields)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: damaged build params ({err}); rebuild with 'python -m coreclean build'.") \
                from err
