"""Offline failure paths of the optional backends (dataheroes, Google Drive) and the safe tar extraction."""
import io
import socket
import tarfile
import textwrap
import time

import numpy as np
import pytest

from bench.server import WAIT_S
from coreclean import Analysis
from coreclean.cli.main import main
from coreclean.importance.dataheroes_adapter import DataHeroesUnavailable, dataheroes_importance, importance_from_result
from coreclean.data.gdrive import load_gdrive, safe_extract


@pytest.fixture
def fake_dataheroes(tmp_path, monkeypatch):
    """Put a stand-in 'dataheroes' package on the child's path; ``behaviour`` picks what it does."""
    def install(behaviour: str):
        pkg = tmp_path / "fakepkgs" / "dataheroes"
        pkg.mkdir(parents=True, exist_ok=True)
        body = {
            "license": "raise ConnectionError('license server unreachable')",
            "hang": "import time; time.sleep(600)",
            "ok": "pass",
        }[behaviour]
        (pkg / "__init__.py").write_text(textwrap.dedent(f"""
            import numpy as np
            class CoresetTreeServiceLG:
                def __init__(self, optimized_for):
                    assert optimized_for == "cleaning"
                    {body}
                def build(self, X, y):
                    self.y = y
                def get_cleaning_samples(self, class_size):
                    assert all(v == "all" for v in class_size.values())
                    idx = np.arange(len(self.y))[::-1]
                    return {{"idx": idx, "importance": idx / len(idx)}}
        """))
        monkeypatch.setenv("PYTHONPATH", str(tmp_path / "fakepkgs"))
        monkeypatch.syspath_prepend(str(tmp_path / "fakepkgs"))
    return install


def small_problem():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    return (rng.normal(size=(40, 3)) + y[:, None]).astype(np.float32), y


def test_missing_package_gives_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # nothing named dataheroes there
    X, y = small_problem()
    import importlib.util

    if importlib.util.find_spec("dataheroes") is not None:
        pytest.skip("dataheroes is installed here")
    with pytest.raises(DataHeroesUnavailable, match="not installed.*requirements-dataheroes.txt.*built-in"):
        dataheroes_importance(X, y, timeout=WAIT_S)  # a cap: the child answers at once


def test_license_failure_offline(fake_dataheroes):
    fake_dataheroes("license")
    X, y = small_problem()
    with pytest.raises(DataHeroesUnavailable, match="license server unreachable.*built-in importance"):
        dataheroes_importance(X, y, timeout=WAIT_S)  # a cap: the child answers at once


def test_hang_is_bounded(fake_dataheroes):
    fake_dataheroes("hang")
    X, y = small_problem()
    started = time.time()
    with pytest.raises(DataHeroesUnavailable, match="did not answer within 1 s"):
        dataheroes_importance(X, y, timeout=1)  # the hung child is then killed at once
    assert time.time() - started < 30


def test_adapter_result_becomes_our_artifacts(fake_dataheroes, tmp_path, capsys, write_embeddings):
    fake_dataheroes("ok")
    d = write_embeddings(tmp_path / "emb")
    a = Analysis.build(str(d), cache_dir=tmp_path / "cache", importance="dataheroes")
    assert a.params.importance == "dataheroes"
    np.testing.assert_allclose(a.importance, np.arange(60) / 60)
    builtin = Analysis.build(str(d), cache_dir=tmp_path / "cache")
    assert builtin.directory != a.directory and builtin.params.importance == "coreclean"


def test_cli_dataheroes_failure_is_one_line(fake_dataheroes, tmp_path, capsys, write_embeddings):
    fake_dataheroes("license")
    code = main(["build", str(write_embeddings(tmp_path / "emb")), "--cache", str(tmp_path / "c"),
                 "--importance", "dataheroes"])
    err = capsys.readouterr().err
    assert code == 2 and "license" in err and "Traceback" not in err


def test_importance_from_result_validates():
    np.testing.assert_array_equal(importance_from_result({"idx": [2, 0], "importance": [0.5, 1.0]}, 3), [1, 0, 0.5])
    for bad in ({"idx": [0]}, {"idx": [0, 1], "importance": [1.0]}, {"idx": [5], "importance": [1.0]},
                {"idx": [0], "importance": [np.nan]}):
        with pytest.raises(ValueError, match="dataheroes result"):
            importance_from_result(bad, 3)


def test_gdrive_offline_fails_fast(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    started = time.time()
    with pytest.raises(ValueError, match="offline"):
        load_gdrive("https://drive.google.com/drive/folders/abc", tmp_path)
    assert time.time() - started < 10


def _tar(path, entries):
    with tarfile.open(path, "w") as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = b"img"
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, "a.png"
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
    return path


@pytest.mark.parametrize("entry, message", [
    (("../evil.png", "file"), "escape"), (("/abs/evil.png", "file"), "escape"),
    (("imgs/../../evil.png", "file"), "escape"), (("link.png", "symlink"), "link"),
    (("hard.png", "hardlink"), "link"), (("dev", "device"), "not a regular file"),
])
def test_safe_extract_rejects_unsafe_entries(tmp_path, entry, message):
    archive = _tar(tmp_path / "images.tar", [("a.png", "file"), entry])
    with pytest.raises(ValueError, match=message):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out" / "a.png").exists()


def test_gdrive_download_extracts_and_verifies(tmp_path, write_embeddings):
    def fake_download(url, out):
        write_embeddings(out)
        np.save(out / "img_train.npy", np.array([f"imgs/{i}.png" for i in range(60)]))
        _tar(out / "images.tar", [("imgs/0.png", "file")])

    ds = load_gdrive("https://drive.google.com/drive/folders/xyz", tmp_path, downloader=fake_download)
    assert ds.kind == "embeddings" and len(ds.y_train) == 60
    assert (ds.root / "imgs" / "0.png").read_bytes() == b"img"

    def missing(url, out):
        (out / "y_test.npy").unlink()

    with pytest.raises(ValueError, match="lacks y_test.npy"):
        load_gdrive("https://drive.google.com/drive/folders/xyz", tmp_path, downloader=missing)
