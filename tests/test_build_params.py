"""Typed build settings (issue 22): BuildParams in meta, rounds keep the build's settings, stage timings."""
import json

import numpy as np
import pytest

from coreclean import Analysis, cli
from coreclean.build.params import PARAMS_SCHEMA, BuildParams
from coreclean.build.retrain import retrain
from coreclean.config import weights_setting
from coreclean.importance import explain
from coreclean.importance.backends import IMPORTANCE_BACKENDS
from coreclean.review.log import ReviewLog


def _by_first_feature(X, y):
    """A test importance backend: the first feature, shifted positive (any distinct, known order will do)."""
    x0 = np.asarray(X[:, 0], dtype=np.float64)
    return x0 - x0.min() + 1.0


@pytest.fixture
def embeddings(tmp_path, write_embeddings):
    return write_embeddings(tmp_path / "emb", n=90, d=6, k=3)


def test_a_round_uses_the_builds_importance_backend_and_says_so(embeddings, cache, monkeypatch):
    monkeypatch.setitem(IMPORTANCE_BACKENDS, "first-feature", _by_first_feature)
    built = Analysis.build(str(embeddings), cache_dir=cache, importance="first-feature", C=0.5)
    assert built.params.importance == "first-feature" and built.params.C == 0.5
    assert built.meta["params"]["schema"] == PARAMS_SCHEMA
    np.testing.assert_allclose(built.importance, _by_first_feature(built.x_train, built.y_train))
    log = ReviewLog(built.directory, len(built.y_train), built.n_classes)
    log.record(0, int(built.y_train[0]), "remove")
    revision = retrain(built, log.current())
    assert revision.importance == "first-feature"
    after = Analysis.load(revision.directory)
    assert after.params == built.params  # C, sample cap and backend carried into the round, and stored
    kept = ~after.removed_train
    np.testing.assert_allclose(after.importance[kept],
                               _by_first_feature(np.asarray(after.x_train)[kept], after.y_train[kept]))


def test_a_round_of_a_backend_this_install_lacks_is_refused_clearly(embeddings, cache, monkeypatch):
    monkeypatch.setitem(IMPORTANCE_BACKENDS, "first-feature", _by_first_feature)
    built = Analysis.build(str(embeddings), cache_dir=cache, importance="first-feature")
    monkeypatch.delitem(IMPORTANCE_BACKENDS, "first-feature")
    again = Analysis.load(built.directory)  # still opens: viewing does not need the backend
    with pytest.raises(ValueError, match="importance='first-feature': choose one of"):
        retrain(again, {})


def test_params_validate_at_the_edge():
    for bad in ({"C": 0}, {"C": float("nan")}, {"pca": -1}, {"max_fit_samples": 0}, {"max_fit_samples": "all"}):
        with pytest.raises(ValueError):
            BuildParams(**bad)
    assert BuildParams(weights="none").weights is None
    with pytest.raises(AttributeError):
        BuildParams().C = 2.0  # frozen


def test_one_weights_policy(monkeypatch):
    monkeypatch.delenv("CORECLEAN_WEIGHTS", raising=False)
    assert weights_setting() == "imagenet" == BuildParams().weights
    monkeypatch.setenv("CORECLEAN_WEIGHTS", "/models/r18.pt")
    assert weights_setting() == "/models/r18.pt" == BuildParams().weights
    assert weights_setting("none") is None and weights_setting("other.pt") == "other.pt"


def test_older_meta_is_mapped_and_a_newer_schema_refused(embeddings, cache):
    built = Analysis.build(str(embeddings), cache_dir=cache)
    meta_file = built.directory / "meta.json"
    meta = json.loads(meta_file.read_text())
    legacy = {k: v for k, v in meta.items() if k != "params"}
    legacy.update(backbone="precomputed", weights=None, pca=None, C=2.0, importance="coreclean")
    meta_file.write_text(json.dumps(legacy))
    assert Analysis.load(built.directory).params == BuildParams(backbone="precomputed", weights=None, pca=None,
                                                                C=2.0)
    meta_file.write_text(json.dumps({**meta, "params": {**meta["params"], "schema": PARAMS_SCHEMA + 1}}))
    with pytest.raises(ValueError, match=r"meta.json: build params schema 2, this coreclean reads 1"):
        Analysis.load(built.directory)


def test_meta_records_every_stage_and_build_prints_them(embeddings, cache, capsys):
    assert cli.main(["build", str(embeddings), "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    (directory,) = [d for d in cache.iterdir() if (d / "meta.json").exists()]
    meta = json.loads((directory / "meta.json").read_text())
    stages = meta["stages"]
    # embeddings without images: no quality stage (digits' pixels or an image folder have one)
    assert list(stages) == ["embed", "fit", "evaluate", "neighbours", "duplicates", "outliers", "map", "store"]
    for entry in stages.values():
        assert entry["seconds"] >= 0 and entry["cpu_seconds"] >= 0 and entry["peak_mb"] > 0
    assert sum(s["seconds"] for s in stages.values()) <= meta["build_seconds"] + 0.05
    for name in stages:
        assert f"\n{name} " in out
    assert "peak MB" in out and not (directory.with_name(directory.name + ".partial")).exists()


def test_why_flagged_reads_the_terms_the_build_stored(embeddings, cache):
    built = Analysis.build(str(embeddings), cache_dir=cache)
    stored = explain.bound_terms_of(built)
    again = explain.bound_terms(built.x_train, built.y_train, built.coef)  # the older analyses' path
    for name in ("loss", "leverage_term", "p_pred"):
        np.testing.assert_allclose(getattr(stored, name), getattr(again, name), rtol=1e-5, atol=1e-6)
    bound = stored.bound()
    np.testing.assert_allclose(built.importance, 0.5 * bound / bound.sum() + 0.5 / len(bound), rtol=1e-6)
