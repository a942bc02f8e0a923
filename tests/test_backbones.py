"""The backbone registry: torchvision models by name with a state_dict file, CLIP image towers from a checkpoint
directory the test writes, the errors (unknown name, missing file, architecture/weights mismatch), and cache keys
of the existing backbones unchanged. Tiny random-weight models only; nothing is downloaded."""
from __future__ import annotations

import json

import numpy as np
import pytest

from coreclean import Analysis
from coreclean.build.params import BuildParams
from coreclean.cli.main import main
from coreclean.data.files import file_digest
from coreclean.embedding import registry


def tiny_clip_dir(directory, seed: int = 0):
    """An open_clip model directory (config + random weights) small enough for a test: 16-d, 32 px, one layer."""
    import torch
    from open_clip.model import CLIP

    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                                              "head_width": 16},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.manual_seed(seed)
    torch.save(CLIP(**config).state_dict(), directory / "open_clip_pytorch_model.bin")
    return directory


@pytest.fixture(scope="session")
def small_state_dicts(tmp_path_factory):
    """state_dict files: mobilenet_v3_small (ImageNet head) and shufflenet_v2_x0_5 fine-tuned to 3 classes."""
    import torch
    from torchvision.models import mobilenet_v3_small, shufflenet_v2_x0_5

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("state-dicts")
    torch.save(mobilenet_v3_small(weights=None).state_dict(), root / "mobilenet.pt")
    torch.save(shufflenet_v2_x0_5(weights=None, num_classes=3).state_dict(), root / "shufflenet-3.pt")
    return root


def test_torchvision_model_by_name_builds_end_to_end(tmp_path, cache, make_image_folder, small_state_dicts):
    folder = make_image_folder(tmp_path / "imgs", per_class=5)
    weights = small_state_dicts / "mobilenet.pt"
    analysis = Analysis.build(str(folder), BuildParams(backbone="mobilenet_v3_small", weights=str(weights)),
                              cache_dir=cache)
    assert analysis.params.backbone == "mobilenet_v3_small"
    assert analysis.meta["n_features"] == 1024  # the input of the last linear layer (576 -> 1024 -> 1000)
    assert np.isfinite(np.asarray(analysis.x_train)).all()
    assert analysis.params.weights == file_digest(weights)  # stored by identity


def test_fine_tuned_head_of_any_size_loads(small_state_dicts):
    loaded = registry.torchvision_backbone("shufflenet_v2_x0_5", small_state_dicts / "shufflenet-3.pt", "cpu")
    assert loaded.dim == 1024
    assert loaded.preprocess.crop_size == [224]  # the DEFAULT enum's preprocessing, known offline


def test_errors_are_one_line(tmp_path, cache, make_image_folder, small_state_dicts, weights_file, capsys):
    folder = make_image_folder(tmp_path / "imgs", per_class=3)
    cases = {
        ("--backbone", "resnet9000"): "choose one of precomputed, pixels, cnn, any torchvision",
        ("--backbone", "clip:NoSuchArch"): "unknown open_clip architecture",
        ("--backbone", "resnet50", "--weights", str(tmp_path / "missing.pt")): "weights file not found",
        ("--backbone", "mobilenet_v3_small", "--weights", str(weights_file)): "not a mobilenet_v3_small state_dict",
        ("--backbone", "clip", "--weights", str(tmp_path)): "not an open_clip model directory",
        ("--backbone", "vit_b_16", "--weights", "IMAGENET9K"): "vit_b_16 knows 'imagenet', IMAGENET1K_V1",
        ("--backbone", "cnn"): "the cnn backbone needs in-memory images",
    }
    for args, expected in cases.items():
        assert main(["build", str(folder), "--cache", str(cache), *args]) == 2
        lines = capsys.readouterr().err.strip().splitlines()  # progress lines may come first (weights load late)
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0] and expected in errors[0], (args, lines)
    assert not list(cache.glob("*/meta.json"))  # no analysis written


def test_existing_backbones_keep_their_cache_keys(weights_file):
    from coreclean.data import load_source

    digits = load_source("digits")
    params = BuildParams(backbone="pixels").resolved(digits)
    assert params.cache_params() == {"backbone": "pixels", "weights": None, "pca": 128, "C": 1.0}
    resnet = BuildParams(backbone="resnet18", weights=str(weights_file)).resolved(digits)
    assert resnet.cache_params() == {"backbone": "resnet18", "weights": file_digest(weights_file), "pca": None,
                                     "C": 1.0}
    assert BuildParams(backbone="resnet18", weights="imagenet").resolved(digits).cache_params()["weights"] == "imagenet"


def test_clip_names_resolve_their_weights():
    assert registry.kind("clip:ViT-B-32") == "clip" and registry.has_text("clip:ViT-B-32")
    assert registry.resolve_weights("clip:ViT-B-32", "imagenet") == "openai"  # the default policy -> first tag
    assert registry.resolve_weights("clip:ViT-B-32", "laion2b_s34b_b79k") == "laion2b_s34b_b79k"
    assert not registry.has_text("resnet50") and registry.kind("convnext_tiny") == "torchvision"


def test_clip_directory_builds_normalized_embeddings(tmp_path, cache, make_image_folder):
    folder = make_image_folder(tmp_path / "imgs", per_class=5)
    model_dir = tiny_clip_dir(tmp_path / "tiny-clip")
    assert main(["build", str(folder), "--cache", str(cache), "--backbone", "clip", "--weights", str(model_dir)]) == 0
    analysis = Analysis.load(next(p for p in cache.iterdir() if (p / "meta.json").exists()))
    norms = np.linalg.norm(np.asarray(analysis.x_train), axis=1)
    assert analysis.meta["n_features"] == 16 and np.allclose(norms, 1, atol=1e-5)


def test_cnn_is_cross_fitted_and_resumes_per_fold(tmp_path, monkeypatch):
    from coreclean.embedding import crossfit_cnn

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    pixels = (rng.random((90, 8, 8)) * 60 + (y[:, None, None] * 90)).astype(np.uint8)  # brightness tells the class
    trained = []
    real_train = crossfit_cnn.train_fold
    monkeypatch.setattr(crossfit_cnn, "train_fold", lambda x, labels, *a, **k: trained.append(len(x)) or
                        real_train(x, labels, *a, **k))
    stages = []
    oof, test = crossfit_cnn.crossfit_log_proba(pixels, y, pixels[:7], 3, tmp_path, folds=3, epochs=6,
                                                stage_progress=lambda s, d, t: stages.append(s))
    assert trained == [60, 60, 60]  # each net sees the other two folds only
    assert oof.shape == (90, 3) and test.shape == (7, 3)
    np.testing.assert_allclose(np.exp(oof).sum(axis=1), 1, atol=1e-4)  # log-probabilities
    assert (oof.argmax(axis=1) == y).mean() > 0.7  # learnt, out of fold (chance: 1/3)
    assert sorted(set(stages)) == ["cnn fold 1/3", "cnn fold 2/3", "cnn fold 3/3"]
    (tmp_path / "fold_1_held.npy").unlink()  # interrupted in fold 2: only that fold is trained again
    again, _ = crossfit_cnn.crossfit_log_proba(pixels, y, pixels[:7], 3, tmp_path, folds=3, epochs=6)
    assert trained == [60, 60, 60, 60]
    np.testing.assert_allclose(again, oof, atol=1e-5)


def test_anchor_transition_counts_the_given_labels_of_each_class_anchors():
    from coreclean.embedding.crossfit_cnn import anchor_transition

    rng = np.random.default_rng(0)
    true = np.repeat([0, 1, 2], 200)
    given = np.where((true == 0) & (rng.random(600) < 0.3), 1, true)  # 30% of class 0 labelled 1
    proba = np.eye(4)[true] * 0.8 + rng.random((600, 4)) * 0.2  # out-of-sample: follows the true class
    matrix = anchor_transition(proba / proba.sum(axis=1, keepdims=True), given, 4)
    assert matrix.shape == (4, 4) and np.allclose(matrix.sum(axis=1), 1)
    assert abs(matrix[0, 1] - 0.3) < 0.1 and matrix[1, 0] == 0 and matrix[2, 2] == 1
    np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])  # no row labelled 3: identity
    swapped = anchor_transition(proba[:, [1, 0, 2, 3]], given, 4)  # a net that mixes up 0 and 1: not trusted
    np.testing.assert_array_equal(swapped[:2], np.eye(4)[:2])


def test_cnn_noise_model_keeps_the_nets_from_learning_the_flips(tmp_path, monkeypatch):
    from coreclean.embedding import crossfit_cnn

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 300)
    pixels = (rng.random((900, 8, 8)) * 60 + (y[:, None, None] * 90)).astype(np.uint8)  # brightness tells the class
    noisy = np.where((y == 0) & (rng.random(900) < 0.3), 1, y)  # 30% of class 0 labelled 1: learnable as a rate
    flipped = np.flatnonzero(noisy != y)

    monkeypatch.setattr(crossfit_cnn, "BATCH", 32)  # enough steps in the warm-up on a set this small

    def p_given_of_flipped(work):
        oof, _ = crossfit_cnn.crossfit_log_proba(pixels, noisy, pixels[:5], 3, work, folds=2, epochs=5)
        return float(np.exp(oof[flipped, 1]).mean())

    corrected = p_given_of_flipped(tmp_path / "corrected")
    estimates = [np.load(tmp_path / "corrected" / f"fold_{k}_noise.npy") for k in range(2)]
    assert all(0.1 < t[0, 1] < 0.5 and t[1, 0] < 0.05 and t[2, 2] > 0.95 for t in estimates), estimates  # 20 anchors
    monkeypatch.setattr(crossfit_cnn, "WARMUP", 0)  # plain cross-entropy throughout
    plain = p_given_of_flipped(tmp_path / "plain")
    assert not list((tmp_path / "plain").glob("fold_*_noise.npy"))
    assert plain > 0.15 and corrected < plain / 2, (plain, corrected)  # plain CE learns p(1 | a class-0 image)


def test_cnn_backbone_builds_digits_with_a_bar_per_fold(cache, monkeypatch):
    from coreclean.embedding import crossfit_cnn

    monkeypatch.setattr(crossfit_cnn, "EPOCHS", 2)  # a quick net: this test is about the plumbing
    monkeypatch.setattr(crossfit_cnn, "FOLDS", 2)
    analysis = Analysis.build("digits", BuildParams(backbone="cnn"), cache_dir=cache)
    assert analysis.meta["n_features"] == 10 and analysis.params.weights is None
    assert [s for s in analysis.meta["stages"] if s.startswith("cnn fold")] == ["cnn fold 1/2", "cnn fold 2/2"]
    assert analysis.accuracy > 0.8


def test_dashboard_builder_takes_a_backbone(run_app):
    at = run_app({"backbone": "resnet9000"})
    assert any("choose one of" in e.value and "resnet9000" in e.value for e in at.error)  # says what fits ...
    assert at.text_input(key="backbone").value == "resnet9000"
    at = run_app({"backbone": "pixels"})  # ... and a known name builds (digits' own default: the copied analysis)
    assert not at.error
