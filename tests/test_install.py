"""The package as a user gets it: the wheel builds, installs into a fresh virtual environment, and its ``coreclean``
command builds, ranks and serves the dashboard from an empty folder, far from the checkout.

The fresh environment gets its dependencies (torch, Streamlit ...) from this interpreter's site-packages through a
``.pth`` file instead of a download (gigabytes here, no network in CI's sandbox): ``python -m venv`` plus ``pip
install --python`` of the wheel alone gives the real layout (console script, ``coreclean_dashboard/`` and ``ui/`` in
its own site-packages, entry points), while a ``.pth`` line only appends a folder to ``sys.path`` — the ``.pth`` files
inside it (an editable install of the checkout) are not run, so the checkout cannot leak in; the tests check where
``coreclean`` was imported from.
"""
import argparse
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from bench.server import free_port, wait_until
from coreclean import __version__
from coreclean.cli.dashboard import app_directory, streamlit_command
from coreclean.cli.main import main
from test_hardening import _listening_addresses

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["pyproject.toml", "README.md", "dashboard.py", ".streamlit/config.toml", "coreclean", "ui", "pages"]
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def _run(command, *, cwd, env=None, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the shipped files (a build in the shared checkout would leave build/ there,
    and stale files in it could slip into the wheel)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    for name in SHIPPED:
        origin, target = ROOT / name, source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, target)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "dist",
          source], cwd=work)
    (built,) = (work / "dist").glob("coreclean-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory) -> dict:
    """A new virtual environment holding only the wheel; ``env`` runs its ``coreclean`` from an empty folder."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=venv.parent).stdout.strip())
    # The wheel first: pip must not see (and replace) an install of coreclean in the dependencies' site-packages.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
          "--no-compile", wheel], cwd=venv.parent)
    dependencies = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    (purelib / "_coreclean_test_dependencies.pth").write_text("\n".join(dict.fromkeys(dependencies)) + "\n")
    empty = tmp_path_factory.mktemp("empty-folder")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CORECLEAN_CACHE", "CORECLEAN_READONLY")}
    return {"bin": venv / "bin", "purelib": purelib, "cwd": empty, "env": env}


def test_the_wheel_holds_every_module_of_the_tree(wheel):
    """pyproject.toml lists the packages (the app's folder is mapped, which discovery cannot do): a package added to
    the tree but not to that list would be missing from every install."""
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = _run(["git", "ls-files", "coreclean", "ui", "pages", "dashboard.py"], cwd=ROOT, check=False)
    files = tracked.stdout.split() if tracked.returncode == 0 else \
        [str(p.relative_to(ROOT)) for d in ("coreclean", "ui", "pages") for p in (ROOT / d).rglob("*.py")]
    expected = {f"coreclean_dashboard/{f}" if f == "dashboard.py" or f.startswith(("pages/", "ui/")) else f
                for f in files if f.endswith(".py") and (ROOT / f).exists()}
    missing = sorted(expected - names)
    assert not missing, f"add their packages to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert "coreclean_dashboard/.streamlit/config.toml" in names
    assert not [n for n in names if n.startswith("ui/")], "ui/ ships inside coreclean_dashboard/, not top level"


def test_installed_command_builds_ranks_and_serves_from_an_empty_folder(fresh, digits_build, copy_analysis):
    bin_, cwd, env = fresh["bin"], fresh["cwd"], fresh["env"]
    where = _run([bin_ / "python", "-c", "import coreclean, coreclean_dashboard, coreclean_dashboard.ui.notebook as ui; "
                                         "print(coreclean.__file__, ui.__file__, *coreclean_dashboard.__path__)"],
                 cwd=cwd, env=env).stdout.split()
    assert all(Path(p).is_relative_to(fresh["purelib"]) for p in where), where  # the wheel, not the checkout
    assert _run([bin_ / "coreclean", "--version"], cwd=cwd, env=env).stdout.strip() == f"coreclean {__version__}"

    cache = cwd / "X"
    prebuilt = copy_analysis(digits_build, cache)  # same data and settings, so the installed build reuses it
    built = _run([bin_ / "coreclean", "build", "digits", "--cache", "X"], cwd=cwd, env=env)
    assert f"cache: {Path('X') / prebuilt.name}" in built.stdout
    ranked = _run([bin_ / "coreclean", "rank", f"X/{prebuilt.name}", "--out", "r.csv"], cwd=cwd, env=env)
    rows = (cwd / "r.csv").read_text().splitlines()
    assert rows[0] == "index,label,importance,predicted,p_label,duplicate_of,outlier"
    assert f"wrote {len(rows) - 1} rows" in ranked.stdout and len(rows) > 1000

    port = free_port()
    server = subprocess.Popen([str(bin_ / "coreclean"), "dashboard", "--cache", "X", "--port", str(port)], cwd=cwd,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: server.poll() is not None or _health(port) == "ok", "the installed dashboard's health",
                   interval=0.3)
        assert server.poll() is None, server.stderr.read()
        assert _listening_addresses(port) <= LOOPBACK, "the installed dashboard listens beyond this machine"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_command_serves_others_only_read_only(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CORECLEAN_READONLY", raising=False)
    assert main(["dashboard", "--address", "0.0.0.0"]) == 2
    assert capsys.readouterr().err.startswith("error: --address 0.0.0.0: serving the dashboard to other machines")
    assert main(["dashboard", "--cache", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    args = argparse.Namespace(port=8600, address="0.0.0.0", read_only=True, cache=tmp_path)
    assert app_directory() == ROOT  # from a checkout (or an editable install) the command runs the checkout's app
    command, env = streamlit_command(args, ROOT)
    assert env == {"CORECLEAN_CACHE": str(tmp_path.resolve()), "CORECLEAN_READONLY": "1"}
    addresses = [flag for flag in command if flag.startswith("--server.address")]
    assert addresses == ["--server.address=0.0.0.0"] and "--server.headless=true" in command  # from config.toml


def _health(port: int) -> str:
    import urllib.request

    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).read().decode()
    except OSError:
        return ""


def test_the_docker_image_builds_the_same_wheel_and_runs_its_command():
    """No Docker here: check the Dockerfile copies exactly what the wheel is built from and serves via the command."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    wheel_stage = lines[:next(i for i, line in enumerate(lines) if line.startswith("FROM") and i > 0 and
                              "AS wheel" not in line)]
    copied = {part.rstrip("/") for line in wheel_stage if line.startswith("COPY ") for part in line.split()[1:-1]}
    assert copied == set(SHIPPED)
    assert any(line.startswith("RUN pip install") and "coreclean-*.whl" in line for line in lines)
    assert lines[-1].startswith('CMD ["coreclean", "dashboard", "--read-only"')
