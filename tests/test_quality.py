"""Image-quality scores on tiny generated images: each issue type, odd image modes, flags and the registry."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from coreclean.quality.thresholds import (
    ISSUE_NAMES, ISSUES, RAW_COLUMNS, array_scores, dataset_scores, flags, image_scores, issue_names, table_columns,
    threshold_values,
)

COL = {name: i for i, name in enumerate(RAW_COLUMNS)}


def texture(size=(160, 120), seed=0) -> Image.Image:
    """Sharp colour blocks (8 px) with mid-range values: a 'normal' image for every issue."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 226, (size[1] // 8 + 1, size[0] // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(blocks.repeat(8, 0).repeat(8, 1)[:size[1], :size[0]])


def raw(image) -> dict:
    return dict(zip(RAW_COLUMNS, image_scores(image).tolist()))


def flagged(image, issue: str) -> bool:
    """Flag of ``issue`` for ``image`` alone (per-image issues do not depend on the other rows)."""
    return bool(flags(dataset_scores(image_scores(image)[None]))[0, ISSUE_NAMES.index(issue)])


def test_normal_texture_has_no_issue():
    row = dataset_scores(image_scores(texture())[None])
    assert not flags(row)[0, :5].any(), dict(zip(ISSUE_NAMES, row[0]))


@pytest.mark.parametrize("issue, make", [
    ("dark", lambda im: Image.fromarray((np.asarray(im) * 0.15).astype(np.uint8))),
    ("light", lambda im: Image.fromarray((255 - (255 - np.asarray(im, float)) * 0.15).astype(np.uint8))),
    ("blurry", lambda im: im.filter(ImageFilter.GaussianBlur(5))),
    ("low_information", lambda im: Image.new("RGB", im.size, (90, 140, 60))),
    ("grayscale", lambda im: im.convert("L")),
    ("grayscale", lambda im: im.convert("L").convert("RGB")),  # gray content in an RGB file
])
def test_each_per_image_issue_is_flagged_and_only_on_the_bad_image(issue, make):
    good, bad = texture(), make(texture())
    assert flagged(bad, issue) and not flagged(good, issue)
    assert raw(bad)[issue] > raw(good)[issue]


def test_blur_score_grows_with_blur():
    blur = [raw(texture((300, 200)).filter(ImageFilter.GaussianBlur(r)))["blurry"] for r in (0, 1, 3, 6)]
    assert blur == sorted(blur) and blur[0] < ISSUES["blurry"].threshold < blur[-1]


def test_near_constant_with_noise_is_low_information():
    rng = np.random.default_rng(1)
    noisy = np.clip(128 + rng.normal(0, 3, (120, 160, 3)), 0, 255).astype(np.uint8)
    assert flagged(Image.fromarray(noisy), "low_information")


def test_odd_size_and_odd_aspect_are_relative_to_the_dataset():
    sizes = [(400, 300)] * 12 + [(380, 285), (420, 315), (300, 400), (48, 36), (2400, 1800), (800, 200), (190, 840)]
    rows = np.stack([image_scores(Image.new("RGB", size, (120, 80, 40))) for size in sizes])
    result = flags(dataset_scores(rows))
    odd_size, odd_aspect = result[:, ISSUE_NAMES.index("odd_size")], result[:, ISSUE_NAMES.index("odd_aspect_ratio")]
    assert odd_size.tolist() == [False] * 15 + [True, True, False, False]
    assert odd_aspect.tolist() == [False] * 17 + [True, True]  # portrait 3:4 among 4:3 is not odd
    # the two elongated images have the median's area: odd aspect only


def test_all_same_size_dataset_flags_nothing_for_size():
    rows = np.stack([image_scores(texture((64, 64), seed)) for seed in range(5)])
    assert not flags(dataset_scores(rows))[:, 5:].any()


@pytest.mark.parametrize("make", [
    lambda: Image.fromarray(np.full((30, 40), 60000, np.uint16)),  # 16-bit, nearly white
    lambda: Image.fromarray(np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (20, 1))).convert("I"),
    lambda: Image.fromarray(np.linspace(0, 1, 1200, dtype=np.float32).reshape(30, 40)),  # 'F'
    lambda: texture().convert("P"),
    lambda: texture().convert("RGBA"),
    lambda: texture().convert("LA"),
    lambda: texture().convert("1"),
    lambda: texture().convert("CMYK"),
    lambda: texture((1000, 1)),  # one pixel high
    lambda: texture((1, 1)),
    lambda: np.asarray(texture())[:, :, :1],  # (H, W, 1)
    lambda: np.dstack([np.asarray(texture()), np.full((120, 160), 255, np.uint8)]),  # (H, W, 4)
    lambda: (np.asarray(texture().convert("L")).astype(np.uint16) * 257),  # uint16 array
])
def test_unusual_modes_give_finite_scores_in_range(make):
    image = make()
    row = image_scores(image)
    assert row.dtype == np.float32 and row.shape == (len(RAW_COLUMNS),) and np.isfinite(row).all()
    assert (row[2:] >= 0).all() and (row[2:] <= 1).all()
    width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
    assert row[:2].tolist() == [width, height]


def test_sixteen_bit_images_are_scaled_by_their_range():
    white = raw(Image.fromarray(np.full((30, 40), 62000, np.uint16)))
    dark = raw(Image.fromarray(np.full((30, 40), 3000, np.uint16)))
    assert white["light"] > 0.9 and white["dark"] < 0.1 and dark["dark"] > 0.9
    assert raw(np.full((30, 40), 62000, np.uint16))["light"] == pytest.approx(white["light"])


def test_alpha_is_dropped_and_palette_expanded_like_the_embedding():
    rgba = texture().convert("RGBA")
    rgba.putalpha(0)  # fully transparent: the embedding's convert("RGB") still sees the colours
    assert raw(rgba) == pytest.approx(raw(texture()))
    palette = texture().convert("P")
    assert raw(palette)["grayscale"] < 0.1 and abs(raw(palette)["dark"] - raw(texture())["dark"]) < 0.1


def test_arrays_and_pil_images_agree_and_input_is_untouched():
    gray = np.asarray(texture().convert("L"))
    before = gray.copy()
    assert image_scores(gray) == pytest.approx(image_scores(Image.fromarray(gray)))
    assert (gray == before).all()


@pytest.mark.parametrize("channels", [None, 1, 3, 4])
def test_array_scores_match_image_scores(channels):
    rng = np.random.default_rng(2)
    shape = (9, 28, 20) + (() if channels is None else (channels,))
    pixels = (rng.integers(0, 256, shape) * rng.uniform(0, 1, (9,) + (1,) * (len(shape) - 1))).astype(np.uint8)
    pixels[0] = 200  # constant image: no edges, lowest information
    expected = np.stack([image_scores(image) for image in pixels])
    assert array_scores(pixels) == pytest.approx(expected, abs=1e-6)
    big = np.stack([np.asarray(texture((200, 150), s)) for s in range(2)])  # above 128 px: per-image downscale
    assert array_scores(big) == pytest.approx(np.stack([image_scores(image) for image in big]))


def test_object_on_plain_background_is_not_low_information():
    item = np.zeros((28, 28), np.uint8)
    item[20:26, 4:24] = 230  # a small bright shape on black, like a Fashion-MNIST sandal
    assert not flagged(item, "low_information")


def test_downscaling_keeps_brightness_scores():
    small, big = texture((200, 150)), texture((200, 150)).resize((1600, 1200), Image.NEAREST)
    assert raw(big)["dark"] == pytest.approx(raw(small)["dark"], abs=0.03)
    assert raw(big)["light"] == pytest.approx(raw(small)["light"], abs=0.03)


def test_thresholds_change_flags():
    rows = np.stack([image_scores(texture()), image_scores(texture().filter(ImageFilter.GaussianBlur(2)))])
    scores = dataset_scores(rows)
    j = ISSUE_NAMES.index("blurry")
    between = float(scores[:, j].mean())
    assert flags(scores, {"blurry": 0.0})[:, j].all()
    assert not flags(scores, {"blurry": 1.0})[:, j].any()
    assert flags(scores, {"blurry": between})[:, j].tolist() == (scores[:, j] > between).tolist()
    assert threshold_values({"dark": 0.5})["dark"] == 0.5 and threshold_values()["dark"] == ISSUES["dark"].threshold


@pytest.mark.parametrize("overrides, message", [
    ({"blurriness": 0.3}, "unknown issue 'blurriness'; choose from dark, light, blurry"),
    ({"dark": 1.5}, r"in \[0, 1\]"),
    ({"dark": "high"}, "pass a number"),
])
def test_bad_thresholds_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        flags(np.zeros((1, len(ISSUE_NAMES))), overrides)


def test_registry_and_source_kinds():
    assert issue_names() == list(ISSUE_NAMES) == list(ISSUES)
    assert issue_names("pixels") == ["dark", "light", "blurry", "low_information"]
    assert all(issue.description and 0 < issue.threshold < 1 for issue in ISSUES.values())
    rows = np.stack([image_scores(np.asarray(texture((28, 28), s).convert("L"))) for s in range(4)])
    scores = dataset_scores(rows, source_kind="pixels")
    memory_only = [ISSUE_NAMES.index(n) for n in ("grayscale", "odd_size", "odd_aspect_ratio")]
    assert np.isnan(scores[:, memory_only]).all() and not flags(scores)[:, memory_only].any()
    with pytest.raises(ValueError, match="source_kind='disk': choose one of files, pixels"):
        issue_names("disk")


def test_failed_rows_stay_nan_and_never_flag():
    rows = np.stack([np.full(len(RAW_COLUMNS), np.nan, np.float32), image_scores(texture((40, 30)))]
                    + [image_scores(texture((400, 300), seed)) for seed in range(6)])
    scores = dataset_scores(rows)
    assert np.isnan(scores[0]).all() and not flags(scores)[0].any()
    assert flags(scores)[:, ISSUE_NAMES.index("odd_size")].tolist() == [False, True] + [False] * 6


def test_table_columns_use_datalab_names():
    scores = dataset_scores(np.stack([image_scores(texture())]))
    columns = table_columns(scores, source_kind="pixels")
    assert list(columns) == ["dark_score", "is_dark_issue", "light_score", "is_light_issue", "blurry_score",
                             "is_blurry_issue", "low_information_score", "is_low_information_issue"]
    assert len(table_columns(scores)) == 2 * len(ISSUE_NAMES)


@pytest.mark.parametrize("bad, message", [
    ("photo.jpg", "pass a decoded PIL image"),
    (np.zeros((0, 5), np.uint8), "shape"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((4, 4), bool), "dtype"),
    (np.zeros((4, 4, 2), np.uint8), "C in 1, 3, 4"),
])
def test_bad_images_raise(bad, message):
    with pytest.raises(ValueError, match=message):
        image_scores(bad)


def test_bad_raw_and_scores_raise():
    with pytest.raises(ValueError, match="raw: shape"):
        dataset_scores(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="width/height below 1"):
        dataset_scores(np.zeros((2, len(RAW_COLUMNS))))
    with pytest.raises(ValueError, match="scores: shape"):
        flags(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="pixels: array of shape"):
        array_scores(np.zeros((28, 28), np.uint8))
