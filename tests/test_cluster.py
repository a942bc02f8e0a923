"""Builds on a Dask cluster (issue 16): the same results as the single-process build, the flag and the
environment variable honoured, bad specs refused with one clear error.

One LocalCluster of 2 worker processes serves the session (conftest's ``dask_scheduler``); builds reach it by its
tcp:// address, which also
exercises connecting to an existing scheduler.
"""
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

pytest.importorskip("distributed")

from bench.server import WAIT_S  # noqa: E402
from coreclean import Analysis, cli  # noqa: E402
from coreclean.build.params import BuildParams  # noqa: E402
from coreclean.build import cluster as cluster_module  # noqa: E402
from coreclean.embedding import dask_embed  # noqa: E402
from coreclean.classifier import dask_passes  # noqa: E402
from coreclean.build.cluster import ClusterSpec, parse_cluster  # noqa: E402
from coreclean.config import cluster_address  # noqa: E402


@pytest.fixture
def scheduler(dask_scheduler):
    """The address of the session's LocalCluster of 2 single-threaded worker processes (opened through ``local:2``)."""
    return dask_scheduler


def test_parse_cluster_specs():
    assert parse_cluster("local:4") == ClusterSpec("local:4", workers=4)
    assert parse_cluster(" tcp://10.0.0.5:8786 ").address == "tcp://10.0.0.5:8786"
    assert parse_cluster("tcp://scheduler.svc.cluster.local:8786").workers is None
    for bad, says in [("local:0", "from 1 to 512"), ("local:two", "from 1 to 512"), ("local:", "from 1 to 512"),
                      ("http://host:8786", "not a cluster spec"), ("tcp://host", "not a cluster spec"),
                      ("tcp://host:99999", "out of range"), ("yarn", "not a cluster spec")]:
        with pytest.raises(ValueError, match=says) as error:
            parse_cluster(bad)
        assert "local:N" in str(error.value) and "tcp://HOST:PORT" in str(error.value)


def test_digits_on_cluster_equals_single_process(scheduler, tmp_path, monkeypatch, digits_build):
    monkeypatch.setattr(dask_passes, "CHUNK_ROWS", 512)  # 3 chunks of the 1437 training rows
    local = Analysis.load(digits_build)  # the session's single-process build
    spread = Analysis.build("digits", cache_dir=tmp_path / "dask", cluster=scheduler)
    assert abs(spread.accuracy - local.accuracy) <= 0.002
    assert spearmanr(spread.importance, local.importance).correlation >= 0.999
    np.testing.assert_allclose(spread.importance.sum(), 1.0)
    tasks = spread.meta["cluster"]["tasks"]  # the passes really ran as tasks, 3 chunks each
    assert spread.meta["cluster"] == {"spec": scheduler, "workers": 2, "tasks": tasks}
    assert tasks["moments"] % 3 == 0 and tasks["moments"] >= 6
    assert tasks["loss_and_gradient"] >= 3 * 10 and tasks["leverage_rows"] == 3
    assert "cluster" not in local.meta
    assert spread.directory.name == local.directory.name  # same cache key: a cluster build is the same analysis


def test_image_folder_embeds_per_shard_on_workers(scheduler, tmp_path, monkeypatch, make_image_folder,
                                                  weights_file):
    root = make_image_folder(tmp_path / "pets")
    (root / "cat" / "broken.png").write_bytes(b"not an image")
    monkeypatch.setattr(dask_embed, "CHUNK", 4)  # several shards per split
    local = Analysis.build(str(root), cache_dir=tmp_path / "local", weights=weights_file)
    spread = Analysis.build(str(root), cache_dir=tmp_path / "dask", weights=weights_file, cluster=scheduler)
    np.testing.assert_allclose(spread.x_train, local.x_train, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spread.x_test, local.x_test, rtol=1e-4, atol=1e-5)
    assert abs(spread.accuracy - local.accuracy) <= 0.002
    assert spearmanr(spread.importance, local.importance).correlation >= 0.999
    assert [s[0] for s in spread.meta["skipped"]] == [s[0] for s in local.meta["skipped"]]
    np.testing.assert_allclose(spread.stack("quality_raw_train"), local.stack("quality_raw_train"), rtol=1e-5)


def test_interrupted_cluster_embedding_resumes_per_shard(scheduler, tmp_path, monkeypatch, make_image_folder,
                                                         weights_file):
    from distributed import Client

    from coreclean.data import load_source

    monkeypatch.setattr(dask_embed, "CHUNK", 4)
    dataset = load_source(str(make_image_folder(tmp_path / "pets", per_class=4)))
    out = tmp_path / "work" / "embed-train"
    with Client(scheduler) as client:
        first, _ = dask_embed.embed_split_on(client, dataset, "train", out, tmp_path / "work" / "x.npy",
                                             weights=weights_file)
        done = sorted(out.glob("chunk_*.npy"))
        assert len(done) == -(-len(dataset.y_train) // 4)
        stamps = {f: f.stat().st_mtime_ns for f in done}
        done[-1].unlink()  # as if the build stopped before the last shard
        again, _ = dask_embed.embed_split_on(client, dataset, "train", out, tmp_path / "work" / "y.npy",
                                             weights=weights_file)
    assert all(f.stat().st_mtime_ns == stamps[f] for f in done[:-1])  # finished shards were not redone
    np.testing.assert_allclose(again, first, rtol=1e-5)


def test_cli_flag_and_environment_variable(scheduler, tmp_path, monkeypatch, write_embeddings, capsys):
    source = str(write_embeddings(tmp_path / "emb", n=120, d=6))
    assert cli.main(["build", source, "--cache", str(tmp_path / "flag"), "--cluster", scheduler]) == 0
    built = next((tmp_path / "flag").glob("*/meta.json"))
    assert json.loads(built.read_text())["cluster"]["spec"] == scheduler
    monkeypatch.setenv("CORECLEAN_CLUSTER", scheduler)  # what the dashboard's builder runs with
    from ui.jobs import Builds

    _, future = Builds().get(source, BuildParams(), tmp_path / "env")
    assert future.result(timeout=WAIT_S).meta["cluster"]["spec"] == scheduler
    monkeypatch.setenv("CORECLEAN_CLUSTER", " ")  # blank: this process
    assert cluster_address() is None and cluster_address("local:3") == "local:3"


def test_bad_cluster_is_one_clear_error(tmp_path, monkeypatch, capsys):
    assert cli.main(["build", "digits", "--cache", str(tmp_path), "--cluster", "local:0"]) == 2
    assert "error: cluster 'local:0'" in capsys.readouterr().err
    monkeypatch.setenv("CORECLEAN_CLUSTER", "spark://host:7077")
    assert cli.main(["build", "digits", "--cache", str(tmp_path)]) == 2
    assert "not a cluster spec" in capsys.readouterr().err
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 1)
    assert cli.main(["build", "digits", "--cache", str(tmp_path), "--cluster", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err  # refused at once, or (where the port silently drops) nothing answered in time
    assert err.startswith("error: cluster tcp://127.0.0.1:9: ") and err.count("\n") == 1
    assert "cannot connect" in err or "nothing answered as a Dask scheduler within 1 s" in err
    assert not list(tmp_path.glob("digits-*"))  # nothing half-built


def test_scale_out_bench_smoke(scheduler, run_script):
    """bench/scale_out.py at toy sizes on the run's cluster (its own LocalCluster is the same code as ``--cluster
    local:2``)."""
    out = run_script("scale_out.py", "--cluster", scheduler, "--images", "8", "--rows", "4000", "--dim", "16",
                     "--classes", "5", "--chunk-rows", "1000")
    assert "(e) projection" in out and "2 worker processes" in out
