"""The 2-D map's points painted into one image, for drawing large maps without WebGL.

A browser draws a 60k-point WebGL scatter in about 0.8 s with software rendering (0.55 s of it fixed: context
creation and a frame read-back per draw; bench/map_timing.py), and hovering or selecting re-draws it. An image of
the same points is one PNG the browser decodes in milliseconds; box and lasso selections are resolved on the
server from the stored coordinates (:func:`coreclean.analysis.explore_queries.select_samples`), so the points themselves
need not be in the browser at all.
"""
from __future__ import annotations

import base64
import io

import numpy as np


def map_extent(xy: np.ndarray, margin: float = 0.03) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) bounding the points xy (p, 2) with ``margin`` of each span added on every side."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return -1.0, 1.0, -1.0, 1.0
    low, high = xy.min(axis=0), xy.max(axis=0)
    pad = np.maximum(high - low, 1e-6) * margin
    return float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1])


def _disc(radius: int) -> np.ndarray:
    """(m, 2) integer (row, column) offsets of a filled disc; radius 0 is one pixel, 1 a 3 x 3 square."""
    span = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    inside = dy ** 2 + dx ** 2 <= radius ** 2 + radius  # + radius: rounder small discs than a strict circle
    return np.stack([dy[inside], dx[inside]], axis=1)


def paint_points(xy: np.ndarray, rgb: np.ndarray, *, extent: tuple[float, float, float, float], width: int,
                 height: int, radius: int = 1, order: np.ndarray | None = None,
                 background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """(height, width, 3) uint8 image of the points xy (p, 2), each a disc of ``radius`` pixels in its colour
    rgb (p, 3) uint8, with ``extent`` (x0, x1, y0, y1) mapped onto the image (y up). Points are painted in
    ``order`` (p,) (default: as given); where discs overlap the later point shows, so callers put what matters
    (high scores, decisions) last. Points outside the extent are clipped at the border; non-finite ones skipped.
    """
    xy = np.asarray(xy, dtype=np.float64)
    rgb = np.asarray(rgb, dtype=np.uint8)
    if xy.ndim != 2 or xy.shape[1] != 2 or rgb.shape != (len(xy), 3):
        raise ValueError(f"xy (p, 2) and rgb (p, 3) expected, got {xy.shape} and {rgb.shape}.")
    if width < 1 or height < 1 or radius < 0:
        raise ValueError(f"width={width}, height={height} must be >= 1 and radius={radius} >= 0.")
    x0, x1, y0, y1 = extent
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent={extent}: expected x0 < x1 and y0 < y1.")
    if order is not None:
        xy, rgb = xy[order], rgb[order]
    finite = np.isfinite(xy).all(axis=1)  # a point without coordinates has no place on the map
    xy, rgb = xy[finite], rgb[finite]
    # pixel k covers [x0 + k w, x0 + (k + 1) w) with w = span / width; the right and top edges go to the last one
    column = np.clip(np.floor((xy[:, 0] - x0) / (x1 - x0) * width), 0, width - 1).astype(np.int64)
    row = np.clip(np.floor((y1 - xy[:, 1]) / (y1 - y0) * height), 0, height - 1).astype(np.int64)
    offsets = _disc(radius)
    rows = np.clip(row[:, None] + offsets[None, :, 0], 0, height - 1)
    columns = np.clip(column[:, None] + offsets[None, :, 1], 0, width - 1)
    pixel = (rows * width + columns).ravel()  # point-major: a later point's pixels come later
    # numpy leaves the winner of repeated fancy-index writes unspecified; keep each pixel's last writer explicitly
    last = len(pixel) - 1 - np.unique(pixel[::-1], return_index=True)[1]
    image = np.empty((height * width, 3), dtype=np.uint8)
    image[:] = background
    image[pixel[last]] = np.repeat(rgb, len(offsets), axis=0)[last]
    return image.reshape(height, width, 3)


def png_data_uri(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an (h, w, 3) uint8 image (fast compression: most of it is background)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
