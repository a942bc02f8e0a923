import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coreclean.sources import FASHION_MNIST_DIR

os.environ.setdefault("OMP_NUM_THREADS", "2")
# The dashboard reads its cache directory at import; give the whole test session a private one.
DASHBOARD_CACHE = Path(tempfile.mkdtemp(prefix="coreclean-test-cache-"))
os.environ["CORECLEAN_CACHE"] = str(DASHBOARD_CACHE)


@pytest.fixture(scope="session")
def digits_analysis(tmp_path_factory):
    from coreclean import Analysis

    return Analysis.build("digits", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def fashion_dir():
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST missing in CI: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip("dataset-fashion-mnist not installed")
    return FASHION_MNIST_DIR


def make_image_folder(root: Path, classes=("cat", "dog"), per_class=6, size=16, seed=0) -> Path:
    """A tiny ImageFolder tree with distinct colour statistics per class."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] += 120
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root
