"""gan_jax/sampling.py: one latent convention for training's sample grids,
the evaluation, gan_jax.analysis and the scripts."""
import numpy as np
import pytest

from gan_jax import analysis, evaluate, sampling


def test_the_same_seed_gives_the_same_z_in_evaluation_and_analysis():
  z = sampling.latents(7, 10, 3)
  # the Evaluator's draws, in batches of 4 (the last one partial)
  got = evaluate.generate(lambda z: np.asarray(z), 10, 3, seed=7, batch_size=4)
  np.testing.assert_array_equal(got, z)
  np.testing.assert_array_equal(analysis.latents(10, 3, seed=7), z)
  np.testing.assert_array_equal(sampling.latents(7, 4, 3, start=6), z[6:])  # sample i: i alone
  assert not np.allclose(sampling.latents(8, 10, 3), z)


def test_training_draws_its_sample_grid_from_the_run_s_seed(tmp_path, monkeypatch):
  from gan_jax import train, writers
  from conftest import tiny_config
  seen = []
  monkeypatch.setattr(writers.Writer, "samples", lambda self, step, x: seen.append(step))
  config = tiny_config(**{"model.name": "mlp", "seed": 5, "train.num_steps": 1,
                          "train.sample_every": 1, "checkpoint.every": 1})
  loop_z = []
  build = train._Loop.build

  def spy(*args, **kwargs):
    loop = build(*args, **kwargs)
    loop_z.append((loop.fixed_z, loop.fixed_y))
    return loop
  monkeypatch.setattr(train._Loop, "build", spy)
  train.train_and_evaluate(config, str(tmp_path / "run"))
  z, y = loop_z[0]
  np.testing.assert_array_equal(z, sampling.latents(5, train.NUM_SAMPLES, config.model.z_dim))
  np.testing.assert_array_equal(y, np.arange(train.NUM_SAMPLES) % 10)  # the digits' classes
  assert seen == [0, 1]


def test_grid_labels_take_the_classes_in_turn():
  np.testing.assert_array_equal(sampling.grid_labels(5, 3, start=1), [1, 2, 0, 1, 2])
  assert sampling.grid_labels(5, None) is None
  assert sampling.num_classes(np.array([0, 4, 2])) == 5 and sampling.num_classes(None) is None


def test_seeds_outside_32_bits_are_refused():
  with pytest.raises(ValueError, match=r"seed=4294967296 must be an integer in \[0, 2\*\*32\)"):
    sampling.latents(2**32, 1, 2)
