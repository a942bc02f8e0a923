"""The notebook API: the example notebook runs top to bottom in a real Jupyter kernel (nbclient), its figures come
from the dashboard's builders, and ``Analysis.build`` draws tqdm.auto bars in Jupyter only."""
import copy
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from coreclean.analysis.notebook import JupyterBars, default_progress, figures_for

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_runs_top_to_bottom(path, tmp_path, cache, digits_build, copy_analysis):
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") or cell.get("execution_count") for cell in notebook.cells
                   if cell.cell_type == "code"), f"{path.name}: commit it without outputs"
    copy_analysis(digits_build, cache)  # the notebook's Analysis.build("digits") reuses the session's build
    run = copy.deepcopy(notebook)
    run.cells.append(nbformat.v4.new_code_cell(
        "from coreclean.analysis.notebook import default_progress\nprint(type(default_progress()).__name__)"))
    NotebookClient(run, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute(
        env={**os.environ, "CORECLEAN_CACHE": str(cache)})
    code = [cell for cell in run.cells if cell.cell_type == "code"]
    figure_cells = [cell for cell in code if ".figures." in cell.source]
    assert len(figure_cells) == 4
    for cell in figure_cells:  # each figure cell shows a plotly figure
        assert any(PLOTLY in output.get("data", {}) for output in cell.outputs), cell.source
    assert code[-1].outputs[0]["text"].strip() == "JupyterBars"  # in a kernel, builds show tqdm.auto bars
    assert "test accuracy" in code[0].outputs[-1]["text"]


def test_builds_outside_jupyter_stay_quiet():
    assert default_progress() is None


def test_jupyter_bars_end_each_stage_at_100_percent():
    bars = JupyterBars()
    for done in (0, 4, 10):
        bars("fit", done, 10)
    bars("embed", 3, 7)
    assert bars.bars["fit"].n == 10 and bars.bars["fit"].total == 10
    bars.close()
    assert bars.bars["embed"].n == 3  # an interrupted stage is closed where it stopped


def test_figures_come_from_the_installed_dashboard_package(digits_analysis):
    from coreclean_dashboard.ui.notebook import AnalysisFigures  # the entry point names the installed package

    assert isinstance(digits_analysis.figures, AnalysisFigures)
    with pytest.raises(ImportError, match="pip install"):
        figures_for(digits_analysis, backend="matplotlib")
    with pytest.raises(ValueError, match="not a class"):
        digits_analysis.figures.importance_histogram(["no such class"])
