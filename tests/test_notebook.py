"""notebooks/tutorial.ipynb runs top to bottom on the synthetic data (as a reader would run it)."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tutorial.ipynb"


@pytest.mark.slow
def test_tutorial_notebook_runs_and_scores_the_test_patients(synthetic_data_dir, tmp_path):
    """The notebook as a reader runs it, but pointed at the suite's own build of the same dataset (a
    cell after its first sets DATA_DIR, as papermill injects parameters): its download_and_prepare
    finds the dataset built; building it is test_builder's."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert "DATA_DIR = " in notebook.cells[1].source  # the cell whose choice is replaced
    notebook.cells.insert(2, nbformat.v4.new_code_cell(f"DATA_DIR = {synthetic_data_dir!r}"))
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert "per-patient Dice: mean" in printed
    dice = float(printed.split("per-patient Dice: mean ")[1].split()[0])
    assert dice > 0.3, printed[-2000:]  # eight epochs of a tiny U-Net find the phantoms' tumors
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the slices-and-masks figure and the overlays
