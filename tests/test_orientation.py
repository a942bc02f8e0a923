"""Orientation view of the outlier score (issue 14): a self-supervised rotation predictor on the images themselves."""
import numpy as np
import pytest
import torch

from coreclean.data import load_source
from coreclean.exploration.neighbors import nearest_neighbors
from coreclean.exploration.orientation import OrientationScorer, orientation_score
from coreclean.exploration.outliers import outlier_score, tail_surprise


@pytest.fixture(scope="module")
def digits_with_rotated():
    """Digits' 1,437 training images (8x8 uint8) with 30 of them turned by 90, 180 or 270 degrees."""
    images = load_source("digits").images("train").copy()
    rng = np.random.default_rng(0)
    rotated = rng.choice(len(images), 30, replace=False)
    for row in rotated:
        images[row] = np.rot90(images[row], rng.integers(1, 4))
    return images, rotated


def test_rotated_images_score_highest(digits_with_rotated):
    images, rotated = digits_with_rotated
    scorer = OrientationScorer().fit(images)
    score = scorer.score(images)
    assert score.shape == (len(images),) and score.dtype == np.float32 and np.isfinite(score).all()
    assert scorer.side_ == 8 and scorer.steps_ == 100   # small images are not enlarged; few steps on few images
    top = np.argsort(-score)[:30]
    assert len(set(top) & set(rotated)) >= 20          # measured 27-28 of 30 (seeds 0, 1, 2)
    normal = np.setdiff1d(np.arange(len(images)), rotated)
    assert np.median(score[rotated]) > np.quantile(score[normal], 0.95)


def test_seeded_fit_is_reproducible_and_leaves_torch_state_alone(digits_with_rotated):
    images = digits_with_rotated[0][:400]
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    first = orientation_score(images, min_steps=30, random_state=4)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads
    np.testing.assert_array_equal(first, orientation_score(images, min_steps=30, random_state=4))
    assert not np.array_equal(first, orientation_score(images, min_steps=30, random_state=5))


def test_colour_float_and_non_square_images_are_accepted():
    rng = np.random.default_rng(1)
    colour = rng.random((64, 30, 24, 3)).astype(np.float32)    # float pixels in [0, 1], H != W
    scorer = OrientationScorer(min_steps=5).fit(colour)
    assert scorer.side_ == 20 and scorer.scale_ == pytest.approx(float(colour[scorer.train_rows_].max()))
    assert scorer.score(colour[:7]).shape == (7,)


@pytest.mark.parametrize("images, message", [
    (np.zeros((5, 8)), "expected"),
    (np.zeros((5, 8, 8, 2)), "expected"),
    (np.zeros((0, 8, 8)), "at least one image"),
    (np.zeros((5, 3, 8)), "4x4"),
    (np.full((5, 8, 8), "a"), "numeric"),
    (np.where(np.arange(64).reshape(1, 8, 8) == 9, np.nan, np.ones((3, 8, 8))), "NaN"),
])
def test_bad_images_raise_value_error_naming_them(images, message):
    with pytest.raises(ValueError, match=message):
        OrientationScorer().fit(images)


def test_score_before_fit_raises():
    with pytest.raises(RuntimeError, match="fit"):
        OrientationScorer().score(np.zeros((3, 8, 8), np.uint8))


def test_tail_surprise_is_monotone_and_calibrated():
    score = np.random.default_rng(2).exponential(size=10_000)
    surprise = tail_surprise(score)
    order = np.argsort(score)
    assert (np.diff(surprise[order]) > 0).all()                               # no ties made: ordinary rows keep order
    assert surprise[order[0]] == 0
    assert surprise[order[8999]] == pytest.approx(np.log(10), abs=0.01)       # the 90th percentile
    assert surprise[order[9899]] == pytest.approx(np.log(100), abs=0.01)      # the 99th percentile
    assert np.allclose(tail_surprise(np.ones(50)), 0)                          # a constant view stands nothing out
    with pytest.raises(ValueError, match="quantiles"):
        tail_surprise(score, lo=0.99, hi=0.9)


def test_outlier_score_with_orientation_ranks_both_kinds_of_strays_first():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    far, turned = np.arange(10), np.arange(10, 20)
    X[far] *= 6                                        # strays in the embedding
    orientation = rng.normal(size=3000)
    orientation[turned] += 8                           # strays only the orientation view sees
    _, sim = nearest_neighbors(X, k=10)
    plain, combined = outlier_score(X, sim), outlier_score(X, sim, orientation=orientation)
    assert combined.dtype == np.float32
    assert set(np.argsort(-combined)[:20]) == set(far) | set(turned)
    assert not set(turned) & set(np.argsort(-plain)[:20])
    with pytest.raises(ValueError, match="orientation"):
        outlier_score(X, sim, orientation=orientation[:-1])


def test_build_of_in_memory_images_uses_the_orientation_view(digits_analysis):
    info = digits_analysis.meta["outliers"]
    assert info["views"] == ["mahalanobis", "knn", "orientation"] and info["units"] == "nats"
    n = len(digits_analysis.y_train)
    assert info["orientation"]["side"] == 8 and info["orientation"]["train_images"] == n - n // 5  # 1/5 held out
    assert info["orientation"]["rotation_accuracy"] > 0.8
    score = digits_analysis.stack("outlier_train")
    assert score.shape == (len(digits_analysis.y_train),) and score.min() >= 0
    assert len(np.unique(score)) > 0.5 * len(score)  # ordinary rows stay ordered, not all tied at ln 10 (1,104 values)


def test_images_with_no_upright_leave_the_view_out():
    """Images stored in any orientation (satellite, microscopy) give the rotation task nothing to learn: chance
    accuracy on held-out images, and the build's outlier score stays the embedding views alone."""
    from coreclean.exploration.stage import ORIENTATION_MIN_ACCURACY, explore_stage

    images = load_source("digits").images("train")
    rng = np.random.default_rng(0)
    turned = np.stack([np.rot90(image, k) for image, k in zip(images, rng.integers(0, 4, len(images)))])
    scorer = OrientationScorer().fit(turned)
    assert scorer.rotation_accuracy_ < ORIENTATION_MIN_ACCURACY <= OrientationScorer().fit(images).rotation_accuracy_
    x = turned.reshape(len(turned), -1).astype(np.float32)
    explored = explore_stage(x, x[:0], np.zeros(len(x), np.int64), np.zeros(len(x)), pixels_train=turned,
                             pixels_test=turned[:0])
    info = explored.meta["outliers"]
    assert info["views"] == ["mahalanobis", "knn"] and info["orientation_skipped"]["rotation_accuracy"] < 0.5
    assert np.allclose(explored.arrays["outlier_train"], outlier_score(x, explored.arrays["neighbor_sim_train"]))
    stripes = np.repeat(rng.integers(0, 256, (1500, 12, 1), dtype=np.uint8), 12, axis=2)  # lying vs standing only
    assert OrientationScorer().fit(stripes).rotation_accuracy_ < ORIENTATION_MIN_ACCURACY


def test_large_images_are_converted_in_small_batches():
    from coreclean.exploration.orientation import BATCH_VALUES, SCORE_BATCH, _batch_rows

    assert _batch_rows(np.zeros((2, 28, 28), np.uint8)) == SCORE_BATCH
    rows = _batch_rows(np.zeros((2, 224, 224, 3), np.uint8))
    assert rows * 224 * 224 * 3 <= BATCH_VALUES < (rows + 1) * 224 * 224 * 3
