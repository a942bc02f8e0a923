"""From decoded images to model-ready batches, split where the work can be split.

* :meth:`Preprocessing.image` — per image, PIL and numpy only (both release the GIL while they work): for a
  torchvision ``ImageClassification`` preprocess (resize the short side, centre crop, scale, normalize) the resize
  and the crop are one PIL resize of the crop's source box, and the result stays uint8 (H, W, 3); any other
  preprocess (CLIP's ``Compose`` …) gets the RGB image back unchanged.
* :meth:`Preprocessing.batch` — per batch, torch: uint8 pixels to float, ``/255``, ``-mean``, ``/std`` in one reused
  channels-last buffer (the same float32 operations in the same order as torchvision, so the values are the ones
  its per-image transform gives for the same pixels); on CUDA the uint8 batch is copied from pinned memory without
  blocking and normalized on the device. Other preprocessing runs per image, as its own transform.

:func:`forward` runs a model on a batch (float16 autocast on CUDA where it stays within ``AMP_TOLERANCE``).
:meth:`Preprocessing.needed_size` tells the decoder how small a JPEG may be decoded (:func:`coreclean.data.decode.
open_reduced`): ``DRAFT_MARGIN`` times the resize's output size, so the resize still low-passes the draft.
"""
from __future__ import annotations

import weakref
from typing import Any, Sequence

import numpy as np
from PIL import Image

# a JPEG is decoded at reduced scale only while it stays >= DRAFT_MARGIN x the resize's output (see docs §4)
DRAFT_MARGIN = 2
CHANNELS_LAST = True  # model and batches in channels-last layout (docs/benchmarks.md §4 measures both)
AMP = True  # float16 autocast on CUDA, kept only where a batch's features stay within AMP_TOLERANCE of float32
AMP_TOLERANCE = 1e-3  # largest relative L2 distance of a feature row
_AMP_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> AMP kept after its check


def resized_size(size: tuple[int, int], short: int) -> tuple[int, int]:
    """(width, height) that torchvision's ``Resize(short)`` gives an image of ``size`` = (width, height)."""
    width, height = size
    if width <= height:
        return short, int(short * height / width)
    return int(short * width / height), short


class Preprocessing:
    """A backbone's preprocess, split into :meth:`image` (thread-safe, no torch) and :meth:`batch` (torch).

    ``preprocess``: the backbone's transform, PIL image -> (3, H, W) tensor. ``threads``: torch threads while it
    runs per image (other backbones than torchvision's ``ImageClassification``; None: torch's setting).
    """

    def __init__(self, preprocess: Any, threads: int | None = None):
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms._presets import ImageClassification

        self.preprocess, self.threads = preprocess, threads
        self.fast = (isinstance(preprocess, ImageClassification) and len(preprocess.crop_size) == 1
                     and preprocess.crop_size[0] <= preprocess.resize_size[0]
                     and preprocess.interpolation in (InterpolationMode.BILINEAR, InterpolationMode.BICUBIC))
        if self.fast:
            self.short, self.crop = preprocess.resize_size[0], preprocess.crop_size[0]
            self.resample = (Image.BILINEAR if preprocess.interpolation == InterpolationMode.BILINEAR
                             else Image.BICUBIC)
            self.mean, self.std = tuple(preprocess.mean), tuple(preprocess.std)
        self._buffer = None

    def needed_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The smallest (width, height) a decoder may reduce an image of ``size`` to; ``size`` itself when the
        preprocessing is not known to downsample."""
        if not self.fast:
            return size
        width, height = resized_size(size, self.short)
        return DRAFT_MARGIN * width, DRAFT_MARGIN * height

    def image(self, image: Image.Image, factor: int = 1, full_size: tuple[int, int] | None = None):
        """The per-image part for an RGB ``image``: uint8 (crop, crop, 3) pixels (fast path) or ``image`` itself.

        ``factor``, ``full_size``: the image was decoded at 1/``factor`` scale from a file of ``full_size``; the
        crop box is placed as in the full-size image, so sizes round exactly as torchvision's would."""
        if not self.fast:
            return image
        width, height = full_size or image.size
        new_width, new_height = resized_size((width, height), self.short)
        left, top = int(round((new_width - self.crop) / 2.0)), int(round((new_height - self.crop) / 2.0))
        if factor == 1 and (new_width, new_height) == (width, height):  # torchvision skips the resize
            return np.asarray(image.crop((left, top, left + self.crop, top + self.crop)))
        scale_x, scale_y = width / new_width / factor, height / new_height / factor
        box = (left * scale_x, top * scale_y, (left + self.crop) * scale_x, (top + self.crop) * scale_y)
        return np.asarray(image.resize((self.crop, self.crop), self.resample, box=box))

    def batch(self, items: Sequence, device: str):
        """(b, 3, H, W) float32 on ``device`` from :meth:`image` results (channels-last when ``CHANNELS_LAST``).

        The fast path's CPU batch lives in a buffer reused by the next call: use it before asking for another."""
        import torch

        if not self.fast:
            return layout(_to_device(torch.stack(self._each(items)), device))
        pixels = torch.from_numpy(np.stack(items))  # (b, H, W, 3) uint8
        if torch.device(device).type == "cuda":  # a quarter of float32's bytes cross the bus
            batch = _to_device(pixels, device).permute(0, 3, 1, 2).float()
        else:
            shape = (len(items), 3, *pixels.shape[1:3])
            if self._buffer is None or tuple(self._buffer.shape) != shape:
                self._buffer = torch.empty(shape, memory_format=torch.channels_last)
            batch = self._buffer.copy_(pixels.permute(0, 3, 1, 2))  # reused: no page faults for 38 MB a batch
        mean = torch.tensor(self.mean, device=batch.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(-1, 1, 1)
        return layout(batch.div_(255).sub_(mean).div_(std))

    def _each(self, images: Sequence[Image.Image]) -> list:
        import torch

        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return [self.preprocess(image) for image in images]
        finally:
            torch.set_num_threads(threads)


def layout(batch):
    """``batch`` in the memory layout the models run in (``CHANNELS_LAST``); a no-op when it already is."""
    import torch

    return batch.contiguous(memory_format=torch.channels_last if CHANNELS_LAST else torch.contiguous_format)


def prepare_model(model):
    """``model`` (an ``nn.Module``, or a wrapper with one as ``.model``) in the layout of :func:`layout`."""
    import torch

    module = model if isinstance(model, torch.nn.Module) else getattr(model, "model", None)  # a CLIP image tower
    if CHANNELS_LAST and isinstance(module, torch.nn.Module):
        module.to(memory_format=torch.channels_last)  # in place
    return model


def forward(model, batch) -> np.ndarray:
    """Features (b, dim) float32 of ``batch`` (b, 3, H, W) on the model's device, under ``inference_mode``.

    On CUDA (with ``AMP``) the model runs under float16 autocast when, on the first batch it sees, the result
    stays within ``AMP_TOLERANCE`` of float32 (:func:`amp_error`); else in float32. The CPU never uses autocast."""
    import torch

    amp = AMP and batch.device.type == "cuda" and _AMP_CHECKED.get(model, True)
    if amp and model not in _AMP_CHECKED:
        exact, fast = _run(model, batch, None), _run(model, batch, torch.float16)
        _AMP_CHECKED[model] = amp_error(fast, exact) <= AMP_TOLERANCE
        return exact.cpu().numpy()
    return _run(model, batch, torch.float16 if amp else None).cpu().numpy()


def _run(model, batch, amp_dtype):
    import contextlib

    import torch

    autocast = torch.autocast(batch.device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        return model(batch).float()


def amp_error(fast, exact) -> float:
    """Largest relative L2 distance between rows of ``fast`` and ``exact`` (b, dim) tensors (absolute for an
    all-zero row)."""
    import torch

    distance = torch.linalg.vector_norm(fast.float() - exact.float(), dim=1)
    return float((distance / torch.linalg.vector_norm(exact.float(), dim=1).clamp_min(1.0e-12)).max())


def _to_device(batch, device: str):
    """``batch`` on ``device``; to CUDA from pinned memory without blocking (the stream orders the copy before the
    kernels that read it)."""
    import torch

    if torch.device(device).type != "cuda":
        return batch.to(device)
    return batch.contiguous().pin_memory().to(device, non_blocking=True)
