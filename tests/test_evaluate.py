"""Evaluation in training (eval rows, best checkpoint) and scripts/evaluate.py."""
import concurrent.futures
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import checkpoint, data, metrics
from gan_jax.config import from_dict
from gan_jax.evaluate import IMAGE_KEYS, Evaluator, eval_keys, generate, real_images, real_vs_real
from gan_jax.train import train_and_evaluate
from conftest import REPO, edit_saved_configs, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  wd = tmp_path_factory.mktemp("eval_run")
  c = tiny_config(**{"train.num_steps": 8, "checkpoint.every": 8, "checkpoint.keep": 1,
                     "eval.every": 4, "eval.num_samples": 200})
  train_and_evaluate(c, str(wd))
  return wd


def test_eval_rows_and_best_checkpoint(run):
  rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  evals = {r["step"]: r for r in rows if "eval/fid" in r}
  assert sorted(evals) == [4, 8]
  for r in evals.values():
    assert r["eval/fid"] > 0 and 0 <= r["eval/precision"] <= 1 and 0 <= r["eval/coverage"] <= 1
    assert r["eval/is"] >= 1
  best = min(evals, key=lambda s: evals[s]["eval/fid"])
  # keep=1 keeps the latest; the best by eval/fid is kept as well
  assert best in checkpoint.existing_steps(str(run)) and 8 in checkpoint.existing_steps(str(run))
  assert checkpoint.resolve_step(str(run), "best") == best
  assert checkpoint.step_metrics(str(run), best)["eval/fid"] == pytest.approx(evals[best]["eval/fid"])


def _evaluate(wd, *flags):
  env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO)}
  return subprocess.run([sys.executable, "scripts/evaluate.py", f"--workdir={wd}", *flags],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_evaluate_script_with_floor_and_untrained_baseline(run, tmp_path):
  # an export's card holds the config, so its untrained baseline is the run's (checked last)
  from gan_jax import analysis
  export = tmp_path / "export"
  analysis.export(analysis.load_run(str(run), "latest"), str(export))
  # the three evaluations are independent (each writes its own eval/step_*.json):
  # two processes at a time, each spending seconds importing on one core
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    out, init, init_export = pool.map(lambda a: _evaluate(*a), [
        (run, "--step=latest", "--num_samples=200", "--real_vs_real"),
        (run, "--step=init", "--num_samples=200"), (export, "--step=init", "--num_samples=200")])
  assert out.returncode == 0, out.stderr[-2000:]
  res = json.loads((run / "eval" / "step_8.json").read_text())
  assert res["num_samples"] == 200 and res["num_real"] == 200
  assert res["real_vs_real_sizes"] == [200, 200]  # the floor at the evaluation's own sizes
  assert "note:" not in out.stdout
  assert set(res["metrics"]) >= {"eval/fid", "eval/kid", "eval/precision", "eval/recall"}
  assert res["real_vs_real"]["eval/fid"] < res["metrics"]["eval/fid"]
  assert "real vs real" in out.stdout
  # at the step and size training evaluated, the script reproduces training's eval row
  # (same generator, latents and real set), so the two paths stay wired alike
  rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  row = next(r for r in rows if r["step"] == 8 and "eval/fid" in r)
  keys = eval_keys(from_dict(json.loads((run / "config.json").read_text())))
  assert set(res["metrics"]) == set(keys) > set(IMAGE_KEYS)  # the LeNet adds class spread
  for k in keys:
    assert res["metrics"][k] == pytest.approx(row[k], rel=1e-4, abs=1e-6), k
  assert init.returncode == 0, init.stderr[-2000:]
  res0 = json.loads((run / "eval" / "step_init.json").read_text())
  assert res0["metrics"]["eval/fid"] > res["metrics"]["eval/fid"]
  # the export's untrained baseline is the run's
  assert init_export.returncode == 0, init_export.stderr[-2000:]
  assert json.loads((export / "eval" / "step_init.json").read_text())["metrics"] == res0["metrics"]


def test_evaluate_script_refuses_a_floor_the_data_cannot_hold_before_evaluating(run, tmp_path):
  # with 6-11 images the evaluation itself can run, the real-vs-real floor
  # cannot: the refusal came only after the whole evaluation
  import shutil
  copy = tmp_path / "run"
  shutil.copytree(run, copy, ignore=shutil.ignore_patterns("tensorboard", "samples", "eval"))
  edit_saved_configs(copy, lambda c: c["data"].__setitem__("max_examples", 8))
  script = ("import runpy, sys\n"
            "import gan_jax.evaluate\n"
            "def evaluator(*args, **kwargs):\n"
            "  raise RuntimeError('the evaluation ran')\n"
            "gan_jax.evaluate.Evaluator = evaluator\n"
            f"sys.argv = ['evaluate.py', '--workdir={copy}', '--step=latest', '--real_vs_real']\n"
            "runpy.run_path('scripts/evaluate.py', run_name='__main__')\n")
  env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 1 and out.stderr == (
      "error: ValueError: the data holds 8 images; a real-vs-real floor needs at least 12 "
      "(two disjoint sets of 6)\n"), out.stderr[-2000:]
  assert not (copy / "eval").exists()


@pytest.fixture(scope="module")
def digits_eval():
  """An image Evaluator on the digits, 200 real and 200 generated, no run needed."""
  c = tiny_config(**{"eval.every": 4, "eval.num_samples": 200})
  images = data.load(c.data).images
  return c, images, Evaluator(c, images)


def test_evaluator_on_real_images_is_the_real_vs_real_floor(digits_eval):
  # real_vs_real's second set, given as G's samples, makes the evaluation the floor:
  # every metric equal, and eval/is the IS of those images' logits, not the real set's
  c, images, ev = digits_eval
  x = real_images(images, 400, seed=c.eval.seed)
  np.testing.assert_array_equal(ev.extract(x[:200])[0], ev.real_feats)  # the eval's real set
  out = ev(lambda z: x[200:400], 8)
  floor, sizes = real_vs_real(c, images)
  assert sizes == (200, 200) and set(out) == set(floor) == set(eval_keys(c))
  for k in eval_keys(c):
    assert out[k] == pytest.approx(floor[k], rel=1e-6, abs=1e-9), k
  is_fake = metrics.inception_score(ev.extract(x[200:400])[1])
  is_real = metrics.inception_score(ev.real_logits)
  assert (out["eval/is"], out["eval/is_std"]) == pytest.approx(is_fake, rel=1e-6)
  assert abs(is_fake[0] - is_real[0]) > 1e-3  # the check above tells the two sets apart
  assert 0 < out["eval/fid"] < 0.5 * ev(lambda z: jnp.zeros((len(z), 8, 8, 1)), 8)["eval/fid"]


def test_evaluator_uses_the_same_latents_at_every_step(digits_eval):
  # generated samples come from eval.seed alone, so one G evaluated at two steps
  # gives identical numbers (the module's promise: no sampling noise in z between steps)
  c, _, ev = digits_eval
  w = jax.random.normal(jax.random.PRNGKey(1), (c.model.z_dim, 64))
  sample_fn = lambda z: jnp.tanh(z @ w).reshape(-1, 8, 8, 1)  # G(z) that depends on z
  a, b = ev(sample_fn, 4), ev(sample_fn, 8)
  assert a == b
  # not vacuous: other latents give other samples and other metrics
  for seed, same in ((c.eval.seed, True), (c.eval.seed + 4, False)):
    feats = ev.extract(generate(sample_fn, 200, c.model.z_dim, seed))[0]
    fid = metrics.compute("fid", ev.real_feats, feats)["fid"]
    assert (fid == pytest.approx(a["eval/fid"], rel=1e-6)) == same, seed


def test_evaluator_scores_samples_clipped_like_the_written_images(digits_eval):
  """A linear-output G can leave [-1, 1]; the metrics describe the images a
  run writes (clipped), not the raw values."""
  c, _, ev = digits_eval
  w = jax.random.normal(jax.random.PRNGKey(2), (c.model.z_dim, 64))
  wide = lambda z: (2.0 * jnp.tanh(z @ w) + 0.3).reshape(-1, 8, 8, 1)
  raw = generate(wide, 200, c.model.z_dim, c.eval.seed)
  assert np.mean(np.abs(raw) > 1) > 0.3  # not vacuous
  assert ev(wide, 4) == ev(lambda z: jnp.clip(wide(z), -1, 1), 4)


def test_an_extractor_without_logits_logs_everything_but_the_inception_score(monkeypatch):
  # inception_v3 gives features and no logits: the evaluation and its floor
  # leave eval/is out rather than fail
  import gan_jax.evaluate as evaluate
  flat = lambda x: (np.asarray(x, np.float32).reshape(len(x), -1), None)
  monkeypatch.setattr(evaluate, "get_extractor", lambda name: flat)
  c = tiny_config(**{"eval.num_samples": 20, "eval.extractor": "inception_v3"})
  images = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 1), dtype=np.uint8)
  out = Evaluator(c, images)(lambda z: jnp.tanh(jnp.tile(z, (1, 4))).reshape(-1, 8, 8, 1), 2)
  floor, _ = real_vs_real(c, images)
  assert set(out) == set(floor) == set(evaluate.eval_keys(c))
  assert "eval/is" not in out and "eval/fid" in out


@pytest.mark.parametrize("overrides,n,message", [
    ({"eval.num_samples": 3}, 100, "config.eval.num_samples=3 is too small for the image "
                                   "metrics; use at least 6"),
    ({"eval.num_real": 5}, 100, "config.eval.num_real=5 is too small"),
    ({}, 5, "the data holds 5 images, too few real images for the image metrics; use at "
            "least 6 (density/coverage needs k=5 neighbours): add images or raise "
            "config.data.max_examples"),
])
def test_evaluator_refuses_sets_too_small_for_the_metrics_naming_the_setting(overrides, n,
                                                                             message):
  # config.validate checks these only when eval.every > 0; scripts/evaluate.py
  # evaluates any run, and failed after generating with "need 1 <= k < N"
  c = tiny_config(**overrides)
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    Evaluator(c, np.zeros((n, 8, 8, 1), np.uint8))


def test_evaluate_script_bad_step(run):
  out = _evaluate(run, "--step=12345")
  assert out.returncode != 0
  assert "no checkpoint at step 12345" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("num_samples,num_real,data,expected", [
    (1000, 0, 10_000, (1000, 1000, 1000, 1000)),   # room for both sets: the eval's sizes
    (500, 5000, 10_000, (5000, 500, 5000, 500)),   # unequal sets keep their sizes
    (1000, 0, 819, (819, 1000, 368, 451)),         # 819 Pokemon: shrink in proportion
    (500, 5000, 819, (819, 500, 508, 311)),
    (1000, 0, 60, (60, 1000, 6, 54)),              # each set keeps the metrics' minimum
    (1000, 0, 12, (12, 1000, 6, 6)),
])
def test_real_vs_real_floor_uses_the_evaluation_sizes(num_samples, num_real, data, expected):
  from gan_jax.evaluate import floor_sizes
  c = tiny_config(**{"eval.num_samples": num_samples, "eval.num_real": num_real})
  n_real, n_fake, a, b = floor_sizes(c, data)
  assert (n_real, n_fake, a, b) == expected
  assert a + b <= data


def test_real_vs_real_floor_refuses_data_too_small_for_two_sets():
  from gan_jax.evaluate import floor_sizes
  with pytest.raises(ValueError, match="the data holds 11 images; a real-vs-real floor needs "
                                       "at least 12"):
    floor_sizes(tiny_config(), 11)
