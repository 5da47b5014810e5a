"""The tutorial notebook runs top to bottom on a fresh campaign."""
import nbformat
from nbclient import NotebookClient

from tests.helpers import REPO


def test_tutorial_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("PAB_TUTORIAL_CAMPAIGN", str(tmp_path / "tutorial"))
    notebook = nbformat.read(REPO / "notebooks" / "tutorial.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert len(list((tmp_path / "tutorial" / "runs").iterdir())) == 12
    audit_output = notebook.cells[-1].outputs[0]["data"]["text/plain"]
    assert "weights/erank@2" in audit_output and "verdict" in audit_output
