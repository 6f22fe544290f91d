"""Real `python -m gan_jax.main` processes, interrupted and resumed: the
result must equal an uninterrupted run bit for bit. Also config drift and the
non-finite guard. To keep this cheap the subprocesses share a persistent JAX
compilation cache and read a small IDX file (no scikit-learn import)."""
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from conftest import REPO

N = 64  # steps of the reference run
FLAGS = ["--config=experiments/digits.py", "--config.data.source=idx", "--config.model.z_dim=16",
         "--config.model.g_features=8", "--config.model.d_features=8",
         "--config.model.g_hidden=(32,)", "--config.model.d_hidden=(32,)",
         "--config.train.batch_size=16", f"--config.train.num_steps={N}",
         "--config.train.steps_per_call=2", "--config.train.log_every=1",
         "--config.train.sample_every=4", "--config.checkpoint.every=8"]
TIMING = ("steps_per_sec", "images_per_sec")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """Subprocess environment; also writes the 8x8 IDX images the runs read."""
  folder = tmp_path_factory.mktemp("idx")
  rng = np.random.default_rng(0)
  images = (np.cumsum(rng.integers(0, 64, (256, 8, 8)), axis=1) % 256).astype(np.uint8)
  with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as f:
    f.write(bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
            + images.tobytes())
  # tests/test_bad_input.py compiles the same program into the same cache
  return {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "PYTHONPATH": str(REPO),
          "TEST_IDX_DIR": str(folder),
          "JAX_COMPILATION_CACHE_DIR": os.path.join(tempfile.gettempdir(),
                                                    "gan_jax_tests_jax_cache"),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _cmd(env, workdir, *extra):
  return [sys.executable, "-m", "gan_jax.main", f"--workdir={workdir}", *FLAGS,
          f"--config.data.path={env['TEST_IDX_DIR']}", *extra]


def run(env, workdir, *extra):
  return subprocess.run(_cmd(env, workdir, *extra), cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=600)


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def last_step(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl"), "rb") as f:
      done = f.read().split(b"\n")[:-1]
    return json.loads(done[-1])["step"] if done else 0
  except (OSError, ValueError):
    return 0


# The interrupted runs ask for this many steps, so none can end before its signal
# lands, however late the poll below acts; the run is then finished with the
# reference's command. Their rows and checkpoints up to N are the reference's:
# num_steps may change on resume, and without a learning-rate schedule nothing
# computed depends on it.
ENDLESS = f"--config.train.num_steps={10**9}"


def interrupt(env, workdir, sig, after_step):
  """Starts an endless run, sends `sig` once metrics.jsonl reaches `after_step`.
  The signal can land any number of steps later (the poll, a busy CPU): callers
  check what the run did, not when it stopped."""
  # rows already there would satisfy the poll before the run installs its handlers
  assert after_step > last_step(workdir)
  p = subprocess.Popen(_cmd(env, workdir, ENDLESS), cwd=REPO, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
  try:
    t0 = time.time()
    while last_step(workdir) < after_step and p.poll() is None and time.time() - t0 < 300:
      time.sleep(0.01)
    if p.poll() is not None or last_step(workdir) < after_step:
      p.kill()
      _, err = p.communicate()
      pytest.fail(f"the run ended (rc {p.returncode}) or stalled before step {after_step}: "
                  f"{err[-2000:]}")
    p.send_signal(sig)
    out, err = p.communicate(timeout=300)
    return p.returncode, out, err
  finally:
    if p.poll() is None:  # never leave an endless run behind
      p.kill()
      p.wait()


def stopped(name, rc, out, err, workdir, after_step):
  """Checks that the run took signal `name` as a request to stop: it finished
  its call, saved, printed one line saying where (its last) and exited 0; the
  log holds every step up to there once. Returns that step."""
  assert rc == 0 and "Traceback" not in err, err[-3000:]
  lines = [l for l in out.splitlines() if name in l]
  assert len(lines) == 1 and out.count(name) == 1 and out.splitlines()[-1] == lines[0], out
  m = re.fullmatch(rf"{name}: stopped at step (\d+); checkpoint saved to (\S+)", lines[0])
  assert m, lines[0]
  step, path = int(m.group(1)), workdir / "checkpoints" / m.group(1)
  assert m.group(2) == str(path) and path.is_dir()
  # signalled after row `after_step`; calls are aligned to steps_per_call=2
  assert step >= after_step and step % 2 == 0
  assert [r["step"] for r in rows(workdir)] == list(range(1, step + 1))
  return step


@pytest.fixture(scope="module")
def reference(env, tmp_path_factory):
  wd = tmp_path_factory.mktemp("reference") / "run"
  out = run(env, wd)
  assert out.returncode == 0, out.stderr[-3000:]
  return wd, rows(wd)


def test_interrupted_three_ways_then_resumed_equals_an_uninterrupted_run(
    env, reference, tmp_path):
  _, want = reference
  assert [r["step"] for r in want] == list(range(1, N + 1))
  wd = tmp_path / "run"
  ckpt = wd / "checkpoints"
  every = 8  # --config.checkpoint.every

  # 1. SIGTERM: finish the call, save, one line saying where, exit 0
  rc, out, err = interrupt(env, wd, signal.SIGTERM, after_step=10)
  s1 = stopped("SIGTERM", rc, out, err, wd, after_step=10)

  # 2. SIGKILL past a checkpoint this run saved, leaving a torn last line. Saves
  # are asynchronous: the one at `first` is known complete only once the next
  # one has begun (Orbax waits for the previous save first), so from the row
  # after that on. A later save may be caught mid-write.
  first = (s1 // every + 1) * every
  rc, out, err = interrupt(env, wd, signal.SIGKILL, after_step=first + every + 1)
  assert rc == -signal.SIGKILL and f"resumed from checkpoint at step {s1}" in out
  killed_at = last_step(wd)
  assert killed_at >= first + every + 1
  with open(wd / "metrics.jsonl", "a") as f:
    f.write('{"step": %d, "d_loss": 0.69' % (killed_at + 1))

  # 3. SIGINT (Ctrl-C) behaves like SIGTERM
  rc, out, err = interrupt(env, wd, signal.SIGINT, after_step=killed_at + 6)
  s3 = stopped("SIGINT", rc, out, err, wd, after_step=killed_at + 6)  # the torn line went
  resumed = int(re.search(r"resumed from checkpoint at step (\d+)", out).group(1))
  # the newest save that had finished: one the killed run began (each after its
  # step's row), and none older than the newest known complete
  begun = range(first, killed_at + 1, every)
  assert resumed in begun and resumed >= max(c for c in begun if c + every + 1 <= killed_at)
  # a save cut short stays a tmp folder: no finished one was unreadable and set aside
  assert "warning" not in out and not (wd / "checkpoints_corrupt").exists(), out
  kept = os.listdir(ckpt)
  assert all(n.isdigit() for n in kept) and max(map(int, kept)) == s3, kept  # no tmp folder

  # 4. the reference's command finishes the run. Only if the signals landed so
  # late that s3 >= N does it ask for more steps, against a longer reference.
  n = N if s3 < N else (s3 // every + 2) * every
  if n != N:
    longer = run(env, tmp_path / "longer", f"--config.train.num_steps={n}")
    assert longer.returncode == 0, longer.stderr[-3000:]
    want = rows(tmp_path / "longer")
  out = run(env, wd, f"--config.train.num_steps={n}")
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"resumed from checkpoint at step {s3}" in out.stdout
  got = rows(wd)
  assert [r["step"] for r in got] == list(range(1, n + 1))  # none missing or repeated
  assert got == want  # every metric, bit for bit (floats round-trip exactly in JSON)
  # keep=3, no tmp left: the newest 3 of those kept at s3 and those saved since
  # (at N-16, N-8, N unless s3 fell in between)
  saved = sorted(set(map(int, kept)) | set(range((s3 // every + 1) * every, n + 1, every)))
  assert sorted(os.listdir(ckpt)) == sorted(str(s) for s in saved[-3:])


def test_config_drift_is_refused_with_both_values_and_writes_nothing(env, reference, tmp_path):
  wd = tmp_path / "run"
  shutil.copytree(reference[0], wd)
  before = {p: p.read_bytes() for p in wd.rglob("*") if p.is_file()}
  out = run(env, wd, "--config.train.batch_size=32", "--config.model.upsample=transpose")
  assert out.returncode == 1
  err = out.stderr.strip().splitlines()
  assert len(err) == 1 and "Traceback" not in out.stderr, out.stderr
  assert "train.batch_size: 16 -> 32" in err[0] and "model.upsample: 'auto' -> 'transpose'" in err[0]
  assert "--force_resume" in err[0]
  assert {p: p.read_bytes() for p in wd.rglob("*") if p.is_file()} == before


def test_divergence_stops_before_saving_and_names_the_step_and_last_good_checkpoint(
    env, reference, tmp_path):
  wd = tmp_path / "run"
  shutil.copytree(reference[0], wd)
  # num_steps and log_every may change without --force_resume; the learning rates may not.
  # Logging and samples every 16 steps: the first check after divergence is the guard
  # before the step N+8 save.
  out = run(env, wd, f"--config.train.num_steps={N + 16}", "--config.train.log_every=16",
            "--config.train.sample_every=16",
            "--config.train.g_lr=1e30", "--config.train.d_lr=1e30", "--force_resume")
  assert out.returncode == 1, out.stdout[-2000:]
  assert f"resumed from checkpoint at step {N}" in out.stdout
  err = out.stderr.strip().splitlines()[-1]
  assert re.fullmatch(rf"error: training diverged: non-finite parameters \(finite at step {N}\) "
                      rf"at step {N + 8}; last good checkpoint: step {N} in \S+/checkpoints/{N}",
                      err), out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  assert sorted(int(s) for s in os.listdir(wd / "checkpoints")) == [N - 16, N - 8, N]
  import orbax.checkpoint as ocp
  with ocp.CheckpointManager(wd / "checkpoints",
                             options=ocp.CheckpointManagerOptions(read_only=True),
                             item_names=("state", "config")) as m:
    for step in m.all_steps():
      state = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
      leaves = [np.asarray(x) for x in __import__("jax").tree.leaves(state)]
      assert all(np.isfinite(x).all() for x in leaves if x.dtype.kind == "f"), step
  assert max(r["step"] for r in rows(wd)) == N  # nothing logged from the bad steps


def test_resumable_settings_are_not_drift():
  from gan_jax.config import to_dict
  from gan_jax.train import config_drift
  from conftest import tiny_config
  saved = to_dict(tiny_config())
  same_run = tiny_config(**{"train.num_steps": 99, "train.log_every": 3,
                            "train.sample_every": 8, "checkpoint.every": 8,
                            "checkpoint.keep": 9})
  assert config_drift(saved, to_dict(same_run)) == []
  other = tiny_config(**{"train.d_lr": 1e-3, "data.image_size": 16})
  assert config_drift(saved, to_dict(other)) == [
      "data.image_size: 8 -> 16", "train.d_lr: 0.0002 -> 0.001"]
  # with a linear learning-rate decay, num_steps is the schedule's horizon
  decayed = to_dict(tiny_config(**{"train.lr_decay": "linear", "train.num_steps": 40}))
  longer = tiny_config(**{"train.lr_decay": "linear", "train.num_steps": 99})
  assert config_drift(decayed, to_dict(longer)) == ["train.num_steps: 40 -> 99"]


def test_a_setting_added_after_the_save_is_compared_at_its_default():
  # a version-2 run saved before model.patch_dots existed resumes under the
  # default, as analysis and the scripts read it; other values still count
  from gan_jax.config import saved_dict, to_dict
  from gan_jax.train import config_drift
  from conftest import tiny_config
  saved = saved_dict(tiny_config())
  del saved["model"]["patch_dots"]
  assert config_drift(saved, to_dict(tiny_config())) == []
  assert config_drift(saved, to_dict(tiny_config(**{"model.patch_dots": "off"}))) == [
      "model.patch_dots: 'auto' -> 'off'"]
  saved["model"]["retired"] = 1  # a saved setting that no longer exists still counts
  assert config_drift(saved, to_dict(tiny_config())) == ["model.retired: 1 -> '<absent>'"]


def test_relative_data_path_is_saved_absolute_and_is_not_drift(tmp_path, monkeypatch):
  from gan_jax.config import to_dict
  from gan_jax.train import _with_absolute_data_path, config_drift
  from conftest import tiny_config
  monkeypatch.chdir(tmp_path)
  relative = tiny_config(**{"data.source": "folder", "data.path": "imgs",
                            "data.data_dir": "tfds"})
  resolved = _with_absolute_data_path(relative)
  assert resolved.data.path == str(tmp_path / "imgs") and relative.data.path == "imgs"
  assert resolved.data.data_dir == str(tmp_path / "tfds") and resolved.data.manual_dir == ""
  # a rerun of the same command, and a run saved with the old relative form, resume
  assert config_drift(to_dict(resolved), to_dict(relative)) == []
  assert config_drift(to_dict(relative), to_dict(resolved)) == []
  # the same relative path from another directory is other data
  monkeypatch.chdir(tmp_path.parent)
  assert config_drift(to_dict(resolved), to_dict(relative)) == [
      f"data.data_dir: {str(tmp_path / 'tfds')!r} -> {str(tmp_path.parent / 'tfds')!r}",
      f"data.path: {str(tmp_path / 'imgs')!r} -> {str(tmp_path.parent / 'imgs')!r}"]


def test_resuming_with_evaluation_off_keeps_the_best_checkpoint(tmp_path):
  from gan_jax import checkpoint
  from gan_jax.train import train_and_evaluate
  from conftest import tiny_config
  wd = str(tmp_path / "run")
  base = {"train.sample_every": 2, "checkpoint.every": 2, "checkpoint.keep": 1,
          "eval.num_samples": 64}
  train_and_evaluate(tiny_config(**base, **{"train.num_steps": 4, "eval.every": 2}), wd)
  best = checkpoint.resolve_step(wd, "best")
  # eval.every may change on resume; the saves after it carry no scores
  train_and_evaluate(tiny_config(**base, **{"train.num_steps": 8, "eval.every": 0}), wd)
  assert checkpoint.existing_steps(wd) == sorted({best, 8})
  assert checkpoint.resolve_step(wd, "best") == best
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["config_version"] == 2


def test_configs_saved_before_version_2_keep_their_meaning(tmp_path):
  import gzip
  from gan_jax.config import from_dict, to_dict
  from gan_jax.train import config_drift
  from conftest import tiny_config
  for prefix in ("t10k",):
    with gzip.open(tmp_path / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
      f.write(bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 8]) + bytes(64))
  old = to_dict(tiny_config(**{"data.source": "idx", "data.path": str(tmp_path),
                               "model.g_output": "linear"}))
  assert "config_version" not in old and old["data"]["split"] == "train"
  # version 1 read every file present and ignored g_output for DCGAN
  c = from_dict(old)
  assert c.data.split == "test" and c.model.g_output == "tanh"
  assert from_dict({**old, "config_version": 2}).data.split == "train"
  # resuming such a run with the split it really used is no drift
  now = to_dict(tiny_config(**{"data.source": "idx", "data.path": str(tmp_path),
                               "data.split": "test"}))
  assert config_drift(old, now) == []


def test_non_finite_loss_stops_before_the_next_save_and_names_the_step(tmp_path, monkeypatch):
  # The loss check, not the parameter one: d_loss is reported NaN from step 3 on
  # while the parameters stay finite, so only the check of the logged losses can
  # stop the run. With log_every=1 it stops at step 3, before the step-4 save.
  import jax.numpy as jnp
  from gan_jax import checkpoint, steps
  from gan_jax.train import NonFiniteError, train_and_evaluate
  from conftest import tiny_config
  make_train_fn = steps.make_train_fn

  def poisoned(*args, **kwargs):
    fn = make_train_fn(*args, **kwargs)

    def call(state, images, k):
      state, metrics = fn(state, images, k)
      done = jnp.arange(1, k + 1) + int(state.step) - k  # the step of each metrics entry
      return state, {**metrics, "d_loss": jnp.where(done >= 3, jnp.nan, metrics["d_loss"])}
    return call

  monkeypatch.setattr(steps, "make_train_fn", poisoned)
  wd = tmp_path / "run"
  config = tiny_config(**{"model.name": "mlp", "train.log_every": 1, "train.sample_every": 2,
                          "checkpoint.every": 2})
  with pytest.raises(NonFiniteError) as e:
    train_and_evaluate(config, str(wd))
  assert re.fullmatch(r"training diverged: non-finite d_loss at step 3 \(losses are checked "
                      r"every train\.log_every=1 steps; parameters were finite at step 2\); "
                      rf"last good checkpoint: step 2 in {re.escape(str(wd))}/checkpoints/2",
                      str(e.value)), str(e.value)
  assert checkpoint.existing_steps(str(wd)) == [2]
  assert [r["step"] for r in rows(wd)] == [1, 2]  # nothing logged from the bad step


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
def test_resume_on_four_devices_with_evaluation_equals_the_straight_run(tmp_path, model):
  # In process, on the suite's 4 CPU devices, with evaluation on: the MLP runs
  # its steps in lax.scan (the accelerator path), the DCGAN unrolled. Training
  # 4 steps and then resuming to 8 must log exactly what 8 straight steps log,
  # evaluations included (the subprocess tests above cover 1 device, no eval).
  import jax
  from gan_jax.train import train_and_evaluate
  from conftest import tiny_config
  assert jax.device_count() == 4
  base = {"model.name": model, "train.steps_per_call": 2, "train.log_every": 2,
          "train.sample_every": 4, "checkpoint.every": 4, "eval.every": 4,
          "eval.num_samples": 64}
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train_and_evaluate(tiny_config(**base, **{"train.num_steps": 8}), str(straight))
  train_and_evaluate(tiny_config(**base, **{"train.num_steps": 4}), str(resumed))
  train_and_evaluate(tiny_config(**base, **{"train.num_steps": 8}), str(resumed))
  want = rows(straight)
  assert [r["step"] for r in want if "eval/fid" in r] == [4, 8]
  assert [r["step"] for r in want if "d_loss" in r] == [2, 4, 6, 8]
  assert rows(resumed) == want


def test_logged_steps_per_sec_counts_training_only(tmp_path, monkeypatch):
  # On a fake clock where each training step takes 1 s and each checkpoint save
  # and sample grid 50 s, every logged rate is exactly 1 step/s: saves, samples
  # and logging are kept out of it (they used to land in the next interval).
  import types
  from gan_jax import checkpoint, steps, train, writers
  from conftest import tiny_config
  clock = types.SimpleNamespace(now=0.0)
  monkeypatch.setattr(train, "time", types.SimpleNamespace(time=lambda: clock.now))
  make_train_fn, save, samples = steps.make_train_fn, checkpoint.save, writers.Writer.samples

  def timed_train_fn(*args, **kwargs):
    fn = make_train_fn(*args, **kwargs)

    def call(state, images, k):
      clock.now += k
      return fn(state, images, k)
    return call

  def slow(real):
    def wrapped(*args, **kwargs):
      clock.now += 50
      return real(*args, **kwargs)
    return wrapped

  monkeypatch.setattr(steps, "make_train_fn", timed_train_fn)
  monkeypatch.setattr(checkpoint, "save", slow(save))
  monkeypatch.setattr(writers.Writer, "samples", slow(samples))
  config = tiny_config(**{"model.name": "mlp", "train.num_steps": 8, "train.steps_per_call": 2,
                          "train.log_every": 2, "train.sample_every": 4, "checkpoint.every": 2})
  train.train_and_evaluate(config, str(tmp_path / "run"))
  with open(tmp_path / "run" / "metrics.jsonl") as f:
    logged = [r["steps_per_sec"] for r in map(json.loads, f) if "steps_per_sec" in r]
  assert len(logged) == 4 and logged == [1.0] * 4, logged


# Runs gan_jax.main with every file that Python opens for writing in the
# temporary folder of the step-24 checkpoint failing as on a full disk (ENOSPC).
# These writes (the config and metrics JSON, Orbax's commit and metadata files)
# run in Orbax's background threads, where a real full disk also fails them.
FULL_DISK_AT_24 = """
import builtins, errno, os, runpy
real_open = builtins.open
def full_disk_open(file, mode="r", *args, **kwargs):
  if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+") \\
      and "/checkpoints/24.orbax-checkpoint-tmp" in os.fspath(file):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
  return real_open(file, mode, *args, **kwargs)
builtins.open = full_disk_open
runpy.run_module("gan_jax.main", run_name="__main__", alter_sys=True)
"""


def test_a_full_disk_during_a_save_stops_with_one_line_and_the_rerun_resumes(
    env, reference, tmp_path):
  wd = tmp_path / "run"
  ckpt = wd / "checkpoints"
  cmd = _cmd(env, wd)
  out = subprocess.run([sys.executable, "-c", FULL_DISK_AT_24, *cmd[3:]], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 1, out.stderr[-3000:]
  # The asynchronous save of step 24 fails in the background; the loop learns
  # of it at the next save (step 32), or on closing the checkpoint manager.
  assert re.fullmatch(
      r"error: checkpoint save at step 24 failed: \[Errno 28\] No space left on device"
      rf"(: '{re.escape(str(ckpt))}/24\.orbax-checkpoint-tmp\S*'| \(writing in \S+\)); "
      rf"last good checkpoint: step 16 in {re.escape(str(ckpt))}/16 "
      r"\(rerun the same command to resume from it\)\n", out.stderr), out.stderr[-3000:]
  assert 24 <= last_step(wd) <= 32
  assert checkpoint_steps(ckpt) == [8, 16]  # the half-written step 24 is not one
  assert [n for n in os.listdir(ckpt) if n.startswith("24.orbax-checkpoint-tmp")]

  import orbax.checkpoint as ocp
  with ocp.CheckpointManager(ckpt, options=ocp.CheckpointManagerOptions(read_only=True),
                             item_names=("state", "config")) as m:
    assert m.all_steps() == [8, 16]  # Orbax too sees no step 24
    state = m.restore(16, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  assert int(state["step"]) == 16
  assert all(np.isfinite(np.asarray(x)).all() for x in __import__("jax").tree.leaves(state))

  # with space again, the same command resumes from step 16 and finishes the run
  out = run(env, wd)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "resumed from checkpoint at step 16" in out.stdout
  assert rows(wd) == reference[1]  # bit for bit, none missing or repeated
  assert sorted(os.listdir(ckpt)) == [str(N - 16), str(N - 8), str(N)]  # no tmp folder left


def checkpoint_steps(ckpt):
  return sorted(int(n) for n in os.listdir(ckpt) if n.isdigit())



def test_a_full_disk_while_writing_samples_stops_with_one_line_naming_the_last_checkpoint(
    tmp_path, monkeypatch):
  # The sample grid of step 4 hits the full disk before step 4 is saved, and
  # closing the TensorBoard writer then fails too: one WriteError, not the
  # OSError of either, naming the step-2 checkpoint.
  import errno
  from gan_jax import checkpoint, writers
  from gan_jax.train import WriteError, train_and_evaluate
  from conftest import tiny_config
  samples, close = writers.Writer.samples, writers.Writer.close

  def full_from_step_4(self, step, images):
    if step < 4:
      return samples(self, step, images)
    path = os.path.join(self.workdir, "samples", f"step_{step:08d}.png.tmp")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

  def full_close(self):
    close(self)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(writers.Writer, "samples", full_from_step_4)
  monkeypatch.setattr(writers.Writer, "close", full_close)
  wd = tmp_path / "run"
  config = tiny_config(**{"model.name": "mlp", "train.sample_every": 2, "checkpoint.every": 2})
  with pytest.raises(WriteError) as e:
    train_and_evaluate(config, str(wd))
  ckpt = re.escape(str(wd / "checkpoints"))
  assert re.fullmatch(
      rf"training stopped: \[Errno 28\] No space left on device: '{re.escape(str(wd))}/samples/"
      rf"step_00000004\.png\.tmp'; last good checkpoint: step 2 in {ckpt}/2 \(rerun the same "
      r"command to resume from it\)", str(e.value)), str(e.value)
  assert checkpoint.existing_steps(str(wd)) == [2]
