"""What a notebook gets from :class:`~coreclean.Analysis` while the compute layer draws nothing itself: progress
bars while building in Jupyter, and the dashboard's figures through a plug-in point.

Figures: ``analysis.figures`` asks the entry-point group :data:`FIGURES_GROUP` for a factory ``(analysis) ->
object with figure methods``, as pandas finds its plotting backends. The installed package registers the
dashboard's (``coreclean_dashboard.ui.notebook:AnalysisFigures``, pyproject.toml), so the dependency points from
the UI to the compute layer, never back.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

FIGURES_GROUP = "coreclean.figures"
DEFAULT_FIGURES = "plotly"


def in_jupyter() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel), where tqdm.auto draws widget bars."""
    ipython = sys.modules.get("IPython")  # never imported here: a kernel has always imported it already
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class JupyterBars:
    """Build progress ``(stage, done, total)`` as one tqdm.auto bar per stage, closed when it reaches 100 %."""

    def __init__(self):
        self.bars: dict = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        total = max(int(total), 1)
        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="img" if stage == "embed" else "step")
        bar.total = total
        bar.update(min(done, total) - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def default_progress() -> JupyterBars | None:
    """Bars in Jupyter; elsewhere None (a library call stays quiet; the CLI passes its own bars)."""
    return JupyterBars() if in_jupyter() else None


def figures_for(analysis, backend: str = DEFAULT_FIGURES):
    """The registered figures of ``analysis`` (see the module docstring)."""
    found = {point.name: point for point in entry_points(group=FIGURES_GROUP)}
    if backend not in found:
        raise ImportError(f"no '{backend}' figures for coreclean are installed (entry point group {FIGURES_GROUP!r}"
                          f"{': found ' + ', '.join(sorted(found)) if found else ''}); install the package with its "
                          "dashboard: 'pip install .' (or 'pip install -e .') in the coreclean checkout.")
    return found[backend].load()(analysis)
