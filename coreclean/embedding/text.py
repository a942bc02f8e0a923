"""The text tower of a CLIP-style backbone: embed text queries and check labels zero-shot.

A build with such a backbone stores :func:`tower_meta` (backbone, the weights as an absolute path or a pretrained
tag, and their identity) in ``meta["text_tower"]``, so a query typed later is embedded by the same model, offline
when the weights are a file or directory; a weights file changed since the build is refused (the image embeddings
would no longer match). The zero-shot agreement of a sample is p(its label) when the image is compared with one
prompt per class ("a photo of a {class}.") at the model's own logit scale.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .registry import has_text, load_clip, weights_identity

PROMPT = "a photo of a {}."


def tower_meta(backbone: str, weights: str | None) -> dict | None:
    """What a later process needs to embed text like this build did; None for backbones without text."""
    if not has_text(backbone):
        return None
    return {"backbone": backbone, "weights": weights, "identity": weights_identity(weights)}


def _stamp(weights: str | None) -> tuple[int, int]:
    """(mtime_ns, size) of a weights file or directory (0, 0 for a tag): a changed file gets hashed again."""
    from pathlib import Path

    try:
        stat = Path(str(weights)).stat() if weights is not None else None
    except OSError:
        stat = None
    return (stat.st_mtime_ns, stat.st_size) if stat else (0, 0)


@lru_cache(maxsize=8)
def _identity_now(weights: str | None, _mtime_ns: int, _size: int) -> str | None:
    """The weights' identity, hashed once per file version (a CLIP checkpoint is hundreds of MB; queries are many)."""
    return weights_identity(weights)


@lru_cache(maxsize=2)
def _text_model(backbone: str, weights: str | None):
    import open_clip

    model, _, name = load_clip(backbone, weights, "cpu")
    return model, open_clip.get_tokenizer(name)


def text_embeddings(tower: dict, texts: list[str]) -> np.ndarray:
    """(len(texts), d) float32 unit rows: the texts through the tower ``tower`` (a :func:`tower_meta` dict)."""
    import torch

    if _identity_now(tower["weights"], *_stamp(tower["weights"])) != tower["identity"]:
        raise ValueError(f"{tower['weights']}: the text tower's weights changed since the build; rebuild the "
                         "analysis so images and text come from the same model.")
    model, tokenizer = _text_model(tower["backbone"], tower["weights"])
    with torch.inference_mode():
        out = model.encode_text(tokenizer([str(t) for t in texts])).float()
    return torch.nn.functional.normalize(out, dim=-1).numpy().astype(np.float32)


def logit_scale(tower: dict) -> float:
    """The model's learned temperature (CLIP: about 100 once trained)."""
    model, _ = _text_model(tower["backbone"], tower["weights"])
    return float(model.logit_scale.detach().exp())


def class_prompts(classes: list[str]) -> list[str]:
    """One prompt per class name (underscores read as spaces)."""
    return [PROMPT.format(str(c).replace("_", " ")) for c in classes]


def zero_shot_agreement(images: np.ndarray, labels: np.ndarray, class_text: np.ndarray, scale: float
                        ) -> np.ndarray:
    """p(label | image) (n,) float32 under zero-shot classification.

    images : (n, d) unit-norm image embeddings.   labels : (n,) int class codes.
    class_text : (K, d) unit-norm prompt embeddings.   scale : logit scale.
    """
    logits = scale * (np.asarray(images, np.float32) @ class_text.T)
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return proba[np.arange(len(labels)), np.asarray(labels, np.int64)].astype(np.float32)


def zero_shot_train(tower: dict, classes: list[str], x_train: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """The zero-shot agreement (n,) of every training sample with its label."""
    return zero_shot_agreement(x_train, y_train, text_embeddings(tower, class_prompts(classes)), logit_scale(tower))
