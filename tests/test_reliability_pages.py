"""Reliability, third pass (issue 23), the dashboard's side: a damaged file is a message in the page that reads it
(the other pages keep working), a refused Apply & retrain is a message, and first contact shows the titled
navigation. Each test names the item of the issue it guards."""
import numpy as np
import pytest

from coreclean import Analysis
from coreclean.review.log import ReviewLog

PER_SAMPLE = ["images_train", "map_xy", "quality_train", "x_train", "neighbors_train", "outlier_train"]


def _truncate(analysis, name: str) -> None:
    path = analysis.directory / f"{name}.npy"
    np.save(path, np.load(path)[:-3])


# --- item 6: every stored per-sample array is checked by the store's loader, whichever reader asks ---------------
@pytest.mark.parametrize("name", PER_SAMPLE)
def test_a_truncated_array_is_named_by_the_loader(digits_analysis, name):
    _truncate(digits_analysis, name)
    analysis = Analysis.load(digits_analysis.directory)
    with pytest.raises(ValueError, match=rf"{name}\.npy: \d+ rows, but meta\.json says .*rebuild with"):
        getattr(analysis, name) if name == "x_train" else analysis.stack(name)


# --- item 6: ... and the page that reads it shows that as a message, while the other pages keep working -----------
@pytest.mark.parametrize("name, page", [("map_xy", "map"), ("quality_train", "overview"),
                                        ("outlier_train", "sample"), ("images_train", "review")])
def test_a_truncated_array_is_a_message_in_the_page(digits_analysis, run_app, name, page):
    _truncate(digits_analysis, name)
    at = run_app(page=f"pages/{page}.py")  # run_app fails on any exception (a red box)
    assert any(f"{name}.npy" in e.value and "rebuild with" in e.value for e in at.error), [e.value for e in at.error]
    at.switch_page("pages/importance.py").run()
    assert not at.exception and not at.error and at.title[0].value == "Importance"


# --- item 6: Apply & retrain whose decisions leave a class with one sample: a message, no traceback ---------------
def test_retrain_leaving_a_class_with_one_sample_is_a_message(digits_analysis, run_app):
    log = ReviewLog(digits_analysis.directory, len(digits_analysis.y_train), digits_analysis.n_classes)
    log.keep_first([np.flatnonzero(digits_analysis.y_train == 1).tolist()], digits_analysis.y_train)
    at = run_app(page="pages/decisions.py")
    next(b for b in at.button if b.label == "Apply & retrain").click().run()
    assert not at.exception, [e.value for e in at.exception]
    failed = [e.value for e in at.error if e.value.startswith("Apply & retrain failed")]
    assert failed and "single sample" in failed[0], [e.value for e in at.error]
    assert not (digits_analysis.directory / "revisions").exists() or not any(
        (digits_analysis.directory / "revisions").glob("*/meta.json"))
