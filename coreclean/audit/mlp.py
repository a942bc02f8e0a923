"""The audit's cross-fitted classifier on sets of moderate size: a two-layer perceptron per fold.

The noise estimate counts labels among each class's most confident rows (:mod:`coreclean.audit.noise`); what it
cannot tell from a flip is a row the classifier is confidently wrong about, so its error floor is the classifier's
confident errors. On Fashion-MNIST 60k (PCA-128 pixels) the linear model's out-of-fold accuracy is 0.76-0.85 and
the estimate reads 1.73% wrong labels on the unflipped set; this net reaches 0.84-0.90 and reads 0.41%, and the
estimate is within 1.5 pp of the injected rate in 9 of 9 settings instead of 2 (``bench/audit.py``,
docs/benchmarks.md §9).

Features are standardized with the used rows' mean and deviation (no label reaches them); each fold's net is trained
on the other folds' rows only, seeded (same input, same thread count: same probabilities), without touching the
caller's random generators.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..classifier.lazy_torch import torch
from ..classifier.row_passes import threads_for
from .crossfit import fold_ids

Progress = Callable[[str, int, int], None]
HIDDEN = 256
DROPOUT = 0.3
EPOCHS = 12
BATCH = 256
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-2
# the held-out rows' probabilities are the mean of this many passes with dropout on (Gal & Ghahramani 2016): one
# deterministic pass is over-confident about look-alikes and under-confident between them, which the noise
# posterior inherits (Fashion-MNIST 60k pair 10%, bench/audit.py: expected calibration error 0.055 -> 0.038 with the
# isotonic map of coreclean.audit.calibrate). 20 forward passes over a fifth of the rows against 12 epochs of
# forward and backward passes over four fifths: about 1/7 of the training's multiply-adds
MC_PASSES = 20
# multiply-adds per epoch (rows x the net's weights) up to which the audit cross-fits this net: 60k rows of 512
# features and 10 classes (about a minute per 60k x 128 on 2 cores, twice that at 512 features); larger sets keep the
# streamed linear fit, whose cost the hidden layers do not multiply
MLP_WORK = 60_000 * (512 * HIDDEN + HIDDEN * HIDDEN + HIDDEN * 10)
# below this many rows x features the net trains on one thread: a second one gains little on small sets and, on a
# busy machine, costs a lot (tests/test_audit_mlp.py beside another two-thread job: 70 s with two threads, 16 s with one)
ONE_THREAD_VALUES = 2 ** 20


def epoch_work(n_rows: int, n_features: int, n_classes: int) -> int:
    """Multiply-adds of one forward pass of ``n_rows`` through the net: its cost per epoch, up to a constant."""
    return n_rows * (n_features * HIDDEN + HIDDEN * HIDDEN + HIDDEN * n_classes)


def _net(d: int, n_classes: int):
    nn = torch.nn
    return nn.Sequential(nn.Linear(d, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT),
                         nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, n_classes))


def _train(z, labels, n_classes: int, seed: int):
    """One net fitted on standardized rows z (m, d) float32 tensor with labels (m,) int64 tensor."""
    generator = torch.Generator().manual_seed(seed)
    # the weights' initialization and dropout draw from the CPU generator (saved and restored by the caller's
    # fork_rng); torch.manual_seed would reseed every GPU's as well
    torch.default_generator.manual_seed(seed)
    net = _net(z.shape[1], n_classes)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps = EPOCHS * -(-len(z) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=max(steps, 1))
    net.train()
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(z), generator=generator).split(BATCH):
            loss = torch.nn.functional.cross_entropy(net(z[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


def mlp_out_of_fold_proba(X, y: np.ndarray, n_classes: int, *, folds: int = 5, seed: int = 0,
                          rows: np.ndarray | None = None, progress: Progress | None = None) -> np.ndarray:
    """Cross-fitted class probabilities of the two-layer net (module docstring).

    X : (n, d) features.   y : (n,) int labels in [0, n_classes).   rows : (m,) rows to use (default all); the
    others get NaN.   Returns proba (n, n_classes) float32; row i from the net fitted on the folds not holding i
    (the same stratified folds as :func:`~coreclean.audit.crossfit.out_of_fold_proba`).
    """
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    y = np.asarray(y, dtype=np.int64)
    used = np.arange(len(y)) if rows is None else np.asarray(rows, dtype=np.int64)
    fold = fold_ids(y[used], folds, seed)
    x = np.asarray(X[used], dtype=np.float64)  # MLP_WORK bounds rows x features by ~4.7e7: <= ~370 MB here
    scale = x.std(axis=0)
    z = torch.from_numpy(((x - x.mean(axis=0)) / np.where(scale > 0, scale, 1.0)).astype(np.float32))
    del x
    labels = torch.from_numpy(y[used])
    out = np.full((len(y), n_classes), np.nan, dtype=np.float32)
    with threads_for(z.numel(), torch.device("cpu"), threshold=ONE_THREAD_VALUES), \
            torch.random.fork_rng(devices=[]):
        _fit_folds(z, labels, used, fold, folds, n_classes, seed, out, progress)
    if progress:
        progress("cross-fit", folds, folds)
    return out


def _fit_folds(z, labels, used: np.ndarray, fold: np.ndarray, folds: int, n_classes: int, seed: int,
               out: np.ndarray, progress: Progress | None) -> None:
    """Fold k's net on the other folds' rows, its probabilities written to ``out`` at the rows of fold k."""
    for k in range(folds):
        if progress:
            progress("cross-fit", k, folds)
        train, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        if not len(held) or not len(train):  # a set so small that one fold holds every row: left NaN
            continue
        net = _train(z[train], labels[train], n_classes, seed + k).train()  # dropout on: passes differ
        with torch.no_grad():
            out[used[held]] = sum(torch.softmax(net(z[held]), dim=1) for _ in range(MC_PASSES)).numpy() / MC_PASSES
