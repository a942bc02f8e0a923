"""Shared test fixtures. Analyses are built once per test run and copied into a test's own cache.

The suite runs on two pytest-xdist workers, one test file each at a time (``-n 2 --dist loadfile``, the README's
command): a "session" is a worker's, but the shared analyses are built once per run, by whichever worker asks first
(under a file lock in the run's temporary folder; the other waits or finds them done); module fixtures (a module's
server and browser) stay within one worker.

Analyses (built once per run, shared by both workers; never write into the ``*_build`` directories themselves):

* ``digits_build`` (session) — directory of the digits analysis. Read-only: copy it before changing anything.
* ``digits_analysis`` — this test's own copy of it in ``cache`` (its own review log, its own rounds); change freely.
* ``copy_analysis(built, cache)`` — copy any built analysis directory into a cache (once), returns the copy.
* ``fashion_subset_dir`` (session) — Fashion-MNIST IDX ``.gz`` files of a subset (``FASHION_TRAIN`` training,
  ``FASHION_TEST`` test images of the installed set); skips where dataset-fashion-mnist is not installed.
  Full Fashion-MNIST builds never run in the default suite.
* ``fashion_build`` (session) — directory of the analysis of ``fashion-mnist:<fashion_subset_dir>``; read-only.
* ``module_digits`` (module) — the digits analysis copied into ``module_cache`` (for a module's server).

Other shared resources:

* ``dask_scheduler`` (session) — address (``tcp://...``) of a Dask LocalCluster of 2 single-threaded worker
  processes, started once (skips without ``distributed``); builds and benches reach it by that address. Only
  test_cluster.py uses it, so one worker of the run starts one.
* ``run_script(script, *args)`` — a bench/ script's command line run in this process; returns its stdout.

Caches and helpers:

* ``cache`` — a fresh, empty analysis cache for this test, also ``CORECLEAN_CACHE``.
* ``run_app(query=None, page=None, secrets=None)`` — the dashboard in AppTest on ``cache`` (seeded with a copy of
  the digits analysis, which the dashboard opens by default); fails on any exception. No short clock: AppTest waits
  up to ``WAIT_S`` (300 s) for a run.
* ``make_image_folder``, ``write_embeddings`` — tiny datasets on disk; ``weights_file`` (session) — a ResNet18
  state_dict (random weights; read-only).
* ``module_cache`` (module), ``serve_dashboard`` (``with serve_dashboard(cache) as url``), ``server`` (module: a
  server on ``module_cache``, which holds ``module_digits``), ``browser`` (module: headless Chromium whose pages wait up to ``WAIT_MS`` for
  anything — wait for the app's state with ``settle(page)`` from ``bench.server``, never for a fixed time).
"""
import gzip
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `bench` and `ui` are imported from the repository root
    sys.path.insert(0, str(ROOT))

from bench.server import WAIT_S  # noqa: E402
from coreclean.data import FASHION_MNIST_DIR  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "2")
# pretrained weights cannot be downloaded here: image-folder builds use random init unless a test says otherwise
os.environ.setdefault("CORECLEAN_WEIGHTS", "none")
APP = str(ROOT / "dashboard.py")
FASHION_TRAIN, FASHION_TEST = 3000, 500  # the Fashion-MNIST subset every Fashion-MNIST test shares (accuracy 0.83)


# --- analyses built once per session ------------------------------------------------------------------------------
def copy_analysis(built: Path, cache: Path) -> Path:
    """Copy the analysis directory ``built`` into ``cache`` (unless already there); returns the copy. A copy opens,
    rebuilds (no-op) and retrains like the original: its name is its cache key."""
    target = Path(cache) / Path(built).name
    if not target.exists():
        shutil.copytree(built, target)
    return target


@pytest.fixture(scope="session", name="copy_analysis")
def copy_analysis_fixture():
    """``copy_analysis(built, cache)``: copy a session-built analysis into a test's cache (once); returns the copy."""
    return copy_analysis


def _run_folder(tmp_path_factory) -> Path:
    """The temporary folder of this whole run: above the workers' own (``pytest-N/``, not ``pytest-N/popen-gwK/``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _built_once(tmp_path_factory, name: str, source: str) -> Path:
    """The analysis of ``source`` in the run's shared cache ``name``: built by the first worker that asks, under a
    lock; a later caller's build finds it complete and returns at once."""
    from filelock import FileLock

    from coreclean import Analysis

    shared = _run_folder(tmp_path_factory)
    with FileLock(str(shared / f"shared-{name}.lock")):
        return Analysis.build(source, cache_dir=shared / f"shared-{name}").directory


@pytest.fixture(scope="session")
def digits_build(tmp_path_factory) -> Path:
    """The digits analysis, built once per run. Read-only: tests copy it (``digits_analysis``, ``copy_analysis``)."""
    return _built_once(tmp_path_factory, "digits", "digits")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh analysis cache for this test; the dashboard and the CLI read it from CORECLEAN_CACHE."""
    directory = tmp_path / "cache"
    directory.mkdir()
    monkeypatch.setenv("CORECLEAN_CACHE", str(directory))
    return directory


@pytest.fixture
def digits_analysis(cache, digits_build):
    """This test's own copy of the digits analysis, in ``cache``: change it, its log and its rounds freely."""
    from coreclean import Analysis

    return Analysis.load(copy_analysis(digits_build, cache))


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One cache for a module's long-lived server (browser tests); nothing else shares it."""
    return tmp_path_factory.mktemp("module-cache")


@pytest.fixture(scope="module")
def module_digits(module_cache, digits_build):
    """The digits analysis copied into ``module_cache`` (the module's server opens it by default)."""
    from coreclean import Analysis

    return Analysis.load(copy_analysis(digits_build, module_cache))


@pytest.fixture(scope="session")
def fashion_dir():
    """The installed Fashion-MNIST files (dataset-fashion-mnist); skips where missing, fails in CI."""
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        if os.environ.get("CI"):
            pytest.fail("Fashion-MNIST missing in CI: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip("dataset-fashion-mnist not installed")
    return FASHION_MNIST_DIR


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


@pytest.fixture(scope="session")
def fashion_subset_dir(fashion_dir, tmp_path_factory) -> Path:
    """IDX ``.gz`` files of the first ``FASHION_TRAIN`` training and ``FASHION_TEST`` test images of the installed
    Fashion-MNIST (both splits hold every class about equally), in the layout ``fashion-mnist:DIR`` reads."""
    from filelock import FileLock

    from coreclean.data.fashion_mnist import read_idx

    directory = _run_folder(tmp_path_factory) / "shared-fashion-subset"  # one for the run: one cache key
    with FileLock(f"{directory}.lock"):
        if not directory.exists():
            written = directory.with_name(directory.name + ".partial")
            written.mkdir(exist_ok=True)
            for prefix, count in (("train", FASHION_TRAIN), ("t10k", FASHION_TEST)):
                for kind in ("images-idx3", "labels-idx1"):
                    name = f"{prefix}-{kind}-ubyte.gz"
                    _write_idx(written / name, read_idx(fashion_dir / name)[:count])
            written.rename(directory)
    return directory


@pytest.fixture(scope="session")
def fashion_build(fashion_subset_dir, tmp_path_factory) -> Path:
    """The analysis of the Fashion-MNIST subset, built once per run. Read-only: copy it to change it."""
    return _built_once(tmp_path_factory, "fashion", f"fashion-mnist:{fashion_subset_dir}")


@pytest.fixture(scope="session")
def dask_scheduler():
    """Address of a LocalCluster with 2 single-threaded worker processes (opened through ``local:2``), shared by
    every test that needs workers (starting one costs seconds of CPU per worker)."""
    pytest.importorskip("distributed")
    from coreclean.build.cluster import open_cluster, parse_cluster

    with open_cluster(parse_cluster("local:2")) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        yield client.scheduler.address


@pytest.fixture
def run_script(tmp_path, monkeypatch, capsys):
    """``run_script(script, *args) -> stdout``: run bench/SCRIPT as ``python bench/SCRIPT ARGS`` would (its
    ``__main__`` block, its argv, ``tmp_path`` as working directory) but in this process, so no run pays for a fresh
    interpreter and its imports; fails with its stderr unless it exits with code 0. Environment changes the script
    makes are undone afterwards."""
    import runpy

    def run(script: str, *args: str) -> str:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", [str(ROOT / "bench" / script), *args])
        monkeypatch.setenv("CORECLEAN_CACHE", os.environ.get("CORECLEAN_CACHE", str(tmp_path / "default-cache")))
        capsys.readouterr()
        try:
            runpy.run_path(str(ROOT / "bench" / script), run_name="__main__")
            code = 0
        except SystemExit as done:
            code = done.code
        out, err = capsys.readouterr()
        assert code in (0, None), f"{script} exited with {code!r}:\n{err[-3000:]}"
        return out

    return run


# --- the dashboard in AppTest -------------------------------------------------------------------------------------
@pytest.fixture
def app_file() -> str:
    """Path of the dashboard's entry script."""
    return APP


@pytest.fixture
def run_app(cache, digits_build):
    """``run_app(query=None, page=None, secrets=None)``: the dashboard in AppTest on this test's cache, which holds
    a copy of the digits analysis; fails on an exception. Waits up to ``WAIT_S`` for each run."""
    from streamlit.testing.v1 import AppTest

    copy_analysis(digits_build, cache)

    def run(query: dict | None = None, page: str | None = None, secrets: dict | None = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=WAIT_S)
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


# --- small datasets on disk ---------------------------------------------------------------------------------------
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


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """A ResNet18 state_dict written once per session (pretrained weights cannot be downloaded here). Read-only."""
    import torch
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


# --- real servers and a real browser: tests/browser_fixtures.py -----------------------------------------------------
from tests.browser_fixtures import browser, serve_dashboard, server  # noqa: E402,F401  (fixtures, found by name)
