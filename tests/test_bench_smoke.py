"""Smoke runs of every benchmark script at toy sizes: they run and print their tables (numbers live in docs/).

Each script runs as ``python bench/SCRIPT ARGS`` would — its ``__main__`` block, its argv, in a scratch working
directory — but inside this process (``runpy``), so no run pays for a fresh interpreter and its imports. Scripts that
open the digits analysis get a copy of the session's build in their cache (their timed steps still run); no
Fashion-MNIST build runs here (explore.py reads 1,500 of its rows). ``scale_out.py`` runs in test_cluster.py, on
the run's one LocalCluster. ``run_script`` is conftest's."""
import pytest

OPENS_DIGITS = {"dashboard_timing.py", "retrain_time.py", "map_timing.py", "review_speed.py"}


@pytest.mark.parametrize("script, args, expect", [
    ("detection.py", ["--quick", "--rounds", "1"], "| coreclean |"),
    ("coreset_fidelity.py", ["--dataset", "digits", "--fractions", "0.3", "--seeds", "1"], "coreset − uniform"),
    ("embed_throughput.py", ["--images", "8"], "| cpu |"),
    ("dashboard_timing.py", ["--source", "digits"], "review: switch class"),
    ("retrain_time.py", ["--source", "digits"], "retrain"),
    ("explore.py", ["--quick", "--rows", "1500"], "| coreclean outlier_score |"),
    ("quality.py", ["--normal", "70", "--per-kind", "8", "--overhead-images", "4", "--loop-images", "4",
                    "--repeats", "1"], "| odd_aspect_ratio |"),
    ("review_speed.py", ["--quick"], "vs click"),
    ("map_timing.py", ["--source", "digits", "--quick"], "select a box"),
])
def test_bench_script_runs(script, args, expect, tmp_path, run_script, digits_build, copy_analysis):
    if script in OPENS_DIGITS:
        copy_analysis(digits_build, tmp_path / "cache")
        args = args + ["--cache", str(tmp_path / "cache")]
    out = run_script(script, *args)
    assert expect in out


def test_report_scale_smoke(tmp_path, run_script, digits_build, copy_analysis):
    """The report's cold and warm runs, each a real `coreclean report` child process, on a copy of digits."""
    analysis = copy_analysis(digits_build, tmp_path / "cache")
    out = run_script("report_scale.py", "--analysis", str(analysis))
    assert "| cold (audit computed) |" in out and "| warm (audit stored) |" in out


def test_imagenet_scale_smoke(tmp_path, run_script):
    out = run_script("imagenet_scale.py", "--n-train", "1000", "--n-test", "200", "--classes", "10",
                     "--dir", str(tmp_path / "data"), "--cache", str(tmp_path / "cache"))
    assert "**total build**" in out and "average precision" in out


def test_imagenet_scale_compare_smoke(tmp_path, run_script):
    """The anisotropic set knows its Bayes-optimal accuracy; the three estimators print side by side (each fit in
    its own process, as the script does for clean memory peaks)."""
    out = run_script("imagenet_scale.py", "--variant", "anisotropic", "--n-train", "1000", "--n-test", "200",
                     "--classes", "10", "--dir", str(tmp_path), "--compare", "old", "new", "reference",
                     "--reference-iter", "5")
    assert "Bayes-optimal" in out
    for name in ("old coreset fit", "new solver (default)", "long full-data reference"):
        assert f"| {name} |" in out


def test_recall_curve_smoke(tmp_path, run_script, digits_build, copy_analysis):
    """The curve prints a row per number of lists, and the stored neighbours of digits (searched exactly by the
    build) are measured as exact: the script's recall of stored lists is right."""
    analysis = copy_analysis(digits_build, tmp_path / "cache")
    out = run_script("recall_curve.py", "--analysis", str(analysis), "--queries", "200")
    rows = [line.split("|")[1:4] for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) >= 3 and float(rows[-1][2]) == 1.0
    assert "recall@10 1.0000; epsilon-recall@10 0.001: 1.0000" in out
