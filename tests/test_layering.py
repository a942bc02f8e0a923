"""The house rules, checked from the source: imports inside coreclean/ point down (no cycles), the compute layer
never imports the UI, and pages only describe the UI (no numpy)."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UI_LIBRARIES = {"streamlit", "plotly"}


def module_imports(package: Path) -> dict[str, set[str]]:
    """Module name -> absolute names it imports (relative imports resolved), for every .py under ``package``."""
    graph = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = names
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules forming an import cycle, or None. Edges to a package's own __init__ are ignored."""
    edges = {m: {n for n in names if n in graph and n != m and not m.startswith(n + ".")} for m, names in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_detector_finds_a_planted_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import x\n")
    (package / "b.py").write_text("from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    assert find_cycle(module_imports(package)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("import numpy\n")
    assert find_cycle(module_imports(package)) is None


def test_coreclean_has_no_import_cycle():
    assert find_cycle(module_imports(ROOT / "coreclean")) is None


def test_coreclean_never_imports_the_ui():
    offenders = {module: sorted(n for n in names if n.split(".")[0] in UI_LIBRARIES | {"ui"})
                 for module, names in module_imports(ROOT / "coreclean").items()}
    assert {m: names for m, names in offenders.items() if names} == {}


def test_pages_hold_no_numpy():
    offenders = []
    for page in sorted((ROOT / "pages").glob("*.py")) + [ROOT / "dashboard.py"]:
        for node in ast.walk(ast.parse(page.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{page.name}: {n}" for n in names if n.split(".")[0] in ("numpy", "pandas", "scipy")]
    assert offenders == []


def test_the_only_top_level_module_is_the_dashboard():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["dashboard.py"]


def test_the_readme_test_command_is_what_ci_runs():
    """A developer runs before a commit exactly what CI runs (with the slowest tests listed, to keep them in sight)."""
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip().startswith(".venv/bin/python -m pytest")]
    readme = [line.strip() for line in (ROOT / "README.md").read_text().splitlines()
              if line.strip().startswith(".venv/bin/python -m pytest")]
    assert len(ci) == 1 and readme == ci
    assert "--durations=15" in ci[0].split()


# The pipeline's stages, upstream first: a subpackage may import only from those before it (and coreclean.config).
STAGES = ["data", "quality", "embedding", "classifier", "importance", "exploration", "review", "build", "analysis",
          "audit", "cli"]
LOOSE_MODULES = {"__init__.py", "__main__.py", "config.py"}  # the package face, the entry point, the one config


def test_the_folder_list_reads_as_the_pipeline():
    package = ROOT / "coreclean"
    assert {p.name for p in package.glob("*.py")} <= LOOSE_MODULES
    subpackages = {p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    assert subpackages <= set(STAGES), f"place {sorted(subpackages - set(STAGES))} in STAGES, in pipeline order"


def test_subpackages_import_only_upstream():
    rank = {name: i for i, name in enumerate(STAGES)}
    upward = []
    for module, names in module_imports(ROOT / "coreclean").items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in rank:
            continue
        for name in names:
            target = name.split(".")
            if target[0] != "coreclean":
                continue
            if len(target) == 1 or target[1] == "__main__":  # the package face sits above every stage
                upward.append(f"{module} -> {name}")
            elif target[1] in rank and rank[target[1]] > rank[parts[1]]:
                upward.append(f"{module} -> {name}")
    assert upward == []


def test_reading_an_analysis_does_not_import_torch():
    """The dashboard, ``report`` and ``export`` only read arrays: importing the package and its reader must not pay
    for torch (most of a fresh process's start; coreclean/classifier/lazy_torch.py)."""
    code = "import sys, coreclean, coreclean.analysis.reader; print(sorted(m for m in ('torch', 'torchvision') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
