"""The fast embedder computes what the plain torchvision loop computes: batched preprocessing, JPEG draft decoding,
decoding threads (the CUDA path's), channels-last and the CUDA-only AMP rule (speed: bench/embed_throughput.py)."""
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNet18_Weights, resnet18

from coreclean import load_source
from coreclean.data.decode import open_image, open_reduced, to_rgb
from coreclean.embedding import batches, embed
from coreclean.embedding.batches import Preprocessing, resized_size
from coreclean.quality.thresholds import RAW_COLUMNS, image_scores

PREPROCESS = ResNet18_Weights.IMAGENET1K_V1.transforms()
ONE_LEVEL = 1 / 255 / min(PREPROCESS.std) + 1e-6  # one grey level of the input, in normalized units


def photo(size, seed=0) -> Image.Image:
    """Smooth colour content with some fine texture, like a photo (and like bench/embed_throughput.py's files)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).resize(size, Image.BILINEAR)
    grain = rng.integers(-12, 12, (size[1], size[0], 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(base) + grain, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An ImageFolder with a val/ split; train/ holds 500x375 and portrait JPEGs, a grayscale JPEG, an RGBA PNG, a
    tiny image and a truncated JPEG."""
    root = tmp_path_factory.mktemp("throughput") / "images"
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
    train = root / "train"
    photo((500, 375), 1).save(train / "a" / "land.jpg", quality=90)
    photo((375, 500), 2).save(train / "a" / "portrait.jpg", quality=90)
    photo((341, 256), 3).convert("L").save(train / "a" / "gray.jpg", quality=90)  # already the resize's size
    photo((300, 200), 4).convert("RGBA").save(train / "b" / "alpha.png")
    photo((20, 12), 5).save(train / "b" / "tiny.png")  # enlarged by the resize
    photo((500, 375), 6).save(train / "b" / "broken.jpg", quality=90)
    data = (train / "b" / "broken.jpg").read_bytes()
    (train / "b" / "broken.jpg").write_bytes(data[: len(data) // 2])  # the header scans, the decode fails
    for label in ("a", "b"):
        photo((64, 48), 6).save(root / "val" / label / "v.png")
    return root


@pytest.fixture(scope="module")
def reference_model(weights_file):
    """The plain loop's model: ResNet18 from the session's weights file, NCHW, float32, eval mode."""
    model = resnet18(weights=None)
    model.load_state_dict(torch.load(weights_file, weights_only=True))
    model.fc = torch.nn.Identity()
    return model.eval()


def reference_features(files, model) -> np.ndarray:
    """The plain loop: full decode, torchvision's per-image transform, the NCHW float32 model."""
    with torch.inference_mode():
        return model(torch.stack([PREPROCESS(to_rgb(open_image(f))) for f in files])).numpy()


def relative_error(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.linalg.norm(ours - reference, axis=1) / np.linalg.norm(reference, axis=1)


def test_batched_preprocessing_matches_torchvision(folder):
    stage = Preprocessing(PREPROCESS)
    assert stage.fast
    images = [to_rgb(open_image(f)) for f in sorted((folder / "train").rglob("*.*")) if f.name != "broken.jpg"]
    ours = stage.batch([stage.image(image) for image in images], "cpu")
    reference = torch.stack([PREPROCESS(image) for image in images])
    assert ours.shape == reference.shape == (len(images), 3, 224, 224)
    assert ours.is_contiguous(memory_format=torch.channels_last) == batches.CHANNELS_LAST
    difference = (ours - reference).abs()
    # the crop is resized straight from the file's pixels: a rounding step apart in at most a few pixels
    assert difference.max() <= ONE_LEVEL and (difference > 0).float().mean() < 0.01
    assert resized_size((500, 375), 256) == (341, 256) and resized_size((375, 500), 256) == (256, 341)


def test_other_preprocessing_runs_per_image():
    from torchvision import transforms

    compose = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor()])
    stage = Preprocessing(compose, threads=1)
    image = photo((64, 48))
    assert not stage.fast and stage.image(image) is image and stage.needed_size((64, 48)) == (64, 48)
    np.testing.assert_array_equal(stage.batch([image], "cpu")[0].numpy(), compose(image).numpy())


@pytest.mark.parametrize("prefetch", [0, 2])  # 0: the CPU build; 2 batches ahead in threads: the CUDA build's shape
def test_embedder_features_equal_the_reference_loop(folder, weights_file, reference_model, tmp_path, monkeypatch,
                                                    prefetch):
    monkeypatch.setattr(embed, "CPU_PREFETCH", prefetch)
    monkeypatch.setattr(embed, "CPU_DECODE_THREADS", 2)  # images of a batch on 2 threads (the broken one among them)
    dataset = load_source(str(folder))
    x, failed = embed.embed_split(dataset, "train", tmp_path / "train", weights=str(weights_file), batch_size=3)
    paths = list(dataset.paths_train)
    ok = [i for i, p in enumerate(paths) if not p.endswith("broken.jpg")]
    assert len(paths) == 6 and [i for i, _ in failed] == [paths.index(p) for p in paths if p.endswith("broken.jpg")]
    assert np.isnan(x[[i for i, _ in failed]]).all()
    reference = reference_features([folder / paths[i] for i in ok], reference_model)
    assert relative_error(x[ok], reference).max() < 1e-4  # channels-last rounding, one grey level here and there


def test_large_jpegs_decode_reduced_within_tolerance(tmp_path, reference_model):
    """Draft decoding (1/2 scale here) stays >= 2x the resize's output, so the resize still low-passes it."""
    big = tmp_path / "big.jpg"
    photo((1400, 1050), 7).save(big, quality=90)
    stage = Preprocessing(PREPROCESS)
    image, full_size, factor = open_reduced(big, stage.needed_size)
    assert (full_size, factor, image.size) == ((1400, 1050), 2, (700, 525))
    ours = stage.batch([stage.image(image, factor, full_size)], "cpu")
    reference = PREPROCESS(to_rgb(open_image(big)))[None]
    assert (ours - reference).abs().mean() < 0.02  # about one grey level on average
    with torch.inference_mode():
        error = relative_error(reference_model(ours.contiguous()).numpy(), reference_model(reference).numpy())
    assert error.max() < 0.02  # as large as re-saving the file at JPEG quality 90 (docs/benchmarks.md §4)
    small = tmp_path / "small.jpg"
    photo((1000, 750), 8).save(small, quality=90)  # 1/2 would be 500 px < 2 x 341: decoded in full
    assert open_reduced(small, stage.needed_size)[2] == 1


def test_quality_rows_keep_the_file_size_under_draft(tmp_path):
    root = tmp_path / "big"
    for i in range(4):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        photo((1600, 1200) if i < 2 else (64, 48), i).save(root / "ab"[i % 2] / f"{i}.jpg", quality=90)
    dataset = load_source(str(root))
    index = next(i for i, p in enumerate(dataset.paths_train) if p.endswith(("/0.jpg", "/1.jpg")))
    item, row = embed._decode(dataset, "train", index, Preprocessing(PREPROCESS), quality=True)
    assert item.shape == (224, 224, 3) and RAW_COLUMNS[:2] == ("width", "height")
    assert tuple(row[:2]) == (1600, 1200)  # the file's size, not the 1/2-scale decode's
    full = image_scores(open_image(root / dataset.paths_train[index]))
    np.testing.assert_allclose(row[2:], full[2:], atol=0.02)


def test_amp_is_cuda_only_and_checked_against_float32():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = batches.prepare_model(model.eval())
    batch = batches.layout(torch.randn(4, 3, 32, 32))
    with torch.inference_mode():
        plain = model(batch).numpy()
    np.testing.assert_array_equal(batches.forward(model, batch), plain)  # the CPU never autocasts
    assert model not in batches._AMP_CHECKED
    # the check that decides AMP on CUDA rejects a half-precision result that drifts (bfloat16 here)
    half = batches._run(model, batch, torch.bfloat16)
    assert batches.amp_error(half, torch.from_numpy(plain)) > batches.AMP_TOLERANCE
    assert batches.amp_error(torch.from_numpy(plain), torch.from_numpy(plain)) == 0.0
    assert embed.load_backbone("resnet18", None, "auto").device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_prefetch_keeps_order_and_raises():
    assert list(embed._prefetched(lambda b: b * 2, range(5))) == [0, 2, 4, 6, 8]
    assert list(embed._prefetched(lambda b: b * 2, range(9), threads=3)) == list(range(0, 18, 2))

    def fails(b):
        if b == 2:
            raise RuntimeError("decode failed")
        return b

    with pytest.raises(RuntimeError, match="decode failed"):
        list(embed._prefetched(fails, range(4), threads=2))
