"""notebooks/analyze_run.ipynb: stored without outputs, and it runs top to
bottom in a fresh kernel against the shared tiny run, saving every figure."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from tiny_run import env, trained_run

NOTEBOOK = REPO / "notebooks" / "analyze_run.ipynb"
FIGURES = ("train_curves", "eval_curves", "samples", "samples_truncated", "interpolation",
           "neighbors_pixel", "neighbors_feature")


def test_notebook_is_stored_without_outputs():
  nb = json.loads(NOTEBOOK.read_text())
  code = [c for c in nb["cells"] if c["cell_type"] == "code"]
  assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
  assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_notebook_runs_and_saves_its_figures(tmp_path_factory, tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  workdir = trained_run(tmp_path_factory)
  figdir = tmp_path / "figs"
  # The kernel inherits this environment: the repo importable without an
  # install, one CPU device, and the run and figure folder to use.
  for key, value in env(1).items():
    monkeypatch.setenv(key, value)
  monkeypatch.setenv("GAN_JAX_WORKDIR", str(workdir))
  monkeypatch.setenv("GAN_JAX_FIGDIR", str(figdir))
  monkeypatch.setenv("GAN_JAX_NUM_REAL", "500")
  monkeypatch.delenv("GAN_JAX_STEP", raising=False)

  nb = nbformat.read(NOTEBOOK, as_version=4)
  # nbclient's defaults wait 4 s for a finished cell's last outputs and then drop
  # them silently, and 60 s for the kernel to start: too little on a loaded machine.
  client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                   iopub_timeout=120, raise_on_iopub_timeout=True,
                                   startup_timeout=300,
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()

  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  shown = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(shown) == len(FIGURES)
  text = "".join(o.get("text", "") for o in outputs)
  assert "(checkpoint): step " in text
  # the digits source ignores data.name (default 'mnist'): the header named it 'digits:mnist'
  assert "dcgan on digits 8x8x1" in text, text
  for name in FIGURES:
    path = figdir / f"{name}.png"
    assert path.exists(), sorted(os.listdir(figdir))
    img = np.asarray(Image.open(path).convert("L"), np.float32)
    assert path.stat().st_size > 5000 and min(img.shape) > 150, name
    assert img.std() > 10 and (img < 128).mean() > 0.01, name  # not blank
