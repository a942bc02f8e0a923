"""AppTest tests: every page renders, widgets change what is shown, and URL query params restore state."""

import pytest
from streamlit.testing.v1 import AppTest

def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_overview_shows_accuracy_and_all_pairs(run_app):
    at = run_app()
    assert at.title[0].value.startswith("Overview — digits")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"].endswith("%") and metrics["Classes"] == "10"
    pairs = at.dataframe[1].value
    assert list(pairs.columns) == ["true", "predicted", "rate", "count"]
    assert len(pairs) > 3 and pairs["rate"].is_monotonic_decreasing


def test_review_deep_link_restores_class_position_and_order(run_app):
    at = run_app({"cls": "3", "pos": "4", "order": "least → most", "rows": "1", "cols": "4"}, "pages/review.py")
    assert at.selectbox(key="cls").value == "3"
    assert at.slider(key="pos").value == 4
    assert at.radio(key="order").value == "least → most"
    assert any(c.startswith("Showing 5–8 of") and "labelled **3**" in c for c in captions(at))
    assert len(at.get("image")) == 4


def test_review_next_button_and_class_switch(run_app):
    at = run_app(page="pages/review.py")
    at.button[1].click().run()
    assert at.slider(key="pos").value == 6
    assert any(c.startswith("Showing 7–12") for c in captions(at))
    at.selectbox(key="cls").select("8").run()
    assert any("labelled **8**" in c for c in captions(at))


def test_review_invalid_link_falls_back_with_notice(run_app):
    at = run_app({"cls": "no-such-class", "pos": "99999"}, "pages/review.py")
    warnings = " ".join(w.value for w in at.warning)
    assert "cls=no-such-class" in warnings and "pos=99999" in warnings
    assert at.selectbox(key="cls").value == "0"


def test_confusion_pair_from_link_shows_examples(run_app):
    at = run_app(page="pages/confusion.py")
    options = at.selectbox(key="pair").options
    worst = options[0]
    assert " → " in worst
    at2 = run_app({"pair": options[1]}, "pages/confusion.py")
    assert at2.selectbox(key="pair").value == options[1]
    true, _, predicted = options[1].partition(" → ")
    assert at2.subheader[0].value == f"{true} predicted as {predicted}"
    assert len(at2.get("plotly_chart")) == 1


def test_confusion_search_filters_and_reports_no_match(run_app):
    at = run_app({"q": "zebra"}, "pages/confusion.py")
    assert any("zebra" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


def test_importance_classes_and_range_from_link(run_app):
    at = run_app({"classes": ["1", "8"], "range": ["0.5", "1.0"], "hist": "facet"}, "pages/importance.py")
    assert at.multiselect(key="classes").value == ["1", "8"]
    assert at.slider(key="range").value == (0.5, 1.0)
    table = at.dataframe[0].value
    assert set(table["label"]) <= {"1", "8"} and (table["importance"] >= 0.5).all()
    at.slider(key="range").set_range(0.0, 1.0).run()
    assert len(at.dataframe[0].value) > len(table)


def test_every_page_renders_on_fashion_mnist(fashion_subset_dir, fashion_build, copy_analysis, cache, run_app,
                                             monkeypatch):
    monkeypatch.setattr("coreclean.data.FASHION_MNIST_DIR", fashion_subset_dir)  # the picker's fashion-mnist: a subset
    copy_analysis(fashion_build, cache)  # built once per session; a rebuild finds it
    for page in ["pages/overview.py", "pages/confusion.py", "pages/importance.py", "pages/review.py"]:
        at = run_app({"source": "fashion-mnist"}, page)
        shown = [w.options for w in (*at.selectbox, *at.multiselect)] + [d.value.to_string() for d in at.dataframe]
        assert "Shirt" in str(shown), page


def test_unknown_source_in_link_falls_back_to_digits(run_app):
    at = run_app({"source": "../../etc"})
    assert any("source=../../etc" in w.value for w in at.warning)
    assert at.title[0].value.startswith("Overview — digits")


@pytest.fixture
def imagenet_shaped(tmp_path, cache):
    """1000 classes with ImageNet ids (names from torchvision), a confusable notebook/laptop pair."""
    import numpy as np

    from coreclean import Analysis

    rng = np.random.default_rng(0)
    d = tmp_path / "inet"
    d.mkdir()
    centers = rng.normal(size=(1000, 16)).astype(np.float32) * 3
    centers[681] = centers[620] + 0.05  # notebook sits on top of laptop
    for split, per_class in (("train", 4), ("test", 2)):
        y = np.repeat(np.arange(1000), per_class)
        np.save(d / f"x_{split}.npy", (centers[y] + rng.normal(size=(len(y), 16))).astype(np.float32))
        np.save(d / f"y_{split}.npy", y)
    Analysis.build(str(d), cache_dir=cache)
    return d


def test_confusion_page_with_1000_classes_search_and_top_n(imagenet_shaped, run_app):
    at = run_app({"path": str(imagenet_shaped), "q": "laptop"}, "pages/confusion.py")
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["xaxis"]["categoryarray"] == ["laptop"]
    top = run_app({"path": str(imagenet_shaped), "top": "20"}, "pages/confusion.py")
    assert top.slider(key="top").value == 20
    assert len(top.selectbox(key="pair").options) <= 500


def test_tiles_travel_inside_the_page_as_png_or_jpeg(digits_analysis, monkeypatch):
    import base64
    import io

    import numpy as np
    from PIL import Image

    from ui import widgets

    uri = widgets.tile_image(digits_analysis, 0)
    assert uri.startswith("data:image/png;base64,")  # a digit: flat, small, lossless
    picture = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert picture.size == (widgets.TILE_PX, widgets.TILE_PX)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8))  # photo-like
    monkeypatch.setattr(widgets, "image_for", lambda analysis, index, split: noise)
    photo = widgets.tile_image(digits_analysis, 0, px=200)
    assert photo.startswith("data:image/jpeg;base64,") and len(photo) < len(uri) * 20
    assert Image.open(io.BytesIO(base64.b64decode(photo.split(",", 1)[1]))).size == (200, 200)


def test_review_tiles_are_sent_as_data_uris(run_app):
    at = run_app({"rows": "1", "cols": "3"}, "pages/review.py")
    urls = [img.url for image in at.get("image") for img in image.proto.imgs]
    assert len(urls) == 3 and all(u.startswith("data:image/png;base64,") for u in urls)
