"""Text search over an analysis built with a CLIP-style backbone: rank training samples by the similarity of
their stored image embeddings to a typed query, with the exact cosine search of
:mod:`coreclean.exploration.neighbors`. Hidden where the backbone has no text tower (:func:`text_tower` is None).
"""
from __future__ import annotations

import numpy as np

from ..build import store
from ..embedding.text import text_embeddings
from ..exploration.cosine import exact_search


def text_tower(analysis) -> dict | None:
    """The build's text tower (``meta["text_tower"]`` of the original build; a round inherits it), or None."""
    tower = analysis.meta.get("text_tower")
    if tower is None and analysis.is_revision:
        tower = store.read_meta(analysis.root_analysis).get("text_tower")
    return tower


def zero_shot(analysis) -> np.ndarray | None:
    """(n,) p(label) of each training sample under zero-shot classification, or None without a text tower."""
    return analysis.stack("zero_shot_train")


def search_text(analysis, query: str, k: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(indices (k',), cosine similarities (k',)) of the training samples closest to ``query``, most similar
    first; k' = min(k, n). ``ValueError`` for an empty query or an analysis without a text tower."""
    tower = text_tower(analysis)
    if tower is None:
        raise ValueError(f"{analysis.directory}: built with backbone {analysis.params.backbone}, which has no text "
                         "tower; build with a clip backbone for text search.")
    if not query.strip():
        raise ValueError("empty query: type what the images should show, e.g. 'a photo of a dog wearing a hat'.")
    x = analysis.x_train
    vector = text_embeddings(tower, [query.strip()])
    indices, similarity = exact_search(x, vector, int(min(k, len(x))))
    return indices[0], similarity[0]
