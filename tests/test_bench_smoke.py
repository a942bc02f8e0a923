"""Smoke runs of every benchmark script at toy sizes: they run and print their tables (numbers live in docs/)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script, args, expect", [
    ("detection.py", ["--quick"], "| coreclean |"),
    ("coreset_fidelity.py", ["--quick"], "coreset − uniform"),
    ("embed_throughput.py", ["--images", "8"], "| cpu |"),
    ("dashboard_timing.py", ["--source", "digits"], "review: switch class"),
    ("retrain_time.py", ["--source", "digits"], "retrain"),
    ("explore.py", ["--quick"], "| coreclean outlier_score |"),
    ("quality.py", ["--quick"], "| odd_aspect_ratio |"),
    ("review_speed.py", ["--quick"], "vs click"),
    ("map_timing.py", ["--source", "digits", "--quick"], "select a box"),
    ("scale_out.py", ["--workers", "2", "--images", "8", "--rows", "4000", "--dim", "16", "--classes", "5",
                      "--chunk-rows", "1000"], "(e) projection"),
])
def test_bench_script_runs(script, args, expect, tmp_path):
    if script in ("dashboard_timing.py", "retrain_time.py", "map_timing.py"):
        args = args + ["--cache", str(tmp_path)]
    result = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expect in result.stdout


def test_imagenet_scale_smoke(tmp_path):
    result = subprocess.run([sys.executable, str(BENCH / "imagenet_scale.py"), "--n-train", "3000", "--n-test", "500",
                             "--classes", "30", "--dir", str(tmp_path / "data"), "--cache", str(tmp_path / "cache")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "**total build**" in result.stdout and "average precision" in result.stdout


def test_imagenet_scale_compare_smoke(tmp_path):
    """The anisotropic set knows its Bayes-optimal accuracy; the three estimators print side by side."""
    result = subprocess.run([sys.executable, str(BENCH / "imagenet_scale.py"), "--variant", "anisotropic",
                             "--n-train", "3000", "--n-test", "500", "--classes", "30", "--dir", str(tmp_path),
                             "--compare", "old", "new", "reference", "--reference-iter", "5"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Bayes-optimal" in result.stdout
    for name in ("old coreset fit", "new solver (default)", "long full-data reference"):
        assert f"| {name} |" in result.stdout
