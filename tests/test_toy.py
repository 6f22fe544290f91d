import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from gan_jax import data
from gan_jax.config import ConfigError, validate
from gan_jax.data.toy import mixture
from conftest import REPO, tiny_config


def toy_config(name="ring8", **kw):
  c = tiny_config(**{"data.source": "toy", "data.name": name, "data.image_size": 1,
                     "data.channels": 2, "model.name": "mlp", "model.g_output": "linear",
                     "data.max_examples": 5000, **kw})
  return c


@pytest.mark.parametrize("name,n_modes,radius", [("ring8", 8, 2.0), ("grid25", 25, 4 * 2 ** 0.5)])
def test_mixtures(name, n_modes, radius):
  modes, sigma = mixture(name)
  assert modes.shape == (n_modes, 2)
  assert np.max(np.linalg.norm(modes, axis=1)) == pytest.approx(radius)
  ds = data.load(toy_config(name).data)
  pts = ds.images.reshape(-1, 2)
  assert ds.images.shape == (5000, 1, 1, 2) and ds.images.dtype == np.float32
  d = np.linalg.norm(pts[:, None] - modes[None], axis=-1).min(1)
  assert np.mean(d < 3 * sigma) > 0.98
  assert np.bincount(ds.labels, minlength=n_modes).min() > 5000 / n_modes * 0.7


def test_toy_needs_the_2d_mlp():
  with pytest.raises(ConfigError, match="data.source='toy' needs"):
    validate(toy_config(**{"model.name": "dcgan"}))
  validate(toy_config())
  with pytest.raises(ConfigError, match="best_metric='eval/fid' is unknown; valid: eval/hq"):
    validate(toy_config(**{"eval.every": 10}))


def _cycling(points):
  """A sample_fn that returns `points` in turn, cycling, whatever z is."""
  it = itertools.cycle(np.asarray(points, np.float64).reshape(-1, 2))
  return lambda z: np.stack([next(it) for _ in range(len(z))]).reshape(-1, 1, 1, 2)


@pytest.mark.parametrize("name,far", [("ring8", (0.0, 0.0)), ("grid25", (1.0, 1.0))])
def test_toy_evaluator_on_known_samples(name, far):
  # the Evaluator's toy metrics on samples whose answer is known: G at every mode
  # equally, G at one mode, G far from all modes, G just inside / outside 3 sigma
  from gan_jax.evaluate import Evaluator
  modes, sigma = mixture(name)
  n = 100 * len(modes)  # _cycling runs on across generate()'s batches: 100 per mode
  c = toy_config(name, **{"eval.every": 2, "eval.num_samples": n,
                          "checkpoint.best_metric": "eval/reverse_kl"})
  ev = Evaluator(c, data.load(c.data).images)
  out = ev(_cycling(modes), 2)
  assert out == {"eval/modes": len(modes), "eval/hq_fraction": 1.0,
                 "eval/reverse_kl": pytest.approx(0.0, abs=1e-12)}
  out = ev(_cycling(modes[:1]), 2)
  assert out["eval/modes"] == 1 and out["eval/hq_fraction"] == 1.0
  assert out["eval/reverse_kl"] == pytest.approx(np.log(len(modes)), rel=1e-9)
  # far from every mode: nothing is high quality, no mode is covered, KL is undefined (inf)
  out = ev(_cycling([far]), 2)
  assert out == {"eval/modes": 0, "eval/hq_fraction": 0.0, "eval/reverse_kl": np.inf}
  # the 3-sigma radius: half the samples 2.9 sigma from their mode, half 3.1 sigma
  near = np.concatenate([modes + [2.9 * sigma, 0], modes + [0, -3.1 * sigma]])
  out = ev(_cycling(near), 2)
  assert out["eval/hq_fraction"] == pytest.approx(0.5) and out["eval/modes"] == len(modes)


def test_toy_run_writes_mode_metrics_and_scatter(tmp_path):
  from gan_jax.train import train_and_evaluate
  c = toy_config(**{"train.num_steps": 4, "eval.every": 2, "eval.num_samples": 500,
                    "model.d_pack": 2, "train.batch_size": 16,
                    "checkpoint.best_metric": "eval/reverse_kl"})
  train_and_evaluate(c, str(tmp_path))
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  evals = [r for r in rows if "eval/modes" in r]
  assert [r["step"] for r in evals] == [2, 4]
  for r in evals:
    assert 0 <= r["eval/modes"] <= 8 and 0 <= r["eval/hq_fraction"] <= 1
    assert r["eval/reverse_kl"] >= 0
  trained = (tmp_path / "eval" / "scatter_00000004.png").read_bytes()
  assert len(trained) > 5000
  # scripts/evaluate.py on other settings: its own scatter plot beside its JSON,
  # training's plot of the same step left as it was
  env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={tmp_path}",
                        "--step=latest", "--num_samples=200"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert (tmp_path / "eval" / "scatter_00000004.png").read_bytes() == trained
  own = (tmp_path / "eval" / "step_4_scatter.png").read_bytes()
  assert len(own) > 5000 and own != trained
  assert json.loads((tmp_path / "eval" / "step_4.json").read_text())["num_samples"] == 200
  # scripts/sample.py writes a toy run's samples as float points, unclipped, and
  # refuses PNGs; analysis.plot_grid refuses points with a clear message
  sys.path.insert(0, str(REPO / "scripts"))
  try:
    import sample
  finally:
    sys.path.remove(str(REPO / "scripts"))
  from gan_jax import analysis
  assert sample.main([f"--workdir={tmp_path}", "--num=300", f"--out={tmp_path}/p.npz"]) == 0
  with np.load(tmp_path / "p.npz") as f:
    assert f.files == ["points"]
    points = f["points"]
  run = analysis.load_run(str(tmp_path))
  assert points.dtype == np.float32 and points.shape == (300, 2)
  np.testing.assert_array_equal(points, run.sample(300, seed=0).reshape(300, 2))
  assert sample.main([f"--workdir={tmp_path}", "--num=3", f"--out={tmp_path}/png"]) == 1
  assert not (tmp_path / "png").exists()
  with pytest.raises(ValueError, match="1 or 3 channels"):
    analysis.plot_grid(run.sample(4))


def test_scatter_png_draws_points_and_modes_without_touching_the_backend(tmp_path):
  """A notebook's matplotlib backend survives a toy evaluation; the plot is a
  500 x 500 PNG with the generated points (blue) and the modes (red)."""
  import matplotlib
  before = matplotlib.get_backend()
  matplotlib.use("svg")  # stands in for a notebook's inline backend
  try:
    _scatter_under_svg(tmp_path)
  finally:
    matplotlib.use(before)


def _scatter_under_svg(tmp_path):
  import matplotlib
  from PIL import Image
  from gan_jax.evaluate import Evaluator
  c = toy_config(**{"eval.every": 2, "eval.num_samples": 800,
                    "checkpoint.best_metric": "eval/reverse_kl"})
  modes, sigma = mixture("ring8")
  points = modes[None] + np.random.default_rng(0).normal(0, sigma, (100, 8, 2))
  Evaluator(c, data.load(c.data).images)(_cycling(points.reshape(-1, 2)), 2,
                                         scatter_path=str(tmp_path / "s.png"))
  assert matplotlib.get_backend() == "svg"
  img = np.asarray(Image.open(tmp_path / "s.png").convert("RGB")).astype(int)
  assert img.shape == (500, 500, 3)
  r, g, b = img[..., 0], img[..., 1], img[..., 2]
  assert ((b - r > 40) & (b > g)).sum() > 50        # tab:blue points (alpha 0.4)
  assert ((r - b > 60) & (r - g > 60)).sum() > 50   # tab:red modes and circles
  assert (img.min(-1) > 250).mean() > 0.5           # mostly white: not a blank or dark plot
