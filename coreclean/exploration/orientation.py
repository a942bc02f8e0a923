"""Orientation view of the outlier score: does an image look upright, judged from the dataset's own images?

A small CNN learns, label-blind, to tell the four rotations (0, 90, 180, 270 degrees) of the dataset's own images
apart (the self-supervised rotation task of Gidaris et al. 2018, used to detect outliers by Golan & El-Yaniv 2018
and Hendrycks et al. 2019). An image stored rotated (or otherwise unlike the rest in its up-down layout) is then
not recognized as upright, nor its turned copies as turned: as in Golan & El-Yaniv's score, each image is shown in
all four rotations and the score averages ``-logit p(t | image turned by t)`` over them (one of the four alone,
upright only, ranked Fashion-MNIST's rotated strays a little worse: bench/explore.py). Embedding features miss
these strays: a rotated garment still looks like a garment in pixel-PCA space (docs/benchmarks.md).

Images are converted to grayscale and resized to ``size`` x ``size`` (smaller ones to their shorter side; non-square
ones squashed), so any in-memory source works; training uses at most ``max_train`` randomly chosen images for at
most ``steps`` steps, which bounds the cost whatever the dataset size (docs/benchmarks.md, Exploration). Runs on the
CPU with one torch thread by default: the network's operations are tiny, and on a busy 2-core machine two threads
spent most of their time waiting for each other (Fashion-MNIST 60k at load average 4: the fit and an upright-only
scoring took 169 s with 2 threads, 21 s with 1). Seeded, and with a fixed thread count, so a build is reproducible.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

BATCH = 128        # images per training step (each seen in all 4 rotations: 512 rows)
SCORE_BATCH = 4096  # images converted at a time, fewer for large images (see _batch_rows)
BATCH_VALUES = 2 ** 26  # pixel values converted to float32 at a time: 256 MB


@contextmanager
def _torch_threads(n: int):
    """torch uses ``n`` CPU threads inside the block, the caller's count again after it."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _batch_rows(images: np.ndarray) -> int:
    """Images per conversion batch: :data:`SCORE_BATCH`, or fewer so a batch of full-size images (converted to
    float32 before resizing) stays under :data:`BATCH_VALUES` values."""
    return int(max(1, min(SCORE_BATCH, BATCH_VALUES // max(1, int(np.prod(images.shape[1:]))))))
HELD_OUT = 2048    # images the rotation accuracy is measured on


def _network(width: int, size: int):
    import torch.nn as nn

    def block(c_in, c_out):  # stride-2 convolutions: cheap on small images, and BatchNorm makes training quick
        return [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    side = size
    for _ in range(3):
        side = (side + 1) // 2
    # flatten, not global pooling: where a part sits (collar on top, sole at the bottom) is the signal
    return nn.Sequential(*block(1, width), *block(width, 2 * width), *block(2 * width, 4 * width), nn.Flatten(),
                         nn.Linear(4 * width * side * side, 64), nn.ReLU(), nn.Linear(64, 4))


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"images: expected (n, H, W) grayscale or (n, H, W, C) with C in 1, 3, 4; got shape "
                         f"{images.shape}.")
    if len(images) == 0 or min(images.shape[1:3]) < 4:
        raise ValueError(f"images: need at least one image of at least 4x4 pixels; got shape {images.shape}.")
    if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
        raise ValueError(f"images: expected real numeric pixels (uint8 or float), got dtype {images.dtype}.")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError("images: contain NaN or inf pixels; fix or drop those images first.")
    return images


class OrientationScorer:
    """Self-supervised rotation predictor; ``score`` is higher for images that do not look upright.

    Parameters
    ----------
    size : side in pixels the images are resized to.  width : channels of the first convolution (then x2, x4).
    steps : at most this many training steps of ``BATCH`` images x 4 rotations; fewer on small datasets:
        ``epochs`` passes over the training images, but at least ``min_steps`` (many passes over a few images would
        let the network memorize the rotated strays among them as upright).  max_train : images sampled for training.
    threads : torch CPU threads while fitting and scoring (restored afterwards).  random_state : seed.

    Attributes after ``fit``: ``scale_`` (pixel value mapped to 1), ``side_`` (side of the square the images are
    resized to: ``size``, or the smaller image side when that is less), ``model_`` (the torch network, eval mode),
    ``train_rows_`` (indices of the images trained on), ``steps_`` (training steps taken), ``final_loss_``,
    ``rotation_accuracy_`` (rotations named right on images not trained on; 0.25 is chance).
    """

    def __init__(self, *, size: int = 20, width: int = 16, steps: int = 470, epochs: float = 2.0,
                 min_steps: int = 100, max_train: int = 30_000, lr: float = 3e-3, threads: int = 1,
                 random_state: int = 0):
        self.size, self.width, self.steps, self.epochs, self.min_steps = size, width, steps, epochs, min_steps
        self.max_train = max_train
        self.lr, self.threads, self.random_state = lr, threads, random_state

    def _tensor(self, images: np.ndarray):
        """(n, 1, side_, side_) float32 tensor of a batch of checked images."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / self.scale_)
        x = x.mean(dim=3) if x.ndim == 4 else x          # grayscale: orientation is in the shapes, not the colours
        x = x.unsqueeze(1)
        if x.shape[2:] != (self.side_, self.side_):
            shrink = min(x.shape[2:]) > self.side_
            x = F.interpolate(x, size=(self.side_, self.side_), mode="bilinear", align_corners=False,
                              antialias=shrink)
        return x

    def fit(self, images) -> "OrientationScorer":
        """Train on at most ``max_train`` of images (n, H, W[, C]) (uint8 0..255, or any numeric scale)."""
        import torch
        import torch.nn.functional as F

        images = _check_images(images)
        rng = np.random.default_rng(self.random_state)
        held_out = min(HELD_OUT, len(images) // 5)  # kept out of training: the rotation accuracy is measured on them
        rows = self.train_rows_ = np.sort(rng.choice(len(images), min(len(images) - held_out, self.max_train),
                                                     replace=False))
        step = _batch_rows(images)
        chunks = [rows[start:start + step] for start in range(0, len(rows), step)]
        self.scale_ = 255.0 if images.dtype == np.uint8 else max(float(np.abs(images[c]).max()) for c in chunks) or 1.0
        self.side_ = min(self.size, *images.shape[1:3])   # small images (8x8 digits) are not enlarged
        with _torch_threads(self.threads):
            with torch.random.fork_rng(devices=[]):   # seeds the weights without touching the caller's generator
                torch.manual_seed(self.random_state)
                model = _network(self.width, self.side_)
            x = torch.cat([self._tensor(images[c]) for c in chunks])   # resized chunk by chunk: large images fit
            optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
            self.steps_ = min(self.steps, max(self.min_steps, int(np.ceil(self.epochs * len(x) / BATCH))))
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, self.lr, total_steps=self.steps_)
            targets = torch.arange(4).repeat_interleave(min(BATCH, len(x)))
            order, start = rng.permutation(len(x)), 0
            model.train()
            for _ in range(self.steps_):
                if start + BATCH > len(x) and start:   # next pass over the sample, in a new order
                    order, start = rng.permutation(len(x)), 0
                batch = x[torch.from_numpy(order[start:start + BATCH])]
                start += BATCH
                rotated = torch.cat([torch.rot90(batch, k, (2, 3)) for k in range(4)])
                loss = F.cross_entropy(model(rotated), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            self.final_loss_ = float(loss.detach())
        self.model_ = model.eval()
        self.rotation_accuracy_ = self._rotation_accuracy(images, rng)
        return self

    def _log_probs(self, images: np.ndarray, rows: np.ndarray):
        """Yield (batch rows, [log p(rotation) of the batch turned by t, (b, 4), for t in 0..3]) over ``rows``."""
        import torch

        step = _batch_rows(images)
        with _torch_threads(self.threads), torch.inference_mode():
            for start in range(0, len(rows), step):
                batch = rows[start:start + step]
                x = self._tensor(images[batch])
                yield batch, [torch.log_softmax(self.model_(torch.rot90(x, t, (2, 3))), 1) for t in range(4)]

    def _rotation_accuracy(self, images: np.ndarray, rng: np.random.Generator) -> float:
        """Share of the four rotations of up to ``HELD_OUT`` images not trained on that the network names right:
        0.25 is chance, i.e. the dataset has no upright to learn (nan for fewer than 5 images)."""
        unseen = np.setdiff1d(np.arange(len(images)), self.train_rows_)
        if not len(unseen):
            return float("nan")
        rows = np.sort(rng.choice(unseen, min(len(unseen), HELD_OUT), replace=False))
        right = sum(int((log_p.argmax(1) == t).sum()) for _, turned in self._log_probs(images, rows)
                    for t, log_p in enumerate(turned))
        return right / (4 * len(rows))

    def score(self, images) -> np.ndarray:
        """(n,) float32 mean over t in (0, 90, 180, 270 degrees) of ``log p(not t) - log p(t)`` for the image
        turned by t, for images (n, H, W[, C]) as stored: below 0 when the image and its turned copies are
        recognized, large when the image looks rotated."""
        import torch

        if not hasattr(self, "model_"):
            raise RuntimeError("OrientationScorer: call fit(images) before score(images).")
        images = _check_images(images)
        out = np.empty(len(images), dtype=np.float32)
        for batch, turned in self._log_probs(images, np.arange(len(images))):
            total = sum(torch.logsumexp(log_p[:, [c for c in range(4) if c != t]], 1) - log_p[:, t]
                        for t, log_p in enumerate(turned))
            out[batch] = (total / 4).numpy()
        return out


def orientation_score(images, **params) -> np.ndarray:
    """(n,) float32 orientation score of images (n, H, W[, C]): fit on the images themselves, then score them."""
    return OrientationScorer(**params).fit(images).score(images)
