"""Checkpoints: whole-state round trip, retention, corruption fallback, a save
killed half-way, and no pickle anywhere."""
import functools
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gan_jax import checkpoint, models, steps
from gan_jax.state import Net, TrainState, create_state, make_optimizers
from conftest import REPO, tiny_config

# After a failed read, Orbax's reader threads may report to an already closed event loop.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@functools.lru_cache
def _shapes():
  c = tiny_config()
  G, D = models.build(c)
  g_tx, d_tx = make_optimizers(c)
  return jax.eval_shape(lambda: create_state(c, G, D, g_tx, d_tx))  # traces, compiles nothing


def _state(shift=0.0, step=0):
  """A replicated TrainState of the tiny DCGAN's structure (optax types, G's
  BatchNorm stats) whose values depend on `shift` and `step`, so restored values
  cannot come from the template."""
  leaves, treedef = jax.tree.flatten(_shapes())
  values = []
  for i, x in enumerate(leaves):
    if jnp.issubdtype(x.dtype, jnp.floating):
      v = np.arange(x.size, dtype=np.float32).reshape(x.shape) * 1e-3 + shift + i
    else:
      v = np.full(x.shape, step, x.dtype)
    values.append(v)
  return steps.replicate(jax.tree.unflatten(treedef, values), steps.make_mesh())


def _assert_same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert x.dtype == y.dtype and x.shape == y.shape
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _save(workdir, states, keep=3):
  m = checkpoint.make_manager(str(workdir), keep)
  for s in states:
    checkpoint.save(m, int(s.step), s, {"seed": int(s.step)})
  m.wait_until_finished()
  m.close()


def _restore(workdir, template):
  m = checkpoint.make_manager(str(workdir), 3)
  try:
    return checkpoint.restore_latest(m, template), sorted(m.all_steps())
  finally:
    m.close()


def test_round_trip_restores_the_whole_state_with_optax_types(tmp_path):
  saved = _state(shift=1.5, step=7)
  _save(tmp_path, [saved])
  template = _state()  # same structure, different values (shift 0, step 0)
  (step, state, cfg), _ = _restore(tmp_path, template)
  assert step == 7 and cfg == {"seed": 7}
  _assert_same(state, saved)  # params, BN stats, both Adam states, step, rng
  assert int(state.step) == 7 and state.g.collections  # G's BatchNorm statistics
  for opt in (state.d.opt_state, state.g.opt_state):
    assert type(opt).__name__ == "InjectStatefulHyperparamsState", type(opt)
    assert isinstance(opt.inner_state[0], optax.ScaleByAdamState), type(opt.inner_state[0])
    adam = opt.inner_state[0]
    assert float(jnp.abs(jax.tree.leaves(adam.mu)[0]).min()) > 0  # not the zero template
    assert float(opt.hyperparams["learning_rate"]) > 0  # the hyperparameters came back
  for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(template)):
    assert x.sharding.is_equivalent_to(y.sharding, x.ndim)


def test_keeps_the_last_n_and_writes_no_pickle(tmp_path):
  _save(tmp_path, [_state(step=s) for s in range(1, 6)], keep=2)
  assert checkpoint.existing_steps(str(tmp_path)) == [4, 5]
  files = [p for p in glob.glob(str(tmp_path / "**" / "*"), recursive=True) if os.path.isfile(p)]
  assert files
  for p in files:
    assert not p.endswith((".pkl", ".pickle", ".npy", ".npz")), p
    with open(p, "rb") as f:
      head = f.read(2)
    assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), p


def test_package_uses_no_pickle():
  pattern = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|cloudpickle|dill|joblib)\b|"
                       r"allow_pickle\s*=\s*True|torch\.load\(|pickle\.loads?\(", re.M)
  hits = [f"{p}: {m.group(0).strip()}"
          for p in glob.glob(str(REPO / "gan_jax" / "**" / "*.py"), recursive=True)
          for m in pattern.finditer(open(p).read())]
  assert not hits, hits


def _trunc_data(d):
  for p in glob.glob(f"{d}/state/**/d/*", recursive=True):
    with open(p, "r+b") as f:
      f.truncate(os.path.getsize(p) // 2)


CORRUPTIONS = {
    "truncated array data": _trunc_data,
    "deleted array data": lambda d: [os.remove(p) for p in
                                     glob.glob(f"{d}/state/**/d/*", recursive=True)],
    "deleted tree metadata": lambda d: os.remove(f"{d}/state/_METADATA"),
    "truncated config json": lambda d: open(f"{d}/config/metadata", "r+b").truncate(9),
    "emptied step folder": lambda d: [shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
                                      for p in glob.glob(f"{d}/*")],
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_latest_is_reported_moved_aside_and_the_previous_restored(
    tmp_path, capsys, corruption):
  s1, s2 = _state(shift=1.0, step=1), _state(shift=2.0, step=2)
  _save(tmp_path, [s1, s2])
  CORRUPTIONS[corruption](str(tmp_path / "checkpoints" / "2"))
  (step, state, _), left = _restore(tmp_path, _state())
  assert step == 1 and left == [1]
  _assert_same(state, s1)
  out = capsys.readouterr().out
  assert re.search(r"warning: checkpoint at step 2 is unreadable \(.+\); moved it to .*"
                   r"checkpoints_corrupt/2 and restored step 1 instead", out), out
  assert os.path.isdir(tmp_path / "checkpoints_corrupt" / "2")
  # training goes on and saves step 2 again, where the corrupt one was
  _save(tmp_path, [s2])
  (step, state, _), _ = _restore(tmp_path, _state())
  assert step == 2
  _assert_same(state, s2)


def test_a_checkpoint_holding_another_steps_state_is_not_restored(tmp_path, capsys):
  # e.g. a folder copied or renamed by hand: step 4's folder holding step 2's
  # state would replay steps 3-4 and log them twice, so it is set aside
  s1, s2 = _state(shift=1.0, step=1), _state(shift=2.0, step=2)
  m = checkpoint.make_manager(str(tmp_path), 3)
  checkpoint.save(m, 1, s1, {})
  checkpoint.save(m, 4, s2, {})
  m.wait_until_finished()
  m.close()
  (step, state, _), left = _restore(tmp_path, _state())
  assert step == 1 and left == [1]
  _assert_same(state, s1)
  out = capsys.readouterr().out
  assert "checkpoint at step 4 is unreadable (ValueError: it holds the state of step 2)" in out, out


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
  _save(tmp_path, [_state(step=3)])
  _trunc_data(str(tmp_path / "checkpoints" / "3"))
  with pytest.raises(checkpoint.CheckpointError, match="none of the checkpoints"):
    _restore(tmp_path, _state())
  assert checkpoint.existing_steps(str(tmp_path)) == [3]  # left for the user to inspect


def test_leftover_temporary_folder_is_ignored_and_cleaned_up(tmp_path):
  s2 = _state(shift=2.0, step=2)
  _save(tmp_path, [_state(step=1), s2])
  tmp = tmp_path / "checkpoints" / "3.orbax-checkpoint-tmp-1700000000000000"
  shutil.copytree(tmp_path / "checkpoints" / "2", tmp)
  _trunc_data(str(tmp))
  (step, state, _), left = _restore(tmp_path, _state())
  assert step == 2 and left == [1, 2]
  _assert_same(state, s2)
  assert not tmp.exists()


KILL_MID_SAVE = r"""
import glob, os, signal, sys, time
import jax, jax.numpy as jnp
from gan_jax import checkpoint
from gan_jax.state import Net, TrainState
wd = sys.argv[1]
def state(step, n):
  big = {"w": jnp.full((n,), float(step), jnp.float32) if n < 10**6 else
         jax.random.uniform(jax.random.PRNGKey(0), (n,))}
  return TrainState(step=jnp.asarray(step, jnp.int32), rng=jnp.zeros((2,), jnp.uint32),
                    g=Net(big, {}, {}), d=Net({}, {}, {}))
m = checkpoint.make_manager(wd, 3)
checkpoint.save(m, 1, state(1, 1000), {"step": 1})
m.wait_until_finished()
checkpoint.save(m, 2, state(2, 50_000_000), {"step": 2})  # 200 MB of noise: slow to write
t0 = time.time()
while not glob.glob(os.path.join(wd, "checkpoints", "2.orbax-checkpoint-tmp*")):
  if os.path.isdir(os.path.join(wd, "checkpoints", "2")) or time.time() - t0 > 60:
    sys.exit(3)  # finished (or never started) before it could be killed
  time.sleep(0.001)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_process_killed_while_saving_keeps_the_previous_checkpoint(tmp_path):
  env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO)}
  out = subprocess.run([sys.executable, "-c", KILL_MID_SAVE, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == -9, (out.returncode, out.stderr[-2000:])
  assert glob.glob(str(tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp*"))  # torn save
  template = TrainState(step=jnp.zeros((), jnp.int32), rng=jnp.ones((2,), jnp.uint32),
                        g=Net({"w": jnp.zeros((1000,))}, {}, {}), d=Net({}, {}, {}))
  (step, state, cfg), left = _restore(tmp_path, template)
  assert step == 1 and cfg == {"step": 1} and left == [1]
  assert float(state.g.params["w"][0]) == 1.0
  assert not glob.glob(str(tmp_path / "checkpoints" / "*tmp*"))  # cleaned up on reopen


def _save_scored(manager, workdir, scores, metric="eval/fid"):
  state = {"w": jnp.ones(3)}
  for step, value in scores:
    checkpoint.save(manager, step, state, {}, None if value is None else {metric: value})
    manager.wait_until_finished()
  return checkpoint.existing_steps(str(workdir))


def test_best_checkpoint_survives_a_resume_without_evaluation_and_a_nan_score(tmp_path):
  m = checkpoint.make_manager(str(tmp_path), 1, best_metric="eval/fid", best_mode="min")
  # a NaN score ranks last: it neither displaces the best nor is kept as best
  assert _save_scored(m, tmp_path, [(1, 0.3), (2, float("nan")), (3, 0.9)]) == [1, 3]
  m.close()
  assert checkpoint.resolve_step(str(tmp_path), "best") == 1
  # resumed with eval.every=0: saves carry no metrics, and step 1 is still kept
  m = checkpoint.make_manager(str(tmp_path), 1, best_metric="eval/fid", best_mode="min")
  assert _save_scored(m, tmp_path, [(4, None), (5, None)]) == [1, 5]
  m.close()
  assert checkpoint.resolve_step(str(tmp_path), "best") == 1


def test_best_checkpoint_of_a_higher_is_better_metric_is_kept(tmp_path):
  # best_mode='max' (eval/is, eval/modes): the highest score survives keep=1, a
  # lower later one does not displace it, and a NaN ranks last here too
  m = checkpoint.make_manager(str(tmp_path), 1, best_metric="eval/is", best_mode="max")
  scores = [(1, 2.0), (2, 9.0), (3, float("nan")), (4, 5.0)]
  assert _save_scored(m, tmp_path, scores, "eval/is") == [2, 4]
  m.close()
  assert checkpoint.resolve_step(str(tmp_path), "best", "eval/is", "max") == 2
  # resumed with evaluation off: step 2 is still kept
  m = checkpoint.make_manager(str(tmp_path), 1, best_metric="eval/is", best_mode="max")
  assert _save_scored(m, tmp_path, [(5, None)], "eval/is") == [2, 5]
  m.close()
  assert checkpoint.resolve_step(str(tmp_path), "best", "eval/is", "max") == 2


def test_best_step_picks_by_mode_and_breaks_ties_the_same_way_everywhere():
  # analysis.resolve and checkpoint.resolve_step both choose through this
  scored = {1000: 90.0, 2000: 85.0, 3000: 85.0, 4000: 120.0}
  assert checkpoint.best_step(scored, "min") == 2000  # tie: the earlier step
  assert checkpoint.best_step(scored, "max") == 4000
  assert checkpoint.best_step({1000: 0.5, 2000: 0.7, 3000: 0.7}, "max") == 3000  # the later


@pytest.mark.parametrize("torn", [2, 1])  # the newest step's metrics, or an older one's
def test_torn_step_metrics_are_set_aside_and_the_run_resumes(tmp_path, capsys, torn):
  """Orbax reads every step's metrics JSON when a manager opens the folder; a
  torn one used to stop every resume with a JSONDecodeError traceback."""
  m = checkpoint.make_manager(str(tmp_path), 3, best_metric="eval/fid")
  for step in (1, 2):
    checkpoint.save(m, step, _state(shift=float(step), step=step), {"seed": step},
                    {"eval/fid": 10.0 - step})
  m.wait_until_finished()
  m.close()
  path = tmp_path / "checkpoints" / str(torn) / "metrics" / "metrics"
  assert json.loads(path.read_text()) == {"eval/fid": 10.0 - torn}
  path.write_text('{"eval/f')
  # read-only: one step restores without opening the others' metrics, and
  # nothing in the folder changes
  state, cfg = checkpoint.restore_step(str(tmp_path), 2, _state())
  _assert_same(state, _state(shift=2.0, step=2))
  assert cfg == {"seed": 2} and path.read_text() == '{"eval/f'
  (step, state, _), steps_left = _restore(tmp_path, _state())
  assert step == 2 and steps_left == [1, 2]
  _assert_same(state, _state(shift=2.0, step=2))
  assert not path.exists() and (path.parent / "metrics.corrupt").read_text() == '{"eval/f'
  out = capsys.readouterr().out
  assert (f"warning: the eval metrics saved with checkpoint {torn} are unreadable "
          "(JSONDecodeError)") in out, out
  assert checkpoint.step_metrics(str(tmp_path), torn) is None


def test_the_os_error_behind_a_failed_save_is_found_also_in_tensorstore_errors():
  # A full disk under TensorStore surfaces as this ValueError (abridged from a
  # real one on a full tmpfs); tests/test_resume.py covers the whole run.
  ts = ValueError(
      'RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/24.orbax-checkpoint-tmp/'
      'state.orbax-checkpoint-tmp/_sharding": Failed writing: "/w/checkpoints/24.orbax-'
      'checkpoint-tmp/state.orbax-checkpoint-tmp/_sharding.__lock": Failed to write 7467 bytes '
      "to file 14: No space left on device [os_error_code='28'] [tensorstore_spec='{}']")
  err = checkpoint._os_error(ts)
  assert (err.errno, err.strerror) == (28, "No space left on device")
  assert err.filename == ("/w/checkpoints/24.orbax-checkpoint-tmp/"
                          "state.orbax-checkpoint-tmp/_sharding")
  try:
    raise RuntimeError("wrapped") from OSError(28, "No space left on device")
  except RuntimeError as e:
    assert checkpoint._os_error(e).errno == 28
  assert checkpoint._os_error(TypeError("a bug")) is None  # raised as it is, not as SaveError


def _save_layout_1(workdir, config, state):
  """A checkpoint as gan_jax wrote it before checkpoints carried a layout
  (state.LAYOUT_VERSION 1): TrainState(step, rng, g_params, g_stats, d_params,
  d_stats, g_opt, d_opt) with plain Adam, items 'state' and 'config' only."""
  import orbax.checkpoint as ocp
  from gan_jax.config import saved_dict
  adam = optax.adam(config.train.g_lr, b1=config.train.b1, b2=config.train.b2)
  old = {"step": state.step, "rng": state.rng, "g_params": state.g.params,
         "g_stats": state.g.collections.get("batch_stats", {}), "d_params": state.d.params,
         "d_stats": state.d.collections.get("batch_stats", {}),
         "g_opt": adam.init(state.g.params), "d_opt": adam.init(state.d.params)}
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
  with ocp.CheckpointManager(checkpoint.checkpoint_dir(str(workdir)), options=options,
                             item_names=("state", "config")) as m:
    m.save(int(state.step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(old), config=ocp.args.JsonSave(saved_dict(config))),
        force=True)


def test_a_checkpoint_of_the_previous_layout_is_refused_in_one_line(tmp_path):
  from gan_jax import analysis, train
  config = tiny_config(**{"model.name": "mlp", "model.g_norm": "batchnorm"})
  G, D = models.build(config)
  state = create_state(config, G, D, *make_optimizers(config))
  state = state.replace(step=jnp.asarray(4, jnp.int32))
  _save_layout_1(tmp_path, config, state)
  assert checkpoint.layout_version(str(tmp_path / "checkpoints" / "4")) == 1
  with pytest.raises(checkpoint.CheckpointError) as e:
    train.train_and_evaluate(config, str(tmp_path))
  msg = str(e.value)
  assert "\n" not in msg and "layout 1" in msg and "layout 2 only" in msg
  assert "new --workdir" in msg and "with the gan_jax that wrote it" in msg
  assert checkpoint.existing_steps(str(tmp_path)) == [4]  # refused, not set aside as corrupt
  # its generator still loads for analysis, with G's BatchNorm statistics
  run = analysis.load_run(str(tmp_path), 4)
  _assert_same(run.params, state.g.params)
  _assert_same(run.batch_stats, state.g.collections["batch_stats"])


def test_new_checkpoints_carry_the_layout_version(tmp_path):
  from gan_jax.state import LAYOUT_VERSION
  _save(tmp_path, [_state(step=3)])
  assert checkpoint.layout_version(str(tmp_path / "checkpoints" / "3")) == LAYOUT_VERSION == 2
