"""The audit report of a large analysis: seconds and peak memory of ``python -m coreclean report``, cold (no audit
stored: cross-fit, noise estimate, suggestions, then the report) and warm (audit stored), each in its own process.

    python bench/imagenet_scale.py --variant anisotropic --cache /tmp/cc      # builds the 1.28M analysis
    python bench/report_scale.py --analysis /tmp/cc/<key> --data /tmp/coreclean-imagenet/anisotropic-n1281167-k1000

Issue 25's target: a 1.28M-row analysis reports within 60 s and 4 GB. With ``--data`` (a set written by
bench/imagenet_scale.py, which keeps the labels before its injected flips in ``y_clean.npy``) the audit's estimate
is compared with the injected truth.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import markdown_table  # noqa: E402


def memory(pid: int) -> tuple[int, int]:
    """(resident, resident anonymous) bytes of process ``pid`` (anonymous: less file pages such as the memory-mapped
    embeddings, which the kernel may drop at any time); (0, 0) once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0, 0
    kib = lambda name: int(fields.get(name, "0 kB").split()[0]) * 1024  # noqa: E731
    return kib("VmRSS"), kib("RssAnon")


def timed_report(analysis: Path, out: Path) -> dict:
    """One ``report`` run in a child process: wall seconds, peak RSS and peak anonymous memory per stage (the stage
    is the last progress line the child printed), sampled every 20 ms."""
    started, load = time.perf_counter(), os.getloadavg()[0]
    child = subprocess.Popen([sys.executable, "-m", "coreclean", "report", str(analysis), "--out",
                              str(out / "report.html"), "--json", str(out / "report.json")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stage, peaks, first_seen, lines = ["start"], {}, {}, []

    def follow() -> None:
        for line in child.stderr:
            lines.append(line)
            stage[0] = line.split(":")[0].strip() or stage[0]
            first_seen.setdefault(stage[0], time.perf_counter() - started)

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    while child.poll() is None:
        rss, anon = memory(child.pid)
        old = peaks.get(stage[0], (0, 0))
        peaks[stage[0]] = (max(old[0], rss), max(old[1], anon))
        time.sleep(0.02)
    reader.join()
    if child.returncode != 0:
        raise SystemExit(f"report failed (exit {child.returncode}):\n{''.join(lines[-20:])}")
    return {"seconds": time.perf_counter() - started, "load": load, "peaks": peaks, "first_seen": first_seen,
            "peak": max(p[0] for p in peaks.values()), "anon": max(p[1] for p in peaks.values()),
            "html MB": (out / "report.html").stat().st_size / 1e6}


def truth_lines(analysis: Path, data: Path) -> list[str]:
    """The stored audit against the injected flips of ``data``."""
    from coreclean.audit.audit import SAMPLE_ARRAYS
    from coreclean.build import store

    summary, arrays = store.read_audit(analysis, SAMPLE_ARRAYS)
    given, clean = np.load(analysis / "y_train.npy"), np.load(data / "y_clean.npy")
    flipped = given != clean
    has = arrays["suggested"] >= 0
    right = arrays["suggested"][has & flipped] == clean[has & flipped]
    return [f"injected flips {flipped.mean():.2%}; estimated {summary['noise_rate']:.2%} "
            f"(95% interval {summary['noise_interval'][0]:.2%}–{summary['noise_interval'][1]:.2%}) from "
            f"{summary['sampled']:,} sampled rows of {summary['n']:,}",
            f"suggestions for {summary['suggested']:,} rows, {int((has & flipped).sum()):,} of the "
            f"{int(flipped.sum()):,} flipped ones among them; suggestion = true label for {right.mean():.3f} of those"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analysis", type=Path, required=True, help="an analysis directory (holds meta.json)")
    parser.add_argument("--data", type=Path, help="the bench set it was built from (for the injected truth)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.analysis / "audit", ignore_errors=True)  # derived data: the cold run recomputes it
    rows, stages = [], []
    with tempfile.TemporaryDirectory() as out:
        for name in ("cold (audit computed)", "warm (audit stored)"):
            r = timed_report(args.analysis, Path(out))
            rows.append((name, f"{r['seconds']:.1f}", f"{r['peak'] / 1e9:.2f}", f"{r['anon'] / 1e9:.2f}",
                         f"{r['load']:.1f}", f"{r['html MB']:.1f}"))
            stages.append((name, r))
    meta = json.loads((args.analysis / "meta.json").read_text())
    print(f"# report of {args.analysis.name}: {meta['n_train']:,} x {meta['n_features']}, "
          f"{len(meta['classes'])} classes\n")
    print(markdown_table(rows, ["run", "seconds", "peak RSS (GB)", "peak anonymous (GB)", "load before",
                                "HTML (MB)"]))
    for name, r in stages:
        print(f"\n{name}, per stage (from its progress lines): " + ", ".join(
            f"{stage} from {r['first_seen'].get(stage, 0.0):.1f} s, peak {rss / 1e9:.2f} / {anon / 1e9:.2f} GB"
            for stage, (rss, anon) in r["peaks"].items()))
    if args.data:
        print("\n" + "\n".join(truth_lines(args.analysis, args.data)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
