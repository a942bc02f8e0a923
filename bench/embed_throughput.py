"""ResNet18 embedding throughput with real JPEG decode: coreclean's embedder vs the forward pass alone.

    python bench/embed_throughput.py --images 256 --repeats 5     # CPU (and CUDA when available)

Writes ``--images`` JPEGs (500x375, ImageNet's typical size) into a temporary ImageFolder. Each repeat times, back
to back on the same machine load:

* **bound** — the forward pass alone: ``coreclean.embedding.embed.forward`` (the embedder's own call: same model
  from ``load_backbone``, same layout, ``inference_mode``, AMP rule, batch size) over batches prepared beforehand;
* **embedder** — ``coreclean.embedding.embed.embed_split`` on the files, end to end as a build calls it: model
  load, decode, quality scores, preprocessing, forward, chunk files.

and prints both rates, their ratio, and the 1-minute load average before the repeat; the last line per device is
the median over repeats. ``--no-prefetch`` / ``--no-channels-last`` / ``--no-draft`` switch those parts off
(for the A/B rows in docs/benchmarks.md §4; the bound follows the layout switch, as the embedder does).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import markdown_table  # noqa: E402


def write_jpegs(root: Path, count: int, size: tuple[int, int] = (500, 375)) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (47, 63, 3), dtype=np.uint8)  # smooth content compresses like photos
        Image.fromarray(base).resize(size, Image.BILINEAR).save(folder / f"{i}.jpg", quality=90)


def forward_only(files: list[Path], device: str, batch_size: int) -> float:
    """Images/s of the embedder's forward pass alone, on batches of ``files`` prepared before the clock starts."""
    from coreclean.embedding.batches import Preprocessing
    from coreclean.embedding.embed import forward, load_backbone

    model, preprocess, device, _ = load_backbone("resnet18", None, device)
    stage = Preprocessing(preprocess)
    images = [stage.image(Image.open(f).convert("RGB")) for f in files[:batch_size]]
    sizes = [min(batch_size, len(files) - b) for b in range(0, len(files), batch_size)]
    batches = {n: stage.batch(images[:n], device).clone() for n in set(sizes)}  # the stage reuses its buffer
    forward(model, batches[sizes[0]])  # warm-up (oneDNN primitives, CUDA kernels); the embedder's is in its time
    start = time.perf_counter()
    for n in sizes:
        forward(model, batches[n])
    return len(files) / (time.perf_counter() - start)


def embedder(root: Path, out: Path, device: str, batch_size: int) -> float:
    """Images/s of ``embed_split`` on the train split of the ImageFolder at ``root``, model load included."""
    from coreclean import load_source
    from coreclean.embedding.embed import embed_split

    dataset = load_source(str(root))
    start = time.perf_counter()
    embed_split(dataset, "train", out, weights=None, device=device, batch_size=batch_size)
    return len(dataset.y_train) / (time.perf_counter() - start)


def main(argv=None) -> int:
    import torch

    from coreclean.embedding import batches, embed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3, help="bound + embedder pairs per device")
    parser.add_argument("--batch", type=int, default=64, help="the embedder's batch size (embed_split's default)")
    parser.add_argument("--no-prefetch", action="store_true", help="decode in the model's thread (embed.PREFETCH)")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW model and batches")
    parser.add_argument("--no-draft", action="store_true", help="never decode a JPEG at reduced scale")
    args = parser.parse_args(argv)
    embed.PREFETCH = not args.no_prefetch
    batches.CHANNELS_LAST = not args.no_channels_last
    if args.no_draft:
        batches.DRAFT_MARGIN = 10 ** 6
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        write_jpegs(root, args.images)
        from coreclean import load_source

        files = [root / p for p in load_source(str(root)).paths_train]
        print(f"# ResNet18 embedding throughput, {len(files)} JPEGs 500x375, batch {args.batch}, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; prefetch "
              f"{embed.PREFETCH}, channels_last {batches.CHANNELS_LAST}, draft margin {batches.DRAFT_MARGIN}\n")
        columns = ["device", "repeat", "load (1 min)", "bound: forward only (img/s)", "embedder (img/s)", "ratio"]
        print(markdown_table([], columns))
        for device in devices:  # a row as soon as it is measured
            ratios = []
            for repeat in range(1, args.repeats + 1):
                load = os.getloadavg()[0]
                bound = forward_only(files, device, args.batch)
                ours = embedder(root, Path(tmp) / f"chunks-{device}-{repeat}", device, args.batch)
                ratios.append(ours / bound)
                print(markdown_table([(device, repeat, f"{load:.2f}", f"{bound:.1f}", f"{ours:.1f}",
                                       f"{ours / bound:.3f}")], columns, header=False), flush=True)
            print(markdown_table([(device, "median", "", "", "", f"{statistics.median(ratios):.3f}")], columns,
                                 header=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
