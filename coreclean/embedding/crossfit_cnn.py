"""``--backbone cnn``: a small convolutional net trained on the data itself, cross-fitted.

For sets no pretrained model knows (grayscale, small, medical, satellite images), the features come from the
labels at hand, the way cleanlab's workflow gets out-of-sample predictions: the training split is cut into
``folds`` stratified folds; for each, a net is trained on the other folds and embeds the held-out fold, so every
training sample is described by a model that never saw it (its own label cannot leak into its features). The
feature of a sample is that net's log-probability vector (K dims, one space for every fold); test samples get the
mean over the fold nets. Trained only briefly (a few epochs) so the nets learn the classes before they memorize
the noisy labels.

Each fold is saved as it finishes (``cnn/fold_<k>.npz``-style ``.npy`` files in the work folder), so an
interrupted build resumes at the first missing fold; each fold reports as a stage of its own (one progress bar per
fold). CPU-feasible for images up to 64 x 64; on a GPU when there is one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data.dataset import Dataset
from ..data.files import save_npy

FOLDS, EPOCHS, BATCH, SEED = 5, 4, 128, 0
StageProgress = Callable[[str, int, int], None]


def _net(channels: int, n_classes: int):
    import torch.nn as nn

    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(channels, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2), *block(32, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, n_classes))


def _tensor(pixels: np.ndarray):
    """(n, C, H, W) float32 in [0, 1] from (n, H, W) or (n, H, W, C) uint8."""
    import torch

    x = np.asarray(pixels)
    x = x[:, None] if x.ndim == 3 else np.moveaxis(x, -1, 1)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32) / 255.0)


def fold_of(y: np.ndarray, folds: int, seed: int = SEED) -> np.ndarray:
    """(n,) fold number of each sample, stratified by label."""
    from sklearn.model_selection import StratifiedKFold

    out = np.zeros(len(y), np.int64)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (_, held) in enumerate(splitter.split(np.zeros(len(y)), y)):
        out[held] = k
    return out


def _log_proba(model, x, device: str, batch: int = 1024) -> np.ndarray:
    import torch

    model.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            parts.append(torch.log_softmax(model(x[start:start + batch].to(device)), dim=1).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model[-1].out_features), np.float32)


def train_fold(x, y: np.ndarray, n_classes: int, *, epochs: int = EPOCHS, seed: int = SEED, device: str = "cpu",
               report: Callable[[int, int], None] | None = None):
    """The net fit on (x (n, C, H, W) standardized tensor, y (n,)) with AdamW and a one-cycle schedule;
    ``report(step, steps)``."""
    import torch

    torch.manual_seed(seed)
    model = _net(x.shape[1], n_classes).to(device)
    steps = epochs * -(-len(x) // BATCH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=max(steps, 1))
    labels = torch.from_numpy(np.asarray(y, np.int64))
    generator = torch.Generator().manual_seed(seed)
    step = 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH):
            loss = torch.nn.functional.cross_entropy(model(x[batch].to(device)), labels[batch].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if report and (step % 10 == 0 or step == steps):
                report(step, steps)
    return model


def crossfit_log_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int, work_dir: Path,
                       *, folds: int = FOLDS, epochs: int = EPOCHS, seed: int = SEED, device: str | None = None,
                       stage_progress: StageProgress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold log-probabilities (n, K) of the training images and the fold nets' mean (m, K) on the test
    images, from uint8 pixels (n, H, W[, C]); resumable per fold through files in ``work_dir``."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    work_dir.mkdir(parents=True, exist_ok=True)
    assignment = fold_of(np.asarray(y_train), folds, seed)
    train, test = _tensor(x_train), _tensor(x_test)
    mean, std = float(train.mean()), float(train.std()) or 1.0  # pixel statistics only: no label reaches them
    train, test = (train - mean) / std, (test - mean) / std
    oof = np.zeros((len(y_train), n_classes), np.float32)
    test_sum = np.zeros((len(x_test), n_classes), np.float32)
    for k in range(folds):
        stage = f"cnn fold {k + 1}/{folds}"
        held_file, test_file = work_dir / f"fold_{k}_held.npy", work_dir / f"fold_{k}_test.npy"
        held = np.flatnonzero(assignment == k)
        if not (held_file.exists() and test_file.exists()):
            fit = np.flatnonzero(assignment != k)
            report = (lambda done, total, s=stage: stage_progress(s, done, total)) if stage_progress else None
            model = train_fold(train[torch.from_numpy(fit)], np.asarray(y_train)[fit], n_classes, epochs=epochs,
                               seed=seed + k, device=device, report=report)
            save_npy(test_file, _log_proba(model, test, device))
            save_npy(held_file, _log_proba(model, train[torch.from_numpy(held)], device))  # last: marks it done
        elif stage_progress:
            stage_progress(stage, 1, 1)
        oof[held] = np.load(held_file, allow_pickle=False)
        test_sum += np.load(test_file, allow_pickle=False)
    return oof, test_sum / folds


def cnn_features(dataset: Dataset, work_dir: Path, *, progress=None, stage_progress: StageProgress | None = None
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """The ``cnn`` backbone: (x_train (n, K), x_test (m, K), no failures) — cross-fitted log-probabilities."""
    x_train, x_test = crossfit_log_proba(dataset.pixels_train, np.asarray(dataset.y_train), dataset.pixels_test,
                                         len(dataset.classes), Path(work_dir) / "cnn", folds=FOLDS, epochs=EPOCHS,
                                         stage_progress=stage_progress)
    if progress:
        progress(len(x_train) + len(x_test), len(x_train) + len(x_test))
    return x_train, x_test, []
