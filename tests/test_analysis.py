"""gan_jax.analysis on a tiny evaluated run (trained on 2 devices, loaded here
on 4): loading by step, sampling, latents, interpolation, nearest neighbours,
export round trip and plots."""
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import edit_saved_configs
from tiny_run import env, trained_run


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def run(workdir):
  from gan_jax import analysis
  return analysis.load_run(workdir, "latest")


def _rows(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_import_has_no_side_effects():
  code = ("import sys, gan_jax.analysis; "
          "print([m for m in ('tensorflow', 'matplotlib', 'pandas') if m in sys.modules])")
  out = subprocess.run([sys.executable, "-c", code], cwd="/", env=env(1),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == "[]"


def test_default_step_is_the_best_evaluated_checkpoint(workdir, run):
  from gan_jax import analysis, checkpoint
  best = analysis.load_run(workdir)
  steps = checkpoint.existing_steps(workdir)
  fid = {r["step"]: r["eval/fid"] for r in _rows(workdir) if "eval/fid" in r}
  assert best.step == min((v, s) for s, v in fid.items() if s in steps)[1]
  assert analysis.resolve(str(workdir), "best") == best.step
  assert run.step == steps[-1] == 6 and analysis.load_run(workdir, 4).step == 4
  with pytest.raises(checkpoint.CheckpointError, match="available: 2, 4, 6"):
    analysis.load_run(workdir, 5)


def test_best_without_evaluation_is_a_clear_error(workdir, tmp_path):
  from gan_jax import analysis, checkpoint
  plain = tmp_path / "plain"
  shutil.copytree(workdir, plain)
  rows = [r for r in _rows(workdir) if "eval/fid" not in r]
  (plain / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  for s in checkpoint.existing_steps(plain):
    shutil.rmtree(plain / "checkpoints" / str(s) / "metrics", ignore_errors=True)
  assert analysis.load_run(plain).step == 6  # falls back to 'latest'
  with pytest.raises(checkpoint.CheckpointError, match="eval.every > 0"):
    analysis.load_run(plain, "best")
  with pytest.raises(FileNotFoundError, match="not a folder"):
    analysis.load_run(tmp_path / "missing")


def test_run_fields_and_metrics(workdir, run):
  from gan_jax.models.dcgan import DCGANGenerator
  assert run.config.data.source == "digits" and run.config.model.z_dim == 16
  assert isinstance(run.generator, DCGANGenerator) and run.source == "checkpoint"
  assert not run.uses_ema and run.batch_stats  # DCGAN: BatchNorm running stats
  for leaf in jax.tree.leaves((run.params, run.batch_stats)):
    assert leaf.sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0])
  df = run.metrics
  assert list(df["step"]) == [2, 4, 6]  # training and eval rows of a step merged
  assert {"d_loss", "g_loss", "d_real", "d_fake", "eval/fid", "eval/kid"} <= set(df.columns)
  assert df["eval/fid"].notna().all()


def test_sample_is_deterministic_and_prefix_stable(run):
  a = run.sample(10, seed=3, batch_size=4)
  assert a.shape == (10, 8, 8, 1) and a.dtype == np.float32
  assert np.all(np.abs(a) <= 1)
  np.testing.assert_array_equal(a, run.sample(10, seed=3, batch_size=4))
  np.testing.assert_array_equal(a[:6], run.sample(6, seed=3, batch_size=4))
  assert not np.array_equal(a, run.sample(10, seed=4, batch_size=4))
  np.testing.assert_array_equal(run.generate(run.latents(10, seed=3)), a)
  with pytest.raises(ValueError, match="unconditional"):
    run.sample(2, labels=[0, 1])
  with pytest.raises(ValueError, match="expected"):
    run.generate(np.zeros((2, 3)))


def test_truncation_bounds_every_latent_component(run):
  z = run.latents(500, seed=0, truncation=0.5)
  assert z.shape == (500, 16) and np.abs(z).max() <= 0.5
  assert np.abs(z).max() > 0.45  # truncated, not scaled or clipped onto a few values
  assert not np.any(np.abs(z) == 0.5)
  assert np.abs(run.latents(500, seed=0)).max() > 2
  assert run.sample(3, seed=0, truncation=0.5).shape == (3, 8, 8, 1)
  with pytest.raises(ValueError, match="positive"):
    run.latents(2, truncation=0)


def test_slerp_and_interpolate(run):
  from gan_jax.analysis import lerp, slerp
  e0, e1 = np.eye(3)[0], np.eye(3)[1]
  path = slerp(e0, e1, np.linspace(0, 1, 5))
  np.testing.assert_allclose(np.linalg.norm(path, axis=1), 1, rtol=1e-6)  # on the sphere
  np.testing.assert_allclose(path[2], [np.sqrt(0.5), np.sqrt(0.5), 0], rtol=1e-6)
  np.testing.assert_allclose(lerp(e0, e1, 0.5), [0.5, 0.5, 0])
  np.testing.assert_allclose(slerp(e0, 2 * e0, 0.5), 1.5 * e0)  # parallel: lerp
  z = run.latents(2, seed=1)
  for mode in ("slerp", "lerp"):
    strip = run.interpolate(z[0], z[1], 5, mode=mode)
    assert strip.shape == (5, 8, 8, 1)
    np.testing.assert_allclose(strip[[0, -1]], run.generate(z), atol=1e-6)
  with pytest.raises(ValueError, match="valid: slerp, lerp"):
    run.interpolate(z[0], z[1], 5, mode="cubic")


def test_nearest_neighbors_pixel_and_feature(run):
  from gan_jax.neighbors import nearest_neighbors
  real = run.real_images(300)
  assert real.shape == (300, 8, 8, 1) and real.min() >= -1 and real.max() <= 1
  queries = real[[5, 17, 250]] + 0.01
  for space in ("pixel", "feature"):
    idx, dist = run.nearest_neighbors(queries, real, k=3, space=space)
    assert idx.shape == dist.shape == (3, 3)
    assert list(idx[:, 0]) == [5, 17, 250]
    assert np.all(np.diff(dist, axis=1) >= 0)
  # blocks over samples and real images give the brute-force answer
  rng = np.random.default_rng(0)
  a, b = rng.uniform(-1, 1, (7, 4, 4, 1)), rng.uniform(-1, 1, (50, 4, 4, 1))
  idx, dist = nearest_neighbors(a, b, k=4, batch_size=3, block=16)
  d = np.linalg.norm(a.reshape(7, 1, -1) - b.reshape(1, 50, -1), axis=-1)
  np.testing.assert_array_equal(idx, np.argsort(d, axis=1)[:, :4])
  np.testing.assert_allclose(dist, np.sort(d, axis=1)[:, :4], rtol=1e-5)
  with pytest.raises(ValueError, match="grayscale"):
    nearest_neighbors(np.zeros((2, 8, 8, 3)), np.zeros((4, 8, 8, 3)), k=2, space="feature")
  # uint8 real images (as data.load returns them) are on the samples' [-1, 1] scale
  real_u8 = np.round((real + 1) * 127.5).astype(np.uint8)
  idx, dist = nearest_neighbors(queries, real_u8, k=1)
  assert list(idx[:, 0]) == [5, 17, 250] and dist.max() < 0.1


def test_export_samples_identically_without_the_training_state(workdir, tmp_path):
  from flax import serialization
  from gan_jax import analysis
  from gan_jax.state import count_params
  run = analysis.load_run(workdir, 4)
  analysis.export(run, tmp_path / "g")
  assert sorted(os.listdir(tmp_path / "g")) == ["generator.msgpack", "model_card.json"]
  blob = (tmp_path / "g" / "generator.msgpack").read_bytes()
  assert set(serialization.msgpack_restore(blob)) == {"params", "batch_stats"}
  card = json.loads((tmp_path / "g" / "model_card.json").read_text())
  assert card["step"] == 4 and card["config"]["model"]["z_dim"] == 16
  assert card["num_params"] == count_params(run.params) > 0
  fid4 = [r["eval/fid"] for r in _rows(workdir) if r["step"] == 4 and "eval/fid" in r]
  assert card["metrics"]["eval/fid"] == fid4[0] and "g_loss" in card["metrics"]
  assert card["created"][:4].isdigit()

  exported = analysis.load_run(tmp_path / "g")
  assert exported.source == "export" and exported.step == 4
  np.testing.assert_array_equal(exported.sample(9, seed=5), run.sample(9, seed=5))
  with pytest.raises(ValueError, match="export of step 4"):
    analysis.load_run(tmp_path / "g", 6)
  (tmp_path / "g" / "generator.msgpack").write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
  with pytest.raises(ValueError, match="checksum"):
    analysis.load_export(tmp_path / "g")


def test_plots_return_figures(run, tmp_path):
  from matplotlib.figure import Figure
  from PIL import Image
  from gan_jax import analysis
  x = run.sample(16)
  idx, dist = run.nearest_neighbors(x[:2], run.real_images(50), k=3)
  figs = {"grid": analysis.plot_grid(x, title="t"),
          "curves": analysis.plot_curves(run.metrics),
          "eval": analysis.plot_curves(run.metrics, "eval"),
          "none": analysis.plot_curves(run.metrics[["step", "d_loss"]], "eval"),
          "nn": analysis.plot_neighbors(x[:2], run.real_images(50), idx, dist)}
  # losses, D outputs (D(x), D(G(z))) and gradient norms, then one per eval metric
  assert len(figs["curves"].axes) == 3 + len(
      [c for c in run.metrics.columns if c.startswith("eval/") and not c.endswith("_std")])
  for name, fig in figs.items():
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / f"{name}.png")
    img = np.asarray(Image.open(tmp_path / f"{name}.png").convert("L"))
    assert img.std() > 1, name
  # the grid draws the samples themselves, and the neighbour table one cell per
  # image: each sample, then its k=3 neighbours
  from gan_jax.writers import image_grid
  np.testing.assert_array_equal(figs["grid"].axes[0].images[0].get_array(),
                                image_grid(x)[..., 0])
  nn_axes = figs["nn"].axes
  assert len(nn_axes) == 2 * (1 + 3)
  real = run.real_images(50)
  np.testing.assert_allclose(nn_axes[1].images[0].get_array(),
                             np.clip((real[idx[0, 0]] + 1) / 2, 0, 1)[..., 0])
  # uint8 images (a dataset's own, as nearest_neighbors accepts them) are read
  # as 0-255: the same pictures as their [-1, 1] floats
  real_u8 = np.round((real + 1) * 127.5).astype(np.uint8)
  u8_axes = analysis.plot_neighbors(x[:2], real_u8, idx, dist).axes
  np.testing.assert_allclose(u8_axes[1].images[0].get_array(),
                             nn_axes[1].images[0].get_array(), atol=1 / 255)
  np.testing.assert_array_equal(
      analysis.plot_grid(real_u8[:4]).axes[0].images[0].get_array(),
      analysis.plot_grid(real_u8[:4].astype(np.float32) / 127.5 - 1).axes[0].images[0].get_array())


def test_plot_curves_names_infinite_values_it_cannot_draw():
  # a toy run's eval/reverse_kl is infinite while a mode gets no sample: the
  # line had a silent gap there
  import pandas as pd
  from gan_jax import analysis
  m = pd.DataFrame({"step": [1, 2, 3, 4], "eval/reverse_kl": [np.inf, 2.0, np.inf, 0.5],
                    "eval/modes": [3.0, 6.0, 7.0, 8.0]})
  axes = analysis.plot_curves(m, "eval").axes
  titles = {a.get_title().split("\n")[0]: a for a in axes}
  kl = titles["reverse_kl"]
  assert kl.get_title() == "reverse_kl\neval/reverse_kl infinite at 2 of 4 steps"
  np.testing.assert_array_equal(kl.lines[0].get_xdata(), [2, 4])  # the finite points
  assert titles["modes"].get_title() == "modes"


def test_plot_curves_shows_whatever_training_metrics_the_run_logged():
  import pandas as pd
  from gan_jax import analysis
  m = pd.DataFrame({"step": [1, 2], "d_loss": [1.0, 0.5], "g_loss": [2.0, 1.0],
                    "wasserstein": [0.3, 0.2], "r1": [4.0, 3.0], "steps_per_sec": [9.0, 9.0],
                    "eval/fid": [None, 50.0]})
  titles = [a.get_title() for a in analysis.plot_curves(m, "train").axes]
  assert titles == ["losses", "wasserstein", "r1"]  # no panel for D(x): a critic has none


def test_plot_runs_overlays_runs_per_metric():
  import pandas as pd
  from gan_jax import analysis
  a = pd.DataFrame({"step": [10, 20, 30, 40], "d_loss": [1.0, 0.5, 0.7, 0.6],
                    "eval/fid": [None, 90.0, None, 80.0]})
  b = pd.DataFrame({"step": [10, 20, 30, 40], "d_loss": [2.0, 1.0, 3.0, 1.0]})
  fig = analysis.plot_runs({"fp32": a, "bf16": b}, ["d_loss", "eval/fid", "g_loss"], smooth=3)
  assert [ax.get_title() for ax in fig.axes] == ["d_loss", "eval/fid"]  # no g_loss anywhere
  d_ax, fid_ax = fig.axes
  assert [l.get_label() for l in d_ax.get_lines()] == ["fp32", "bf16"]
  np.testing.assert_allclose(d_ax.get_lines()[1].get_ydata(), [1.5, 2.0, 5 / 3, 2.0])
  assert [l.get_label() for l in fid_ax.get_lines()] == ["fp32"]  # b has no eval/fid
  np.testing.assert_array_equal(fid_ax.get_lines()[0].get_xdata(), [20, 40])
  np.testing.assert_array_equal(fid_ax.get_lines()[0].get_ydata(), [90, 80])  # not smoothed
  with pytest.raises(ValueError, match="none of the runs"):
    analysis.plot_runs({"fp32": a}, ["g_loss"])


def test_ema_params_are_preferred_when_a_checkpoint_has_them(workdir, run, tmp_path):
  """No TrainState has EMA yet; a checkpoint whose state holds `ema_params`
  (written here by hand) is sampled with them instead of g_params."""
  from gan_jax import analysis, checkpoint
  from gan_jax.config import to_dict
  copy = tmp_path / "ema"
  shutil.copytree(workdir, copy)
  state = {"step": np.int32(8), "g_params": jax.tree.map(np.zeros_like, run.params),
           "g_stats": run.batch_stats, "ema_params": run.params}
  manager = checkpoint.make_manager(copy, 5)
  checkpoint.save(manager, 8, state, to_dict(run.config))
  manager.wait_until_finished()
  manager.close()
  ema = analysis.load_run(copy, 8)
  assert ema.uses_ema and ema.step == 8
  np.testing.assert_array_equal(ema.sample(4, seed=2), run.sample(4, seed=2))


def test_read_metrics_takes_a_workdir_or_its_file(tmp_path):
  from gan_jax import analysis
  rows = [{"step": 2, "d_loss": 0.5}, {"step": 1, "d_loss": 0.7}, {"step": 2, "eval/fid": 9.0}]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                          + '{"step": 3, "d_lo')  # torn last line
  for path in (tmp_path, tmp_path / "metrics.jsonl", str(tmp_path)):
    df = analysis.read_metrics(path)
    assert df["step"].tolist() == [1, 2]
    assert df["d_loss"].tolist() == [0.7, 0.5] and df["eval/fid"].iloc[1] == 9.0


def test_a_nan_score_is_never_best_and_the_newest_duplicate_row_wins(workdir, tmp_path):
  from gan_jax import analysis, checkpoint
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  best = analysis.resolve(str(copy), "best")
  path = copy / "checkpoints" / str(best) / "metrics" / "metrics"
  m = json.loads(path.read_text())
  m["eval/fid"] = float("nan")
  path.write_text(json.dumps(m))
  # the analysis and the checkpoint code agree, whatever the NaN's position
  assert analysis.resolve(str(copy), "best") == checkpoint.resolve_step(str(copy), "best") != best
  log = tmp_path / "m.jsonl"
  log.write_text('{"step": 100, "g_loss": 1.0}\n{"step": 100, "eval/fid": 50.0}\n'
                 '{"step": 100, "g_loss": 2.0}\n{"step": 100, "eval/fid": 40.0}\n')
  df = analysis.read_metrics(str(log))
  assert df["g_loss"].tolist() == [2.0] and df["eval/fid"].tolist() == [40.0]


def test_an_export_card_without_its_step_is_a_clear_error(run, tmp_path):
  from gan_jax import analysis
  analysis.export(run, tmp_path / "g")
  card = json.loads((tmp_path / "g" / "model_card.json").read_text())
  del card["step"]
  (tmp_path / "g" / "model_card.json").write_text(json.dumps(card))
  with pytest.raises(ValueError, match="model_card.json: missing 'step'"):
    analysis.load_run(tmp_path / "g")


@pytest.mark.parametrize("section, key, value, message", [
    ("model", "name", "resnet", "config.model.name='resnet' is unknown; valid: dcgan, mlp"),
    ("train", "compute_dtype", "float16",
     "config.train.compute_dtype='float16' is unknown; valid: bfloat16, float32"),
    ("model", "z_dim", "abc", "Could not override field 'z_dim'"),
])
def test_a_saved_config_that_cannot_build_the_generator_is_a_config_error(
    workdir, tmp_path, section, key, value, message):
  """A run saved by another version (a model this one lacks) or a hand-edited
  config: one ConfigError naming the file and the setting, not a KeyError."""
  from gan_jax import analysis
  from gan_jax.config import ConfigError
  copy = tmp_path / "run"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("tensorboard", "samples"))
  edit_saved_configs(copy, lambda c: c[section].__setitem__(key, value))
  with pytest.raises(ConfigError, match=re.escape(message)) as e:
    analysis.load_run(copy, 4)
  assert str(e.value).startswith(str(copy / "checkpoints" / "4" / "config" / "metadata"))
  assert "\n" not in str(e.value)


def test_a_seed_outside_32_bits_is_refused_not_wrapped_onto_another(run):
  """PRNGKey keeps 32 bits: seed 2**32 drew seed 0's latents and -1 those of
  2**32 - 1, so two different seeds gave the same samples."""
  from gan_jax.analysis import latents
  assert not np.array_equal(latents(2, 4, seed=0), latents(2, 4, seed=2**32 - 1))
  np.testing.assert_array_equal(latents(2, 4, seed=np.int64(7)), latents(2, 4, seed=7))
  for seed in (2**32, -1, 2**32 + 5):
    message = f"seed={seed} must be an integer in [0, 2**32)"
    with pytest.raises(ValueError, match=re.escape(message)):
      run.sample(2, seed=seed)
  with pytest.raises(ValueError, match="must be an integer"):
    latents(2, 4, seed=1.5)
