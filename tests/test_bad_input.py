"""Bad input through the user path (`python -m gan_jax.main`): one clear line
naming the setting, a non-zero exit, no traceback, and no workdir created.

The cases fail before anything is compiled, so they are cheap; they run as
concurrent subprocesses in one module fixture and are checked one by one.
More settings that go through the same validation are checked in-process."""
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

TINY = ["--config.model.z_dim=16", "--config.model.g_features=8", "--config.model.d_features=8",
        "--config.model.g_hidden=(32,)", "--config.model.d_hidden=(32,)",
        "--config.train.batch_size=16", "--config.train.steps_per_call=2"]
DIGITS = "--config=experiments/digits.py"


def env(devices=1):
  # The shared persistent compilation cache makes the one case that trains
  # (and tests/test_resume.py, which compiles the same program) cheap.
  return {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "PYTHONPATH": str(REPO),
          "JAX_COMPILATION_CACHE_DIR": os.path.join(tempfile.gettempdir(),
                                                    "gan_jax_tests_jax_cache"),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _folders(root):
  """Folders of images: none readable, some junk, and an empty one."""
  junk = root / "junk"
  junk.mkdir()
  (junk / "a.txt").write_text("not an image")
  (junk / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  mixed = root / "mixed"
  mixed.mkdir()
  rng = np.random.default_rng(0)
  for i in range(256):
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(mixed / f"{i:03d}.png")
  for name in ("notes.txt", "broken.jpg", "data.csv"):
    (mixed / name).write_text("x")
  (root / "empty").mkdir()
  (root / "a_file").write_text("not a folder")
  (root / "tfds_empty").mkdir()


# name: (extra flags, devices, patterns the single error line must contain)
CASES = {
    "unknown model": (["--config.model.name=stylegan9"], 1,
                      ["config.model.name='stylegan9' is unknown; valid: ", "dcgan", "mlp"]),
    "batch not divisible by devices": (["--config.train.batch_size=6"], 4,
                                       ["config.train.batch_size=6 is not divisible by the 4 "
                                        "devices; use a multiple of 4"]),
    "image size dcgan cannot make": (["--config.data.image_size=30"], 1,
                                     ["config.data.image_size=30 cannot be produced by dcgan",
                                      "e.g. 8, 16, 28, 32"]),
    "missing data path": (["--config.data.source=folder", "--config.data.path={root}/nope"], 1,
                          ["config.data.path=", "/nope' is not an existing folder"]),
    "no readable image": (["--config.data.source=folder", "--config.data.path={root}/junk"], 1,
                          ["none of its 2 files is a readable image"]),
    "missing config file": (["--config=experiments/no_such_experiment.py"], 1,
                            ["--config=experiments/no_such_experiment.py: no such file"]),
    "unknown setting": (["--config.train.bogus_rate=3"], 1,
                        ["--config.train.bogus_rate: the config has no such setting"]),
    "misspelt setting": (["--config.train.batch_sze=3"], 1,
                         ["--config.train.batch_sze: the config has no such setting "
                          "(did you mean batch_size?)"]),
    "badly typed setting": (["--config.train.batch_size=abc"], 1,
                            ["--config.train.batch_size=abc", "invalid literal for int()"]),
    "workdir is a file": (["--workdir={root}/a_file"], 1, ["is a file; give a folder"]),
    "tfds offline, not prepared": (
        ["--config=experiments/mnist.py", "--config.data.data_dir={root}/tfds_empty"], 1,
        ["TFDS dataset 'mnist' is not prepared in ", "cannot be downloaded (no network)",
         "--config.data.data_dir=DIR", "train-images-idx3-ubyte.gz",
         "--config.data.manual_dir=DIR"]),
    "tfds unknown name": (["--config=experiments/mnist.py", "--config.data.name=mnistt"], 1,
                          ["config.data.name='mnistt' is not a TFDS dataset; did you mean mnist"]),
}

# The same validation, called in-process (main turns any ConfigError into one line,
# as the cases above show): name -> (tiny_config overrides, patterns).
IN_PROCESS = {
    "unknown loss": ({"train.loss": "wasserstein9"},
                     ["config.train.loss='wasserstein9' is unknown; valid: ", "minimax"]),
    "unknown data source": ({"data.source": "imagenet9"},
                            ["config.data.source='imagenet9' is unknown; valid: ", "folder"]),
    "zero batch size": ({"train.batch_size": 0},
                        ["config.train.batch_size=0 must be a positive number"]),
    "negative steps": ({"train.num_steps": -5},
                       ["config.train.num_steps=-5 must be a positive number"]),
    "zero learning rate": ({"train.g_lr": 0.0}, ["config.train.g_lr=0.0 must be a positive"]),
    "nan learning rate": ({"train.d_lr": float("nan")},
                          ["config.train.d_lr=nan must be a positive number"]),
    "zero features": ({"model.g_features": 0}, ["config.model.g_features=0 must be a positive"]),
    "unknown patch_dots": ({"model.patch_dots": "yes"},
                           ["config.model.patch_dots='yes' is unknown; valid: auto, off, on"]),
    "unknown batchnorm": ({"model.batchnorm": "fast"},
                          ["config.model.batchnorm='fast' is unknown; valid: auto, flax, two_stage"]),
    "checkpoint interval vs steps_per_call": (
        {"train.steps_per_call": 2, "checkpoint.every": 5},
        ["config.checkpoint.every=5 must be a multiple of config.train.steps_per_call=2"]),
    "empty data path": ({"data.source": "idx", "data.path": "{root}/empty"},
                        ["config.data.path=", "/empty' is an empty folder"]),
    "unknown idx split": ({"data.source": "idx", "data.split": "validation"},
                          ["config.data.split='validation' is unknown; valid: all, test, train"]),
    "a split of a source that has none": (
        {"data.source": "digits", "data.split": "test"},
        ["config.data.split='test', but data.source='digits' has no splits",
         "leave data.split='train'"]),
    "eval set too small for the metrics": (
        {"eval.every": 2, "eval.num_samples": 5},
        ["config.eval.num_samples=5 is too small for the image metrics; use at least 6"]),
    "negative eval.num_real": ({"eval.num_real": -30},
                               ["config.eval.num_real=-30 must be an integer >= 0"]),
    "seed past 32 bits": ({"eval.seed": 2**32 + 5},
                          ["config.eval.seed=4294967301 must be an integer in [0, 2**32)"]),
    "negative max_examples": ({"data.max_examples": -2},
                              ["config.data.max_examples=-2 must be an integer >= 0"]),
    "toy data through tanh": (
        {"data.source": "toy", "data.name": "ring", "data.image_size": 1, "data.channels": 2,
         "model.name": "mlp", "model.g_output": "tanh"},
        ["config.model.g_output='tanh' cannot reach the toy modes", "use 'linear'"]),
    # One row per remaining check of config.validate, so that none can go missing.
    "unknown compute dtype": ({"train.compute_dtype": "float8"},
                              ["config.train.compute_dtype='float8' is unknown; valid: ",
                               "bfloat16"]),
    "unknown upsample": ({"model.upsample": "bilinear"},
                         ["config.model.upsample='bilinear' is unknown; valid: auto, "]),
    "unknown g_output": ({"model.g_output": "sigmoid"},
                         ["config.model.g_output='sigmoid' is unknown; valid: linear, tanh"]),
    "unknown lr_decay": ({"train.lr_decay": "cosine"},
                         ["config.train.lr_decay='cosine' is unknown; valid: linear, none"]),
    "unknown best_mode": ({"checkpoint.best_mode": "median"},
                          ["config.checkpoint.best_mode='median' is unknown; valid: max, min"]),
    "zero z_dim": ({"model.z_dim": 0}, ["config.model.z_dim=0 must be a positive number"]),
    "zero d_steps": ({"train.d_steps": 0}, ["config.train.d_steps=0 must be a positive number"]),
    "boolean is not a number": ({"train.log_every": True},
                                ["config.train.log_every=True must be a positive number"]),
    "zero checkpoints kept": ({"checkpoint.keep": 0},
                              ["config.checkpoint.keep=0 must be a positive number"]),
    "empty hidden layers": ({"model.g_hidden": ()},
                            ["config.model.g_hidden=() must be a non-empty list of positive ints"]),
    "zero-width hidden layer": ({"model.d_hidden": (32, 0)},
                                ["config.model.d_hidden=(32, 0) must be a non-empty list"]),
    # a boolean is an int to Python: (True, 32) trained a 1-unit hidden layer
    "boolean hidden layer": ({"model.name": "mlp", "model.g_hidden": (True, 32)},
                             ["config.model.g_hidden=(True, 32) must be a non-empty list"]),
    "adam b1 of 1": ({"train.b1": 1.0}, ["config.train.b1=1.0 must be in [0, 1)"]),
    # None (a config file's) was a TypeError traceback from the comparison
    "adam b2 of None": ({"train.b2": None}, ["config.train.b2=None must be in [0, 1)"]),
    "eval interval of None": ({"eval.every": None},
                              ["config.eval.every=None must be 0 (off) or a positive multiple"]),
    "negative adam b2": ({"train.b2": -0.1}, ["config.train.b2=-0.1 must be in [0, 1)"]),
    "zero d_pack": ({"model.d_pack": 0}, ["config.model.d_pack=0 must be a positive number"]),
    "d_pack on dcgan": ({"model.d_pack": 2},
                        ["config.model.d_pack=2 needs model.name='mlp' and a per-device batch ("]),
    "d_pack not dividing the per-device batch": (
        {"model.name": "mlp", "model.d_pack": 3},
        ["config.model.d_pack=3 needs model.name='mlp'", ") divisible by it"]),
    "zero eval.num_samples": ({"eval.num_samples": 0},
                              ["config.eval.num_samples=0 must be a positive number"]),
    "negative seed": ({"seed": -1}, ["config.seed=-1 must be an integer in [0, 2**32)"]),
    "two channels": ({"data.channels": 2}, ["config.data.channels=2 must be 1 or 3"]),
    "negative eval interval": ({"eval.every": -2},
                               ["config.eval.every=-2 must be 0 (off) or a positive multiple"]),
    "eval interval vs steps_per_call": (
        {"train.steps_per_call": 2, "eval.every": 3},
        ["config.eval.every=3 must be 0 (off) or a positive multiple of "
         "config.train.steps_per_call=2"]),
    "sample interval vs steps_per_call": (
        {"train.steps_per_call": 2, "train.sample_every": 3},
        ["config.train.sample_every=3 must be a multiple of config.train.steps_per_call=2"]),
    "unknown extractor": ({"eval.every": 2, "eval.extractor": "inception9"},
                          ["config.eval.extractor='inception9' is unknown; valid: "]),
    "unknown best metric": ({"eval.every": 2, "checkpoint.best_metric": "eval/fidd"},
                            ["config.checkpoint.best_metric='eval/fidd' is unknown; valid: ",
                             "eval/fid"]),
    "eval.num_real too small": ({"eval.every": 2, "eval.num_real": 3},
                                ["config.eval.num_real=3 is too small for the image metrics"]),
    # checked once the data is loaded, still before anything is compiled or written
    "too few images to evaluate": (
        {"eval.every": 2, "data.max_examples": 5},
        ["config.eval.every=2 needs at least 6 real images for the image metrics, but the "
         "data holds 5; add images, raise config.data.max_examples, or set config.eval.every=0"]),
}


def _command(root, extra, verbose=False):
  flags = [DIGITS] + TINY + [f"--workdir={root}/workdir"]
  for f in extra:  # replaces a flag of the same name in place (--config must come first)
    names = [g.split("=")[0] for g in flags]
    f = f.format(root=root)
    if f.split("=")[0] in names:
      flags[names.index(f.split("=")[0])] = f
    else:
      flags.append(f)
  return [sys.executable, "-m", "gan_jax.main", *flags] + (["--verbose"] if verbose else [])


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """Runs every case (and two more) concurrently; name -> (CompletedProcess, root)."""
  jobs = {}
  for name, (extra, devices, _) in CASES.items():
    jobs[name] = (extra, devices, False)
  jobs["verbose"] = (["--config.model.name=stylegan9"], 1, True)
  jobs["some non-images"] = (["--config.data.source=folder", "--config.data.path={root}/mixed",
                              "--config.train.num_steps=2", "--config.train.log_every=2",
                              "--config.train.sample_every=2", "--config.checkpoint.every=2"],
                             1, False)

  def run(name):
    root = tmp_path_factory.mktemp(re.sub(r"\W+", "_", name))
    _folders(root)
    extra, devices, verbose = jobs[name]
    t0 = time.time()
    out = subprocess.run(_command(root, extra, verbose), cwd=REPO, env=env(devices),
                         capture_output=True, text=True, timeout=300)
    out.seconds = time.time() - t0
    return out, root

  with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
    return dict(zip(jobs, pool.map(run, jobs)))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_non_zero_no_traceback_and_no_workdir(results, name):
  out, root = results[name]
  patterns = CASES[name][2]
  assert out.returncode != 0
  assert "Traceback" not in out.stderr, out.stderr[-3000:]
  errors = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and out.stderr.strip().splitlines()[-1] == errors[0], out.stderr
  for p in patterns:
    assert p in errors[0], errors[0]
  assert not (root / "workdir").exists()
  assert out.stdout.strip() == "" or name.startswith("tfds"), out.stdout
  if name == "workdir is a file":
    assert (root / "a_file").read_text() == "not a folder"


@pytest.mark.parametrize("name", list(IN_PROCESS))
def test_bad_setting_in_process(tmp_path, name):
  from gan_jax import train
  from gan_jax.config import ConfigError
  from conftest import tiny_config
  _folders(tmp_path)
  overrides, patterns = IN_PROCESS[name]
  config = tiny_config(**{k: v.format(root=tmp_path) if isinstance(v, str) else v
                          for k, v in overrides.items()})
  with pytest.raises(ConfigError) as e:
    train.train_and_evaluate(config, str(tmp_path / "workdir"))
  assert "\n" not in str(e.value)
  for p in patterns:
    assert p in str(e.value), str(e.value)
  assert not (tmp_path / "workdir").exists()


def test_tfds_offline_fails_fast(results):
  # TFDS itself would retry its downloads for ~3.5 minutes; the check refuses in
  # seconds, without importing TensorFlow.
  out, _ = results["tfds offline, not prepared"]
  assert out.returncode == 1 and "Retrying" not in out.stderr and out.seconds < 60
  assert out.stderr.count("\n") == 1  # nothing but the error line


def test_the_network_probe_is_bounded_when_dns_hangs(monkeypatch):
  # socket timeouts do not cover the DNS lookup: a hanging resolver must still
  # give an answer ("offline") within 2 x the timeout, not after it returns
  import socket
  from gan_jax import config
  monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: time.sleep(30) or [])
  t0 = time.monotonic()
  assert config._online("example.invalid", timeout=0.2) is False
  assert time.monotonic() - t0 < 5


def test_tfds_manual_dir_is_checked_for_the_source_files(tmp_path):
  from gan_jax.config import check_tfds_available
  from gan_jax.data import DataError
  from conftest import tiny_config
  d = tiny_config(**{"data.source": "tfds", "data.name": "mnist",
                     "data.data_dir": str(tmp_path / "tfds")}).data
  d.manual_dir = str(tmp_path / "manual")
  os.makedirs(d.manual_dir)
  for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    open(os.path.join(d.manual_dir, name), "wb").close()
  with pytest.raises(DataError, match=r"source files \(train-images-idx3-ubyte.gz, "
                                      r"train-labels-idx1-ubyte.gz\) in a folder"):
    check_tfds_available(d)
  for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    open(os.path.join(d.manual_dir, name), "wb").close()
  check_tfds_available(d)  # all there: TFDS may prepare from them without a network
  assert not os.path.exists(tmp_path / "tfds")  # the check wrote nothing


def test_verbose_shows_the_traceback(results):
  out, root = results["verbose"]
  assert out.returncode != 0 and "Traceback" in out.stderr and "ConfigError" in out.stderr
  assert not (root / "workdir").exists()


def test_folder_with_some_non_images_trains_and_reports_the_count(results):
  out, root = results["some non-images"]
  assert out.returncode == 0, out.stderr[-3000:]
  assert re.search(r"^data: folder: 256 images from \S+ \(3 non-image files skipped\)",
                   out.stdout, re.M), out.stdout
  assert (root / "workdir" / "checkpoints" / "2").is_dir()


def test_missing_config_file_without_overrides_is_one_line(tmp_path):
  # Without --config.* overrides nothing touches the lazily loaded config while
  # the flags are parsed; the file must still be loaded (and fail) there.
  out = subprocess.run([sys.executable, "-m", "gan_jax.main", "--config=experiments/nope.py",
                        f"--workdir={tmp_path}/w"], cwd=REPO, env=env(), capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 2
  assert out.stderr == ("error: --config=experiments/nope.py: no such file; pass an experiment "
                        "config such as experiments/digits.py\n")
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("first, message", [
    (None, "error: interrupted before training began: nothing was saved; the workdir's "
           "checkpoints, if any, are intact"),
    ("SIGINT", "error: interrupted twice: stopped without saving; the newest checkpoint is "
               "intact")])
def test_a_ctrl_c_is_called_a_second_one_only_after_a_first(tmp_path, first, message):
  # a subprocess: importing gan_jax.main here would define its flags in this
  # process, where scripts/benchmark.py's tests define theirs
  script = f"""
import sys
from gan_jax import main, signals, train
first = {first!r}
def interrupted(*args, **kwargs):
  raise KeyboardInterrupt if first is None else signals.SecondSignal(first)
train.train_and_evaluate = interrupted
sys.argv = ["main", "--config=experiments/digits.py", "--workdir={tmp_path / 'w'}"]
main.run()
"""
  out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env(1), capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 130 and out.stderr == message + "\n", (out.returncode, out.stderr)


def test_a_ctrl_c_inside_jax_s_gc_callback_stops_the_run_before_training(tmp_path):
  # Python's own handler raised the KeyboardInterrupt inside the callback that
  # JAX runs on every garbage collection, which printed and dropped it, and the
  # run trained on: that was most of the first second of a run, while the config
  # file imports JAX.
  config = tmp_path / "interrupted.py"
  config.write_text(f"""
import gc, os, signal
import jax  # registers its gc callback
exec(open({str(REPO / "experiments" / "digits.py")!r}).read())
def ctrl_c(phase, info):
  if phase == "start":
    gc.callbacks.remove(ctrl_c)
    os.kill(os.getpid(), signal.SIGINT)  # Python runs the handler within this callback
gc.callbacks.insert(0, ctrl_c)
gc.collect()
""")
  workdir = tmp_path / "w"
  out = subprocess.run(
      [sys.executable, "-m", "gan_jax.main", f"--config={config}", f"--workdir={workdir}",
       "--config.train.num_steps=2"], cwd=REPO, env=env(1), capture_output=True, text=True,
      timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  assert out.returncode == 130, (out.returncode, out.stderr[-2000:])
  assert out.stderr == ("error: interrupted before training began: nothing was saved; the "
                        "workdir's checkpoints, if any, are intact\n"), out.stderr[-2000:]
  assert not workdir.exists()


def test_a_deferred_ctrl_c_stops_at_the_training_s_signal_handlers():
  # the window between main's check and the training's handlers (validation,
  # the resume check) is covered where those handlers are installed
  from gan_jax import signals
  before = signal.getsignal(signal.SIGINT)
  try:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signals.defer_early_interrupts()
    signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # a Ctrl-C, remembered
    with pytest.raises(KeyboardInterrupt):
      with signals.StopFlag():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers given back
  finally:
    signal.signal(signal.SIGINT, before)


def test_after_the_first_signal_in_training_a_second_ctrl_c_raises():
  # main's deferring handler must not be what the training gives back: a
  # second Ctrl-C would then be deferred too, not abort
  from gan_jax import signals
  before = signal.getsignal(signal.SIGINT)
  try:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signals.defer_early_interrupts()
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    with pytest.raises(signals.SecondSignal, match="SIGINT"):
      with signals.StopFlag() as stop:
        stop._handle(signal.SIGINT, None)  # the first signal
        assert stop.signal == "SIGINT"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        raise KeyboardInterrupt  # what Python's handler raises at a second Ctrl-C
  finally:
    signal.signal(signal.SIGINT, before)


def test_signal_handling_keeps_no_module_level_state():
  import types
  from gan_jax import signals
  state = [name for name, v in vars(signals).items()
           if not name.startswith("__") and name != "annotations"
           and not isinstance(v, (type, types.FunctionType, types.ModuleType))]
  assert state == [], state
