"""ResNet18 embedding throughput with real JPEG decode: coreclean's embedder vs a bare torchvision loop.

    python bench/embed_throughput.py --images 256          # CPU (and CUDA when available)

Writes ``--images`` JPEGs (500x375, ImageNet's typical size) into a temporary ImageFolder, then times
(a) a bare loop — PIL decode, the weights' transforms, batched ``model(x)`` under ``inference_mode`` — and
(b) ``coreclean.embedding.embed.embed_split`` on the same files, and reports images/s next to the compute bound
(ResNet18's 1.82 GFLOPs per 224x224 image over this machine's measured matmul GFLOP/s).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import markdown_table  # noqa: E402

RESNET18_GFLOPS = 1.82


def write_jpegs(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (47, 63, 3), dtype=np.uint8)  # smooth content compresses like photos
        Image.fromarray(base).resize((500, 375), Image.BILINEAR).save(folder / f"{i}.jpg", quality=90)


def matmul_gflops(device: str) -> float:
    import torch

    a = torch.randn(2048, 2048, device=device)
    for _ in range(2):
        a @ a
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(5):
        a @ a
    if device == "cuda":
        torch.cuda.synchronize()
    return 5 * 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9


def bare_loop(paths: list[Path], device: str, batch: int = 64) -> float:
    import torch
    from torchvision.models import ResNet18_Weights, resnet18

    model = resnet18(weights=None)
    model.fc = torch.nn.Identity()
    model = model.eval().to(device)
    preprocess = ResNet18_Weights.IMAGENET1K_V1.transforms()
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            tensors = [preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + batch]]
            model(torch.stack(tensors).to(device)).cpu()
    return len(paths) / (time.perf_counter() - start)


def coreclean_loop(root: Path, out: Path, device: str) -> float:
    from coreclean.embedding.embed import embed_split
    from coreclean import load_source

    dataset = load_source(str(root))
    n = len(dataset.y_train)
    start = time.perf_counter()
    embed_split(dataset, "train", out, weights=None, device=device)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "jpegs"
        write_jpegs(root, args.images)
        from coreclean import load_source

        train_paths = [root / p for p in load_source(str(root)).paths_train]
        print(f"# ResNet18 embedding throughput, {len(train_paths)} JPEGs 500x375, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads\n")
        columns = ["device", "compute bound (img/s)", "bare torchvision loop (img/s)", "coreclean embed (img/s)",
                   "ratio"]
        print(markdown_table([], columns))
        for device in devices:  # a row as soon as it is measured
            bound = matmul_gflops(device) / RESNET18_GFLOPS
            bare = bare_loop(train_paths, device)
            ours = coreclean_loop(root, Path(tmp) / f"chunks-{device}", device)
            print(markdown_table([(device, f"{bound:.0f}", f"{bare:.1f}", f"{ours:.1f}", f"{ours / bare:.2f}")],
                                 columns, header=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
