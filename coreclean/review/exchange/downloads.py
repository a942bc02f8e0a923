"""The exchange files as bytes, for a dashboard's download buttons (the CLI writes the same files to disk).

:func:`tasks_file` is ``export --format label-studio``'s tasks JSON; :func:`cleaned_zip` is ``export --format
imagefolder``'s folder as a ZIP built in memory, offered only for small sets: :func:`zip_refusal` says why not when
the dataset's files or arrays exceed :data:`ZIP_MAX_BYTES` (the CLI writes any size to a folder).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..export import SuggestionArrays
from ..log import Decision
from .cleaned import write_cleaned
from .label_studio import tasks_for

ZIP_MAX_BYTES = 100 * 2**20  # the whole ZIP is held in the server's memory while it is sent


def tasks_file(analysis, indices: np.ndarray, suggestions: SuggestionArrays | None = None) -> bytes:
    """Label Studio's import JSON (UTF-8) for the training samples ``indices`` (m,), in that order; the dataset
    audit's ``suggestions`` pre-selected when given (:func:`~.label_studio.tasks_for`)."""
    return json.dumps(tasks_for(analysis, indices, suggestions=suggestions), indent=1).encode("utf-8")


def dataset_bytes(analysis) -> int:
    """Bytes of the dataset's images or arrays (train and test), which the cleaned ZIP at most holds."""
    root, total = analysis.meta.get("root"), 0
    for split in ("train", "test"):
        paths = analysis.stack(f"paths_{split}")
        if paths is not None and root:
            for relative in np.asarray(paths).tolist():
                try:
                    total += os.stat(Path(root) / str(relative)).st_size
                except OSError:
                    pass  # a missing file: the export names it
        if analysis.meta["kind"] != "files":
            pixels = analysis.stack(f"images_{split}")
            array = pixels if pixels is not None else analysis.stack(f"x_{split}")
            total += int(array.nbytes) if array is not None else 0
    return total


def zip_refusal(analysis, size: int | None = None) -> str | None:
    """Why the cleaned dataset is not offered as a ZIP (``size``: :func:`dataset_bytes`, computed when not
    given), or ``None`` when it is small enough."""
    size = dataset_bytes(analysis) if size is None else size
    if size <= ZIP_MAX_BYTES:
        return None
    return (f"The dataset is {size / 2**20:.0f} MB, over the {ZIP_MAX_BYTES // 2**20} MB a download holds; write "
            f"it to a folder instead: python -m coreclean export {analysis.directory} --format imagefolder "
            "--out DIR")


def cleaned_zip(analysis, decided: dict[int, Decision]) -> bytes:
    """The cleaned dataset after ``decided`` ({sample: Decision}) as ZIP bytes: one top folder named after the
    analysis, laid out as :func:`~coreclean.review.exchange.cleaned.write_cleaned` writes it."""
    name = str(analysis.meta.get("name") or "dataset") + "-cleaned"
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="coreclean-zip-") as work:
        out = Path(work) / name
        write_cleaned(analysis, out, decided=decided)
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for file in sorted(p for p in out.rglob("*") if p.is_file()):
                archive.write(file, Path(name) / file.relative_to(out))
    return buffer.getvalue()
