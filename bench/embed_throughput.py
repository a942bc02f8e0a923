"""ResNet18 embedding throughput with real JPEG decode: coreclean's embedder vs the forward pass alone.

    python bench/embed_throughput.py --images 1024 --repeats 5    # CPU (and CUDA when available)

Writes ``--images`` JPEGs (500x375, ImageNet's typical size) into a temporary ImageFolder. Each repeat times, back
to back on the same machine load:

* **bound** — the forward pass alone: ``coreclean.embedding.batches.forward`` (the embedder's own call: same model
  from ``load_backbone``, same layout, ``inference_mode``, AMP rule, batch size) over batches prepared beforehand;
* **embedder** — ``coreclean.embedding.embed.embed_split`` on the files, end to end as a build calls it: model
  load, decode, quality scores, preprocessing, forward, chunk files.

and prints both rates, their ratio, and the 1-minute load average before the repeat; the last line per device is
the median over repeats. ``--no-channels-last`` / ``--no-draft`` / ``--no-quality`` switch those parts off,
``--prefetch`` decodes the next batch in a thread during the forward pass (the A/B rows in docs/benchmarks.md §4;
the bound follows the layout switch, as the embedder does).
``--tolerance`` prints how far the features are from the plain torchvision loop's instead (draft decoding included);
``--components ROUNDS`` times the parts of one batch instead, interleaved round by round (:func:`components`):
on a shared machine the paired per-round numbers move less than whole runs minutes apart.
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
    from coreclean.embedding.batches import Preprocessing, forward
    from coreclean.embedding.embed import load_backbone

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


def embedder(root: Path, out: Path, device: str, batch_size: int, quality: bool = True) -> float:
    """Images/s of ``embed_split`` on the train split of the ImageFolder at ``root``, model load included."""
    from coreclean import load_source
    from coreclean.embedding.embed import embed_split

    dataset = load_source(str(root))
    start = time.perf_counter()
    embed_split(dataset, "train", out, weights=None, device=device, batch_size=batch_size, quality=quality)
    return len(dataset.y_train) / (time.perf_counter() - start)


def components(root: Path, device: str, batch_size: int, rounds: int) -> None:
    """Per-image milliseconds of one batch, interleaved round by round (so all share each round's load):
    A forward alone; C1 / C decode + quality + preprocessing on one thread / on torch's thread count (as the CPU
    embedder); S decode on torch's thread count, then forward (the CPU embedder's steady state); B batching and
    forward while one thread decodes the next batch (``--prefetch``'s steady state; the CUDA path's shape);
    T the per-image path before issue 26 (full decode, quality, torchvision's transform per image, stack)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from coreclean import load_source
    from coreclean.data.decode import open_image, to_rgb
    from coreclean.embedding import embed
    from coreclean.embedding.batches import Preprocessing, forward
    from coreclean.quality.thresholds import image_scores

    dataset = load_source(str(root))
    model, preprocess, device, _ = embed.load_backbone("resnet18", None, device)
    stage = Preprocessing(preprocess)
    rows = range(min(batch_size, len(dataset.y_train)))
    pool = ThreadPoolExecutor(torch.get_num_threads())

    def decode(parallel: bool = True):
        return embed._decode_batch(dataset, "train", rows, stage, True, pool if parallel else None)[0]

    items = decode()
    batch = stage.batch(items, device).clone()
    forward(model, batch)

    def overlapped():  # the next batch decodes in a thread while this one is batched and run
        worker = threading.Thread(target=decode, args=(False,))
        worker.start()
        forward(model, stage.batch(items, device))
        worker.join()

    def per_image_transform():  # the embedder before issue 26: full decode, torchvision's transform per image
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        images = [open_image(root / dataset.paths_train[i]) for i in rows]
        tensors = [(image_scores(image), preprocess(to_rgb(image)))[1] for image in images]
        torch.set_num_threads(threads)
        return torch.stack(tensors)

    steps = {"A": lambda: forward(model, batch), "C1": lambda: stage.batch(decode(False), device),
             "C": lambda: stage.batch(decode(), device), "S": lambda: forward(model, stage.batch(decode(), device)),
             "B": overlapped, "T": per_image_transform}
    times: dict[str, list[float]] = {name: [] for name in steps}
    columns = ["round", "load (1 min)"] + [f"{name} (ms/img)" for name in steps]
    print(markdown_table([], columns))
    for r in range(1, rounds + 1):
        load = os.getloadavg()[0]
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(1e3 * (time.perf_counter() - start) / len(rows))
        print(markdown_table([(r, f"{load:.2f}", *(f"{v[-1]:.1f}" for v in times.values()))], columns, header=False),
              flush=True)
    pool.shutdown()
    median = {name: statistics.median(v) for name, v in times.items()}
    print(markdown_table([("median", "", *(f"{v:.1f}" for v in median.values()))], columns, header=False))
    paired = {step: statistics.median(a / b for a, b in zip(times["A"], times[step])) for step in ("S", "B")}
    print(f"\nsteady state vs the bound (A / step; of the medians, and the median of the rounds' ratios): "
          f"embedder A/S = {median['A'] / median['S']:.3f}, {paired['S']:.3f}; with a prefetch thread "
          f"A/B = {median['A'] / median['B']:.3f}, {paired['B']:.3f}")


def tolerance(folder: Path) -> None:
    """How far the embedder's features are from the plain loop's (full decode, torchvision's transform per image,
    NCHW float32 model), for a random-init ResNet18 (seed 0): scikit-learn's two sample photos enlarged (so that
    JPEG draft decoding applies), a noise texture (the worst case for reduced decoding) and this bench's 500x375
    file; beside it, the plain loop on the full decode re-saved as JPEG quality 90 (the same picture, by any eye)."""
    import io

    import sklearn.datasets
    import torch

    from coreclean.data.decode import open_image, open_reduced, to_rgb
    from coreclean.embedding.batches import Preprocessing, forward, prepare_model

    samples = Path(sklearn.datasets.__file__).parent / "images"
    rng = np.random.default_rng(0)
    for name in ("china", "flower"):
        photo = Image.open(samples / f"{name}.jpg").convert("RGB")
        for k in (2, 3, 5):
            enlarged = photo.resize((photo.width * k, photo.height * k), Image.BICUBIC)
            enlarged.save(folder / f"{name}x{k}.jpg", quality=90)
    texture = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).resize((1600, 1200))
    grain = rng.integers(-40, 40, (1200, 1600, 3), dtype=np.int16)
    noise = np.clip(np.asarray(texture) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(noise).save(folder / "noise.jpg", quality=90)
    write_jpegs(folder / "bench", 1)
    files = sorted(folder.glob("*.jpg")) + sorted((folder / "bench").rglob("*.jpg"))
    from torchvision.models import ResNet18_Weights, resnet18

    torch.manual_seed(0)
    plain = resnet18(weights=None)
    plain.fc = torch.nn.Identity()
    plain.eval()
    ours = prepare_model(resnet18(weights=None))
    ours.fc = torch.nn.Identity()
    ours.load_state_dict(plain.state_dict())
    ours.eval()
    preprocess = ResNet18_Weights.IMAGENET1K_V1.transforms()
    stage = Preprocessing(preprocess)

    def plain_features(image):
        with torch.inference_mode():
            return plain(preprocess(image)[None]).numpy()[0]

    def distance(a, b):
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    columns = ["image", "size", "decoded at", "mean |input difference|", "feature distance",
               "re-saved q90: feature distance"]
    rows = []
    for file in files:
        full = to_rgb(open_image(file))
        reference = plain_features(full)
        image, size, factor = open_reduced(file, stage.needed_size)
        batch = stage.batch([stage.image(to_rgb(image), factor, size)], "cpu")
        buffer = io.BytesIO()
        full.save(buffer, "JPEG", quality=90)
        resaved = plain_features(Image.open(buffer).convert("RGB"))
        rows.append((file.name, f"{size[0]}x{size[1]}", f"1/{factor}",
                     f"{float((batch[0] - preprocess(full)).abs().mean()):.2e}",
                     f"{distance(forward(ours, batch)[0], reference):.2e}", f"{distance(resaved, reference):.2e}"))
    print(markdown_table(rows, columns))
    print("\n(input differences in normalized units: one grey level is 0.017; feature distance: relative L2)")


def main(argv=None) -> int:
    import torch

    from coreclean.embedding import batches, embed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1024, help="JPEGs written; 80%% form the train split timed")
    parser.add_argument("--repeats", type=int, default=3, help="bound + embedder pairs per device")
    parser.add_argument("--batch", type=int, default=64, help="the embedder's batch size (embed_split's default)")
    parser.add_argument("--prefetch", action="store_true", help="one thread decodes the next batch during the "
                        "forward pass (embed.CPU_PREFETCH = 1, embed.CPU_DECODE_THREADS = 1)")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW model and batches")
    parser.add_argument("--no-draft", action="store_true", help="never decode a JPEG at reduced scale")
    parser.add_argument("--no-quality", action="store_true", help="embed_split(quality=False): no quality rows")
    parser.add_argument("--tolerance", action="store_true", help="instead: features vs the plain loop (tolerance())")
    parser.add_argument("--components", type=int, default=0, metavar="ROUNDS",
                        help="instead: per-image costs of one batch, interleaved for ROUNDS rounds (see components())")
    args = parser.parse_args(argv)
    if args.prefetch:
        embed.CPU_PREFETCH, embed.CPU_DECODE_THREADS = 1, 1
    batches.CHANNELS_LAST = not args.no_channels_last
    if args.no_draft:
        batches.DRAFT_MARGIN = 10 ** 6
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        if args.tolerance:
            print(f"# Embedder features vs the plain torchvision loop, ResNet18 random init (seed 0), draft margin "
                  f"{batches.DRAFT_MARGIN}, channels_last {batches.CHANNELS_LAST}\n")
            tolerance(Path(tmp))
            return 0
        root = Path(tmp) / "jpegs"
        write_jpegs(root, args.images)
        from coreclean import load_source

        files = [root / p for p in load_source(str(root)).paths_train]
        if args.components:
            print(f"# ResNet18 per-image costs, batch of {min(args.batch, len(files))} JPEGs 500x375, torch "
                  f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores\n")
            components(root, devices[-1], args.batch, args.components)
            return 0
        print(f"# ResNet18 embedding throughput, {len(files)} JPEGs 500x375, batch {args.batch}, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; decode threads "
              f"{embed.CPU_DECODE_THREADS or torch.get_num_threads()}, prefetch {embed.CPU_PREFETCH}, channels_last "
              f"{batches.CHANNELS_LAST}, draft margin {batches.DRAFT_MARGIN}, quality rows {not args.no_quality}\n")
        columns = ["device", "repeat", "load (1 min)", "bound: forward only (img/s)", "embedder (img/s)", "ratio"]
        print(markdown_table([], columns))
        for device in devices:  # a row as soon as it is measured
            ratios = []
            for repeat in range(1, args.repeats + 1):
                load = os.getloadavg()[0]
                bound = forward_only(files, device, args.batch)
                ours = embedder(root, Path(tmp) / f"chunks-{device}-{repeat}", device, args.batch, not args.no_quality)
                ratios.append(ours / bound)
                print(markdown_table([(device, repeat, f"{load:.2f}", f"{bound:.1f}", f"{ours:.1f}",
                                       f"{ours / bound:.3f}")], columns, header=False), flush=True)
            print(markdown_table([(device, "median", "", "", "", f"{statistics.median(ratios):.3f}")], columns,
                                 header=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
