"""Text search and the zero-shot label check with a tiny CLIP model built in the test (random weights, no
download): the build stores the text tower and p(label) per sample; rank/export gain a zero_shot column; a query
ranks samples by the stored image embeddings; the Map and Review pages show the query box only with a text tower."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from coreclean import Analysis
from coreclean.analysis.text_query import search_text, text_tower, zero_shot
from coreclean.build.params import BuildParams
from coreclean.cli.main import main
from coreclean.embedding import text
from tests.test_backbones import tiny_clip_dir


@pytest.fixture(scope="module")
def clip_analysis(tmp_path_factory):
    """An ImageFolder built with the tiny CLIP directory as backbone (built once for this module)."""
    from tests.conftest import _image_folder

    root = tmp_path_factory.mktemp("clip")
    folder = _image_folder(root / "imgs", classes=("cat", "dog", "bird"), per_class=6)
    model_dir = tiny_clip_dir(root / "tiny-clip")
    return Analysis.build(str(folder), BuildParams(backbone="clip", weights=str(model_dir)), cache_dir=root / "cache")


def test_build_stores_tower_and_zero_shot(clip_analysis):
    tower = text_tower(clip_analysis)
    assert tower["backbone"] == "clip" and tower["weights"].endswith("tiny-clip") and tower["identity"]
    agreement = zero_shot(clip_analysis)
    assert agreement.shape == (len(clip_analysis.y_train),) and ((agreement > 0) & (agreement < 1)).all()
    # the same numbers from the text tower reloaded in this process from the recorded path
    prompts = text.text_embeddings(tower, text.class_prompts(clip_analysis.classes))
    expected = text.zero_shot_agreement(np.asarray(clip_analysis.x_train), clip_analysis.y_train, prompts,
                                        text.logit_scale(tower))
    np.testing.assert_allclose(agreement, expected, rtol=1e-4, atol=1e-6)


def test_query_ranks_by_similarity(clip_analysis):
    indices, similarity = search_text(clip_analysis, "a photo of a dog wearing a hat", k=5)
    vector = text.text_embeddings(text_tower(clip_analysis), ["a photo of a dog wearing a hat"])[0]
    brute = np.asarray(clip_analysis.x_train) @ vector
    np.testing.assert_array_equal(indices, np.argsort(-brute, kind="stable")[:5])
    np.testing.assert_allclose(similarity, brute[indices], atol=1e-5)
    with pytest.raises(ValueError, match="empty query"):
        search_text(clip_analysis, "  ")


def test_query_refused_without_text_tower_or_after_weights_changed(clip_analysis, digits_analysis, tmp_path):
    with pytest.raises(ValueError, match="no text tower"):
        search_text(digits_analysis, "a seven")
    assert zero_shot(digits_analysis) is None
    tower = dict(text_tower(clip_analysis), identity="0" * 64)
    with pytest.raises(ValueError, match="changed since the build"):
        text.text_embeddings(tower, ["a cat"])


def test_rank_and_export_have_a_zero_shot_column(clip_analysis, tmp_path):
    for command in ("rank", "export"):
        out = tmp_path / f"{command}.csv"
        assert main([command, str(clip_analysis.directory), "--out", str(out)]) == 0
        rows = list(csv.DictReader(out.open()))
        by_index = {int(r["index"]): float(r["zero_shot"]) for r in rows}
        assert len(by_index) == len(clip_analysis.y_train)
        np.testing.assert_allclose([by_index[i] for i in range(len(by_index))], zero_shot(clip_analysis),
                                   rtol=1e-3)


def test_pages_offer_text_search_only_with_a_text_tower(clip_analysis, digits_analysis, cache, run_app):
    from tests.conftest import copy_analysis
    from ui.map_colours import colour_fields, map_colour

    assert "zero_shot" in colour_fields(clip_analysis) and "zero_shot" not in colour_fields(digits_analysis)
    np.testing.assert_allclose(map_colour(clip_analysis, "zero_shot", np.arange(3)).values,
                               zero_shot(clip_analysis)[:3])
    at = run_app(None, "pages/review.py")  # digits: pixels, no text tower -> no box at all
    assert not [t for t in at.text_input if t.key == "q"]
    source = f"cache:{copy_analysis(clip_analysis.directory, cache).name}"
    query = "a photo of a dog wearing a hat"
    at = run_app({"source": source, "q": query, "rows": "1", "cols": "3"}, "pages/review.py")
    assert at.text_input(key="q").value == query
    expected = search_text(clip_analysis, query, k=3)[0]
    assert any(f"closest to “{query}”" in c.value for c in at.caption)
    tiles = {b.key for b in at.button if str(b.key).startswith("flip_")}
    assert tiles == {f"flip_{i}" for i in expected}, tiles  # the page shows the 3 closest samples
    at = run_app({"source": source, "mq": query, "colour": "zero_shot"}, "pages/map.py")
    assert at.selectbox(key="colour").value == "zero_shot"
    assert any(f"samples closest to “{query}”" in h.value for h in at.subheader)
