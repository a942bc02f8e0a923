"""Shared test fixtures: every test gets its own analysis cache, and helpers come as fixtures."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coreclean.data import FASHION_MNIST_DIR

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard.py")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh analysis cache for this test; the dashboard and the CLI read it from CORECLEAN_CACHE."""
    directory = tmp_path / "cache"
    directory.mkdir()
    monkeypatch.setenv("CORECLEAN_CACHE", str(directory))
    return directory


@pytest.fixture
def digits_analysis(cache):
    from coreclean import Analysis

    return Analysis.build("digits", cache_dir=cache)


@pytest.fixture
def app_file() -> str:
    """Path of the dashboard's entry script."""
    return APP


@pytest.fixture
def run_app(cache):
    """``run_app(query=None, page=None)``: the dashboard in AppTest on this test's cache; fails on an exception."""
    from streamlit.testing.v1 import AppTest

    def run(query: dict | None = None, page: str | None = None, secrets: dict | None = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        for key, value in (secrets or {}).items():
            at.secrets[key] = value
        if query:
            at.query_params.update(query)
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return run


@pytest.fixture(scope="session")
def fashion_dir():
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST missing in CI: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip("dataset-fashion-mnist not installed")
    return FASHION_MNIST_DIR


def _image_folder(root: Path, classes=("cat", "dog"), per_class=6, size=16, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
            pixels[..., c % 3] += 120
            Image.fromarray(pixels).save(folder / f"{name}_{i}.png")
    return root


def _embeddings(directory: Path, n=60, d=5, k=3, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        y = np.arange(n) % k
        np.save(directory / f"x_{split}.npy", (rng.normal(size=(n, d)) + y[:, None]).astype(np.float32))
        np.save(directory / f"y_{split}.npy", y)
    return directory


@pytest.fixture
def make_image_folder():
    """``make_image_folder(root, classes=("cat", "dog"), per_class=6, size=16, seed=0)``: a tiny ImageFolder tree
    with distinct colour statistics per class."""
    return _image_folder


@pytest.fixture
def write_embeddings():
    """``write_embeddings(directory, n=60, d=5, k=3, seed=0)``: an embeddings directory (x/y train/test .npy)."""
    return _embeddings


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One cache for a module's long-lived server (browser tests); nothing else shares it."""
    return tmp_path_factory.mktemp("module-cache")


@pytest.fixture
def weights_file(tmp_path):
    """A ResNet18 state_dict written by the test (pretrained weights cannot be downloaded here)."""
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = tmp_path / "resnet18.pt"
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serve(cache: Path):
    """`streamlit run dashboard.py` on a free port until the block ends; yields the base URL."""
    port = _free_port()
    env = {**os.environ, "CORECLEAN_CACHE": str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", APP, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not become healthy within 90 s")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium missing in CI: .ci/run must apt-get install chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")


@pytest.fixture(scope="session")
def serve_dashboard():
    """``with serve_dashboard(cache_dir) as url:`` — a real `streamlit run` server on a free port."""
    _require_chromium()
    return _serve


@pytest.fixture(scope="module")
def server(module_cache, serve_dashboard):
    """A dashboard server on this module's cache, for the module's browser tests."""
    with serve_dashboard(module_cache) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium driven by Playwright."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield instance
        instance.close()
