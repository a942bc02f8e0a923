"""Pure view logic: class labels, chart-selection helpers and figure builders (no browser needed)."""
import numpy as np

from coreclean.analysis.labels import unique_labels, visible_classes
from ui import figures, selection


LABELS = ["cat", "dog", "bird", "crane", "crane"]


def test_unique_labels_disambiguates_duplicates():
    assert unique_labels(LABELS) == ["cat", "dog", "bird", "crane #3", "crane #4"]


def test_pair_label_round_trip_and_rejects_garbage():
    labels = unique_labels(LABELS)
    assert selection.parse_pair(selection.pair_label(3, 1, labels), labels) == (3, 1)
    for bad in (None, "", "cat", "cat → cat", "cat → wolf", "../etc → dog"):
        assert selection.parse_pair(bad, labels) is None


def test_pair_from_selection_reads_customdata_and_ignores_diagonal():
    assert selection.pair_from_selection(None) is None
    assert selection.pair_from_selection({"points": []}) is None
    assert selection.pair_from_selection({"points": [{"customdata": [2, 2, 5, 1.0]}]}) is None
    event = {"points": [{"x": "dog", "y": "cat", "customdata": [0, 1, 7, 0.2]}], "box": [], "lasso": []}
    assert selection.pair_from_selection(event) == (0, 1)
    as_dict = {"points": [{"customdata": {"0": 3, "1": 4, "2": 1, "3": 0.1}}]}
    assert selection.pair_from_selection(as_dict) == (3, 4)
    assert selection.pair_from_selection({"points": [{"customdata": "junk"}, {"customdata": [1, 0]}]}) == (1, 0)


def test_confusion_figure_cells_carry_true_and_predicted():
    counts = np.array([[5, 2, 0], [1, 6, 0], [0, 3, 4]])
    fig = figures.confusion_figure(counts, ["a", "b", "c"], np.arange(3), selected=(2, 1))
    diagonal, off = fig.data[0], fig.data[1]
    assert len(diagonal.x) == 3 and len(off.x) == 6
    cell = list(off.customdata[:, :2].astype(int).tolist()).index([2, 1])
    assert off.x[cell] == "b" and off.y[cell] == "c" and off.customdata[cell][2] == 3
    assert off.marker.symbol == "square"
    assert fig.layout.xaxis.type == "category"
    assert len(fig.data) == 3  # the highlighted selection


def test_visible_classes_top_n_and_search():
    K = 50
    counts = np.eye(K, dtype=int) * 10
    counts[7, 30] = 5
    counts[12, 3] = 2
    labels = [f"class{i}" for i in range(K)]
    assert visible_classes(counts, labels, top_n=60).tolist() == list(range(K))
    assert visible_classes(counts, labels, top_n=4).tolist() == [3, 7, 12, 30]
    assert visible_classes(counts, labels, top_n=4, search="CLASS4").tolist() == [4] + list(range(40, 50))
    assert visible_classes(counts, labels, search="zebra").tolist() == []


def test_range_from_selection_and_histogram():
    assert selection.range_from_selection({"box": [{"x": [0.9, 0.4], "y": [0, 3]}]}) == (0.4, 0.9)
    assert selection.range_from_selection({"box": [{"x": [-1, 2]}]}) == (0.0, 1.0)
    assert selection.range_from_selection({"box": []}) is None
    fig = figures.importance_histogram({"a": np.array([0.1, 0.9]), "b": np.array([0.5])}, facet=True)
    assert [t.name for t in fig.data] == ["a", "b"]


def test_page_bounds_clamps():
    assert selection.page_bounds(10, 0, 6) == (0, 6)
    assert selection.page_bounds(10, 8, 6) == (8, 10)
    assert selection.page_bounds(10, 99, 6) == (9, 10)
    assert selection.page_bounds(10, -3, 6) == (0, 6)
    assert selection.page_bounds(0, 5, 6) == (0, 0)
