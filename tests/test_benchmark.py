"""scripts/benchmark.py end to end (no timing assertions), its PyTorch twin, and
the CPU 2x2-window up-convolution that the benchmark work introduced."""
import concurrent.futures
import functools
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import MNIST_DIR, REPO, needs
from gan_jax import models
from gan_jax.config import base_config


HAVE_TORCH = importlib.util.find_spec("torch") is not None
SCRIPT = str(REPO / "scripts" / "benchmark.py")
TINY = ["--config=experiments/mnist.py", "--config.data.image_size=8",
        "--config.model.z_dim=16", "--config.model.g_features=8",
        "--config.model.d_features=8", "--config.train.batch_size=16",
        "--steps=2", "--rounds=2", "--warmup=1", "--synthetic_examples=64"]


def _run(*args, timeout=120):
  return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, capture_output=True,
                        text=True, timeout=timeout)


def _run_each(*arg_lists, timeout=120):
  """_run once per argument list, two at a time (each process spends seconds
  importing on one core); the results in the lists' order."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    return list(pool.map(lambda args: _run(*args, timeout=timeout), arg_lists))


def test_benchmark_prints_json_last_line():
  compare = ["--compare=torch", "--torch_threads=1"] if HAVE_TORCH else []
  proc = _run(*TINY, *compare)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  for key in ("config", "backend", "device_kind", "devices", "batch_size",
              "jax_steps_per_sec", "torch_steps_per_sec", "ratio"):
    assert key in result, key
  assert result["config"] == "experiments/mnist.py"
  assert result["backend"] == jax.default_backend()
  assert isinstance(result["device_kind"], str)
  assert result["devices"] == jax.local_device_count() and result["batch_size"] == 16
  assert result["steps_per_call"] == 1 and result["compute_dtype"] == "float32"
  assert isinstance(result["jax_steps_per_sec"], float) and result["jax_steps_per_sec"] > 0
  assert result["jax_images_per_sec"] == pytest.approx(16 * result["jax_steps_per_sec"])
  assert result["peak_rss_mb"] > 0
  # XLA's FLOP count of one step: 1.16 MFLOP for this tiny DCGAN on jaxlib
  # 0.10.2 under the CPU default (the MNIST DCGAN at batch 64: 9.47 GFLOP).
  assert 1e5 < result["flops_per_step"] < 1e8
  assert result["flops_counted_from"] == ("this backend" if result["backend"] == "cpu" else "cpu")
  assert result["jax_tflops_per_sec"] == pytest.approx(
      result["flops_per_step"] * result["jax_steps_per_sec"] / 1e12)
  if HAVE_TORCH:
    assert isinstance(result["torch_steps_per_sec"], float)
    assert result["ratio"] == pytest.approx(
        result["jax_steps_per_sec"] / result["torch_steps_per_sec"])
    pairs = [j / t for j, t in zip(result["jax_blocks_steps_per_sec"],
                                   result["torch_blocks_steps_per_sec"])]
    assert result["ratio_median_of_rounds"] == pytest.approx(float(np.median(pairs)))
    assert result["g_params"] > 0 and "parameter counts identical" in proc.stdout
  else:
    assert result["torch_steps_per_sec"] is None and result["ratio"] is None


def test_flops_per_step_does_not_depend_on_steps_per_call():
  # The MLP runs K steps through lax.scan, whose body XLA counts once: the
  # count must come from a one-step program, not the K-step one divided by K.
  mlp = ["--config=experiments/mnist_mlp.py", "--config.model.g_hidden=(32,)",
         "--config.model.d_hidden=(32,)", "--config.train.batch_size=16", "--steps=2",
         "--rounds=1", "--warmup=1", "--synthetic_examples=64"]
  flops = []
  procs = _run_each(*[[*mlp, f"--config.train.steps_per_call={k}"] for k in (1, 2)])
  for k, proc in zip((1, 2), procs):
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["jax_steps_per_block"] == 2 and result["steps_per_call"] == k
    flops.append(result["flops_per_step"])
  assert flops[0] > 0 and flops[1] == pytest.approx(flops[0], rel=0.01)


def test_flops_count_for_gpus_is_the_cpu_build_of_the_same_step():
  # XLA's GPU cost analysis counts cuDNN convolutions as zero, so off a CPU
  # the benchmark counts the same step compiled for one CPU device, from
  # shapes alone. That is the timed program's count give or take the work each
  # device repeats, which is large in this tiny model (the tests' 4 CPU
  # devices: 61.6 against 55.4 MFLOP).
  sys.path.insert(0, str(REPO / "scripts"))
  import benchmark
  config = _config()
  config.train.batch_size = 16
  images = np.random.default_rng(0).integers(0, 256, (64, 28, 28, 1), dtype=np.uint8)
  side = benchmark.JaxSide(config, images)
  flops, source = side.flops_per_step()
  assert source == "this backend" and flops > 1e7
  assert benchmark.cpu_program_flops(config, side.parts, side.state,
                                     side.images) == pytest.approx(flops, rel=0.15)


def test_benchmark_rejects_what_torch_cannot_mirror():
  unused = f"/tmp/gan_jax_benchmark_unused_{os.getpid()}"
  procs = iter(_run_each(
      [*TINY, "--compare=torch", "--config.train.compute_dtype=bfloat16"],
      [*TINY, "--torch_compile=default"], [*TINY, "--torch_channels_last"],
      [*TINY, f"--profile={unused}", "--profile_steps=0"], [*TINY, "--rounds=0"],
      [*TINY, "--compare=torch", "--torch_threads=-1"], [*TINY, "--torch_threads=1"],
      timeout=60))
  proc = next(procs)
  assert proc.returncode == 1
  assert "compute_dtype" in proc.stderr and "Traceback" not in proc.stderr
  proc = next(procs)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "--torch_compile=default needs --compare=torch" in proc.stderr
  proc = next(procs)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "--torch_channels_last needs --compare=torch" in proc.stderr
  proc = next(procs)
  assert proc.returncode == 1 and "--profile_steps=0 must be >= 1" in proc.stderr
  assert not os.path.exists(unused)  # rejected before anything was written
  proc = next(procs)
  assert proc.returncode == 1 and "--rounds=0 must be >= 1" in proc.stderr
  # torch.set_num_threads(-1) raised a RuntimeError, after JAX had compiled
  proc = next(procs)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == "error: --torch_threads=-1 must be >= 0"
  assert "jax: compiled" not in proc.stdout
  # a torch setting without torch in the run was ignored silently
  proc = next(procs)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == "error: --torch_threads=1 needs --compare=torch"


def test_benchmark_refuses_bad_input_in_one_line_before_compiling(tmp_path):
  """Each of these used to end in a traceback, some only after every
  measurement had been made (a --profile file, torch missing)."""
  (tmp_path / "a_file").write_text("x")
  no_torch = ("import runpy, sys; sys.modules['torch'] = None; "  # as if not installed
              f"sys.argv = [{SCRIPT!r}] + sys.argv[1:]; runpy.run_path({SCRIPT!r}, "
              "run_name='__main__')")
  cases = [
      ([f"--profile={tmp_path / 'a_file'}"], 1, f"--profile={tmp_path / 'a_file'} is a file"),
      (["--config.train.batch_sze=16"], 2,
       "--config.train.batch_sze: the config has no such setting (did you mean batch_size?)"),
      (["stray"], 2, "unexpected arguments: stray"),
      (["--verbose"], 2, "Unknown command line flag 'verbose'"),  # gan_jax.main's, not ours
      (["--compare=torch", "--torch_threads=1", "-c", no_torch], 1,
       "--compare=torch needs PyTorch, which is not installed"),
  ]

  def run(extra):
    if "-c" in extra:  # the script run by runpy in a process where torch cannot import
      i = extra.index("-c")
      return subprocess.run([sys.executable, "-c", extra[i + 1], *TINY, *extra[:i]], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    return _run(*TINY, *extra, timeout=120)

  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # seconds of imports each
    procs = list(pool.map(run, [extra for extra, _, _ in cases]))
  for (extra, rc, message), proc in zip(cases, procs):
    last = proc.stderr.strip().splitlines()[-1]
    assert (proc.returncode, "Traceback" in proc.stderr) == (rc, False), proc.stderr[-2000:]
    assert last == f"error: {message}" or last.startswith(f"error: {message}"), last
    assert "jax: compiled" not in proc.stdout  # refused before compiling


def test_benchmark_checks_survive_python_dash_O():
  """python -O strips assert statements: the twin's parameter-count check was
  one, and under -O a twin with other counts was timed after the script had
  printed "parameter counts identical: ok"."""
  import ast
  for name in ("benchmark.py", "torch_dcgan.py"):
    tree = ast.parse((REPO / "scripts" / name).read_text())
    assert [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)] == [], name


def test_benchmark_on_synthetic_data_needs_no_data_files(tmp_path):
  # a folder source whose folder is missing: synthetic images need none of it,
  # while --real_data is refused as training refuses it
  args = [a if not a.startswith("--config=") else "--config=experiments/pokemon.py"
          for a in TINY] + [f"--config.data.path={tmp_path / 'none'}", "--rounds=1",
                            "--steps=1", "--warmup=0"]
  (tmp_path / "junk").mkdir()
  (tmp_path / "junk" / "a.txt").write_text("not an image")
  procs = iter(_run_each(args, [*args, "--real_data"],
                         [*args, "--real_data", f"--config.data.path={tmp_path / 'junk'}",
                          f"--profile={tmp_path / 'prof'}"]))
  proc = next(procs)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout.strip().splitlines()[-1])["data"] == "synthetic"
  proc = next(procs)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: config.data.path='{tmp_path / 'none'}' is not an existing folder; "
      "data.source='folder' reads its files from one")
  # data that fails only as it loads is still refused before --profile's folder is made
  proc = next(procs)
  assert proc.returncode == 1 and "none of its 1 files is a readable image" in proc.stderr
  assert not (tmp_path / "prof").exists()


# --- the PyTorch twin -------------------------------------------------------

torch_dcgan = None
if HAVE_TORCH:
  sys.path.insert(0, str(REPO / "scripts"))
  import torch  # noqa: E402
  import torch_dcgan  # noqa: E402

needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed (benchmark extra)")


def _config(name="dcgan", size=28, channels=1):
  c = base_config()
  c.model.name, c.data.image_size, c.data.channels = name, size, channels
  c.model.g_features = c.model.d_features = 8
  c.model.g_hidden, c.model.d_hidden = (32, 64), (64, 32)
  return c


def _jax_counts(config):
  G, D = models.build(config)
  shape = (1, config.data.image_size, config.data.image_size, config.data.channels)
  init = lambda m, x: jax.eval_shape(functools.partial(m.init, train=False),
                                     jax.random.PRNGKey(0), x)  # shapes only
  g = init(G, jnp.ones((1, config.model.z_dim)))
  d = init(D, jnp.ones(shape))
  count = lambda v: sum(x.size for x in jax.tree.leaves(v["params"]))
  return count(g), count(d)


@needs_torch
@pytest.mark.parametrize("name,size,channels", [("dcgan", 28, 1), ("dcgan", 32, 3),
                                                ("dcgan", 64, 3), ("mlp", 28, 1)])
def test_torch_twin_has_the_same_parameter_count(name, size, channels):
  config = _config(name, size, channels)
  G, D = torch_dcgan.build(config)
  assert (torch_dcgan.count_params(G), torch_dcgan.count_params(D)) == _jax_counts(config)


@needs_torch
def test_torch_twin_computes_the_same_dcgan():
  """With gan_jax's weights copied over, both G and D agree in train mode."""
  config = _config("dcgan", 16, 1)  # 4 -> 8 -> 16: BatchNorm in both hidden layers
  G, D = models.build(config)
  G, D = G.clone(axis_name=None), D.clone(axis_name=None)
  z = jax.random.normal(jax.random.PRNGKey(1), (4, config.model.z_dim))
  init = lambda m, k, x: jax.jit(functools.partial(m.init, train=False))(k, x)  # 1 compile
  train = lambda m, v, x: jax.jit(functools.partial(m.apply, train=True,
                                                    mutable=["batch_stats"]))(v, x)[0]
  gv = init(G, jax.random.PRNGKey(0), z)
  x = train(G, gv, z)
  dv = init(D, jax.random.PRNGKey(2), x)
  logits = train(D, dv, x)
  tg, td = torch_dcgan.build(config)
  t = lambda a: torch.from_numpy(np.asarray(a).copy())
  gp, dp = gv["params"], dv["params"]
  s0, feats = tg.s0, tg.feats
  with torch.no_grad():  # NHWC (s0, s0, C) Dense outputs -> torch's (C, s0, s0) view
    k = np.asarray(gp["Dense_0"]["kernel"]).reshape(-1, s0, s0, feats).transpose(0, 3, 1, 2)
    tg.fc.weight.copy_(t(k.reshape(k.shape[0], -1).T))
    ups = [m for m in tg.body if isinstance(m, torch.nn.ConvTranspose2d)]
    for i, m in enumerate(ups):
      m.weight.copy_(t(np.asarray(gp[f"Upsample2x_{i}"]["kernel"]).transpose(2, 3, 0, 1)))
    ups[-1].bias.copy_(t(gp[f"Upsample2x_{len(ups) - 1}"]["bias"]))
    convs = [m for m in td.body if isinstance(m, torch.nn.Conv2d)]
    for i, m in enumerate(convs):
      m.weight.copy_(t(np.asarray(dp[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1)))
    convs[0].bias.copy_(t(dp["Conv_0"]["bias"]))
    lin, c_last = td.body[-1], convs[-1].out_channels
    w = np.asarray(dp["Dense_0"]["kernel"])[:, 0].reshape(s0, s0, c_last).transpose(2, 0, 1)
    lin.weight.copy_(t(w.reshape(1, -1)))
    lin.bias.copy_(t(dp["Dense_0"]["bias"]))
    tx = tg.train()(t(z))
    tl = td.train()(t(np.asarray(x).transpose(0, 3, 1, 2)))
  np.testing.assert_allclose(tx.numpy().transpose(0, 2, 3, 1), np.asarray(x), atol=1e-5)
  np.testing.assert_allclose(tl.numpy(), np.asarray(logits), rtol=1e-4, atol=1e-5)


def _twin_steps(config, images, **trainer_kw):
  """(trainer, parameters before, parameters after 2 steps) of a CPU twin."""
  trainer = torch_dcgan.Trainer(config, images, "cpu", **trainer_kw)
  params = lambda: [p.detach().clone() for m in (trainer.G, trainer.D) for p in m.parameters()]
  initial = params()
  trainer.train_steps(2)
  return trainer, initial, params()


def _assert_same_steps(reference, other, initial):
  assert len(reference) == len(other) == len(initial)
  for r, o in zip(reference, other):
    np.testing.assert_allclose(o.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)
  # Adam moved every tensor by ~lr per step, far above the tolerance.
  assert all(float((o - i).abs().max()) > 1e-4 for o, i in zip(other, initial))


@needs_torch
def test_torch_twin_takes_the_same_training_steps_as_gan_jax():
  """Two full steps of d_steps=2 D updates and one G update, from the same
  weights and batches: the twin's loss, Adam (b1, b2, eps, both learning
  rates) and update order are gan_jax's. The MLP, whose weights map one to
  one; the second Adam update depends on the gradients' size, not only sign.
  Every loss --compare=torch accepts is checked against gan_jax's first."""
  sys.path.insert(0, str(REPO / "scripts"))
  import benchmark
  from gan_jax import steps
  from gan_jax.losses import LOSSES
  from gan_jax.state import create_state, make_optimizers
  real, fake = np.float32([1.5, -2.0, 0.3, 6.0]), np.float32([-3.0, 0.5, 2.0, -0.1])
  (accepted,) = [valid for name, valid, _ in benchmark.TORCH_TWINS if name == "train.loss"]
  for name in accepted:
    d_loss, g_loss = LOSSES[name]
    np.testing.assert_allclose(float(torch_dcgan.G_LOSSES[name](torch.from_numpy(fake))),
                               float(g_loss(fake)[0]), rtol=1e-6)
    np.testing.assert_allclose(float(torch_dcgan.d_loss_bce(torch.from_numpy(real),
                                                            torch.from_numpy(fake))),
                               float(d_loss(real, fake)[0]), rtol=1e-6)
  config = _config("mlp", 8, 1)
  config.model.z_dim, config.model.g_hidden, config.model.d_hidden = 4, (8,), (8,)
  t = config.train
  t.loss, t.batch_size, t.d_steps = "minimax", 4, 2  # not the default loss
  t.b1, t.b2, t.g_lr, t.d_lr = 0.3, 0.9, 1e-2, 3e-2
  images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
  G, D = models.build(config)
  g_tx, d_tx = make_optimizers(config)
  mesh = steps.make_mesh(jax.devices()[:1])
  state = jax.jit(lambda: create_state(config, G, D, g_tx, d_tx))()  # one compile

  @jax.jit
  def draws(rng):
    """The batches steps.train_steps draws, in the order the twin asks for them:
    per step, (indices, z) for each D update, then z for the G update."""
    out = []
    for s in range(2):
      key = jax.random.fold_in(rng, s)
      for i in range(2):
        k_real, k_z = jax.random.split(jax.random.fold_in(key, i))
        out += [jax.random.randint(k_real, (4,), 0, 16), jax.random.normal(k_z, (4, 4))]
      out.append(jax.random.normal(jax.random.fold_in(key, 2), (4, 4)))
    return out

  drawn = [np.array(a) for a in draws(state.rng)]
  zs = [torch.from_numpy(a) for a in drawn if a.dtype == np.float32]
  reals = [torch.from_numpy(images[a]).permute(0, 3, 1, 2).float() * (2 / 255) - 1
           for a in drawn if a.dtype != np.float32]
  torch.set_num_threads(1)
  trainer = torch_dcgan.Trainer(config, images, "cpu")
  z_it, real_it = iter(zs), iter(reals)
  trainer._z, trainer._real = lambda: next(z_it), lambda: next(real_it)
  linears = [[m for m in net.modules() if isinstance(m, torch.nn.Linear)]
             for net in (trainer.G, trainer.D)]
  as_torch = lambda p: [torch.from_numpy(np.array(a)) for tree, lins in zip(p, linears)
                        for i in range(len(lins))
                        for a in (np.asarray(tree[f"Dense_{i}"]["kernel"]).T,
                                  tree[f"Dense_{i}"]["bias"])]
  twin = [p for lins in linears for m in lins for p in (m.weight, m.bias)]
  initial = as_torch((state.g.params, state.d.params))
  with torch.no_grad():
    for w, v in zip(twin, initial):
      w.copy_(v)
  new, _ = steps.make_train_fn(config, G, D, g_tx, d_tx, mesh)(
      steps.replicate(state, mesh), steps.replicate(images, mesh), 2)
  trainer.train_steps(2)
  assert next(z_it, None) is None and next(real_it, None) is None  # every batch used
  _assert_same_steps(as_torch((new.g.params, new.d.params)), [p.detach() for p in twin],
                     initial)


@needs_torch
def test_torch_compile_twin_takes_the_same_steps_as_eager():
  """--torch_compile changes how torch runs the step, not what it computes."""
  config = _config("dcgan", 8, 1)
  config.train.batch_size = 8
  images = np.random.default_rng(0).integers(0, 256, (32, 8, 8, 1), dtype=np.uint8)
  torch.set_num_threads(1)
  _, initial, eager = _twin_steps(config, images, seed=3)
  _, _, compiled = _twin_steps(config, images, seed=3, compile_mode="default")
  _assert_same_steps(eager, compiled, initial)


@needs_torch
def test_channels_last_twin_takes_the_same_steps():
  """--torch_channels_last changes the memory order, not the function."""
  config = _config("dcgan", 16, 3)
  config.train.batch_size = 8
  images = np.random.default_rng(0).integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
  torch.set_num_threads(1)
  contiguous, initial, plain = _twin_steps(config, images, seed=5)
  channels_last, _, nhwc = _twin_steps(config, images, seed=5, channels_last=True)
  for trainer, expected in ((contiguous, False), (channels_last, True)):
    convs = [m.weight for m in trainer.D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) == expected for w in convs)
    assert trainer._real().is_contiguous(memory_format=torch.channels_last) == expected
  _assert_same_steps(plain, nhwc, initial)


def test_gpu_bench_script_runs_the_named_runs_and_tabulates(tmp_path):
  # scripts/gpu_bench.sh is what a GPU machine runs; here its JAX-only runs on a
  # tiny model, selected by RUNS, must each leave one JSON row and a table line.
  env = {**os.environ, "PYTHON": sys.executable, "STEPS": "2", "ROUNDS": "1",
         "RUNS": "b64_k10_bf16 b256_k10_bf16 b64_k10_profile b64_k10_profile_tr b64_k1_jax "
                 "b64_k10_pd",
         # --steps=2 last: the host-bound runs ask for 1,000 steps a block
         "EXTRA": " ".join(TINY[1:5] + ["--warmup=1", "--synthetic_examples=300",
                                        "--steps=2"])}
  proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_bench.sh"), str(tmp_path)],
                        cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
  assert [r["name"] for r in rows] == ["b64_k10_bf16", "b256_k10_bf16", "b64_k10_profile",
                                       "b64_k10_profile_tr", "b64_k10_pd", "b64_k1_jax"]
  for row, batch in zip(rows[:2], (64, 256)):
    r = row["result"]
    assert r["batch_size"] == batch and r["steps_per_call"] == 10
    assert r["compute_dtype"] == "bfloat16" and r["image_size"] == 8
    assert r["torch_steps_per_sec"] is None and row["command"].startswith("python scripts/")
  # the profiled run traced whole calls of 10 steps and left its trace
  profile = rows[2]["result"]["profile_trace"]
  assert profile["steps"] == 50 and rows[2]["result"]["compute_dtype"] == "float32"
  assert (tmp_path / "trace_b64.json.gz").read_bytes() == open(profile["path"], "rb").read()
  # the profile of the autodiffed up-convolution ran that model and left its
  # own trace beside the default's (transpose_wgrad)
  tr = rows[3]["result"]
  assert tr["upsample"] == "transpose" and rows[2]["result"]["upsample"] == "transpose_wgrad"
  assert (tmp_path / "trace_b64_tr.json.gz").read_bytes() == open(
      tr["profile_trace"]["path"], "rb").read()
  assert "--config.model.upsample=transpose" in rows[3]["command"].split()
  assert "upsample" not in rows[2]["command"]
  # the patch-dot run names its setting (on here; 'auto' is on for CPU too)
  assert "--config.model.patch_dots=on" in rows[4]["command"].split()
  assert rows[4]["result"]["patch_dots"] is True and rows[2]["result"]["patch_dots"] is True
  assert "patch_dots" not in rows[2]["command"]
  # the host-bound check's K=1 run: JAX alone, one step per call, batch 64
  k1 = rows[5]["result"]
  assert k1["steps_per_call"] == 1 and k1["batch_size"] == 64 and k1["torch_steps_per_sec"] is None
  assert "--steps=1000" in rows[5]["command"].split()
  table = proc.stdout.strip().splitlines()
  assert table[-7].split()[:2] == ["run", "jax"]
  assert [line.split()[0] for line in table[-6:]] == ["b64_k10_bf16", "b256_k10_bf16",
                                                      "b64_k10_profile", "b64_k10_profile_tr",
                                                      "b64_k10_pd", "b64_k1_jax"]
  log = (tmp_path / "bench.log").read_text()
  assert "b64_k1_eager" not in log
  # --steps=2: JAX times whole calls, so the five runs at 10 steps per call
  # timed blocks of 10 steps, and b64_k1_jax blocks of 2
  assert log.count("images/s over 1 blocks of 10 steps") == 5
  assert log.count("images/s over 1 blocks of 2 steps") == 1


# --- scripts/trace_summary.py -------------------------------------------------

def _trace_summary():
  sys.path.insert(0, str(REPO / "scripts"))
  import trace_summary
  return trace_summary


def test_trace_summary_of_a_device_trace(tmp_path, capsys):
  # A GPU-like trace of 2 steps: each step one 1-block 30 us kernel and two
  # 5 us kernels, 10 us apart; host events must not count.
  events = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/device:GPU:0"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7,
             "args": {"name": "Stream #7(Compute)"}},
            {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/host:CPU"}},
            {"ph": "X", "name": "python", "pid": 2, "tid": 1, "ts": 0, "dur": 500}]
  t = 0.0
  for _ in range(2):
    for name, dur, grid in (("big_wgrad", 30, "1,1,1"), ("fusion_a", 5, "98,1,1"),
                            ("fusion_a", 5, "98,1,1")):
      args = {"hlo_op": f"op_{name}", "kernel_details": f"regs:16 grid:{grid} block:128,1,1"}
      if name == "fusion_a":  # a library call: the trace names the JAX op
        args["name"] = "jit(train_steps)/while/body/eval_jaxpr/transpose(jvp(G))/Conv_1/conv"
      events.append({"ph": "X", "name": name, "pid": 1, "tid": 7, "ts": t, "dur": dur,
                     "args": args})
      t += dur + 10
  path = tmp_path / "t.json"
  path.write_text(json.dumps({"traceEvents": events}))
  ts = _trace_summary()
  s = ts.summarize(ts.load(str(path)), steps=2)
  assert s["kind"] == "device" and s["lines"] == ["/device:GPU:0 Stream #7(Compute)"]
  assert s["events_per_step"] == 3 and s["busy_us_per_step"] == 40
  assert s["span_us_per_step"] == pytest.approx((t - 10) / 2)
  top = s["top"][0]
  assert top["name"] == "big_wgrad" and top["grids"] == ["1,1,1"] and top["share"] == 0.75
  assert top["ops"] == ["op_big_wgrad"] and s["top"][1]["calls_per_step"] == 2
  out = subprocess.run([sys.executable, str(REPO / "scripts" / "trace_summary.py"), str(path),
                        "--steps=2"], capture_output=True, text=True, timeout=60)
  assert s["top"][1]["ops"] == ["transpose(jvp(G))/Conv_1/conv"]
  assert out.returncode == 0 and "busy 40.0 us" in out.stdout, out.stderr
  bad = subprocess.run([sys.executable, str(REPO / "scripts" / "trace_summary.py"), str(path),
                        "--steps=0"], capture_output=True, text=True, timeout=60)
  assert bad.returncode == 1 and "--steps=0 must be >= 1" in bad.stderr
  # a trace cut short (a profiler or copy that stopped midway): one line, no traceback
  import gzip
  whole = gzip.compress(path.read_bytes())
  (tmp_path / "cut.json.gz").write_bytes(whole[:len(whole) // 2])
  assert ts.main([str(tmp_path / "cut.json.gz"), "--steps=2"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'cut.json.gz'}: "), err


def test_benchmark_profile_writes_a_trace_of_the_cpu_step(tmp_path):
  proc = _run(*TINY, f"--profile={tmp_path}", "--profile_steps=3")
  assert proc.returncode == 0, proc.stderr[-3000:]
  trace = json.loads(proc.stdout.strip().splitlines()[-1])["profile_trace"]
  assert trace["steps"] == 3 and trace["path"].startswith(str(tmp_path))
  ts = _trace_summary()
  s = ts.summarize(ts.load(trace["path"]), trace["steps"], top=10**6)
  # XLA:CPU's threads ran the step's ops: convolutions or GEMMs among them. All names are
  # searched, not the 15 slowest: at this tiny size a busy machine can push every
  # convolution below the loop and copy events (seen once in CI).
  assert s["kind"] == "cpu" and s["events_per_step"] > 20 and s["busy_us_per_step"] > 0
  names = [r["name"] for r in s["top"]]
  assert len(names) == s["distinct"]
  assert any(n.startswith(("convolution", "ynn", "dot")) or "onednn" in n for n in names), \
      names[:30]


@needs(MNIST_DIR)
def test_dtype_curves_script_trains_both_dtypes_and_tabulates(tmp_path):
  env = {**os.environ, "PYTHON": sys.executable, "SEEDS": "3", "NUM_STEPS": "8",
         "EVAL_EVERY": "8",
         "EXTRA": "--config.model.g_features=8 --config.model.d_features=8 "
                  "--config.eval.num_samples=64 --config.train.batch_size=16 "
                  "--config.train.sample_every=8 --config.checkpoint.every=8"}
  script = ["bash", str(REPO / "scripts" / "dtype_curves.sh")]
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    # a failing run (a bad setting) makes the script fail too: checked below, run
    # beside the good runs (its process stops after the imports)
    bad = pool.submit(subprocess.run, [*script, str(tmp_path / "bad"), str(MNIST_DIR)],
                      cwd=REPO, capture_output=True, text=True, timeout=120,
                      env={**env, "DTYPES": "float32", "EXTRA": "--config.train.batch_size=0"})
    proc = subprocess.run([*script, str(tmp_path), str(MNIST_DIR)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)
    bad = bad.result()
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout.splitlines()
  assert len(out) == 4 and all(": rc=0 in " in line for line in out[:2]), out
  rows = out[-2:]
  assert [r.split()[0] for r in rows] == ["bfloat16_seed3", "float32_seed3"]
  for row, dtype in zip(rows, ("bfloat16", "float32")):
    assert "@8: FID " in row
    config = json.loads((tmp_path / f"{dtype}_seed3" / "config.json").read_text())
    assert config["train"]["compute_dtype"] == dtype and config["seed"] == 3
  assert bad.returncode == 1 and "float32_seed3: rc=1" in bad.stdout


def test_dtype_curves_summary_skips_a_torn_metrics_line(tmp_path):
  """A line a killed run left half-written is skipped, not a crash; the means
  are those of the whole lines. Training is stubbed out: PYTHON runs the
  summary but not gan_jax.main."""
  stub = tmp_path / "python"
  stub.write_text(f'#!/bin/sh\n[ "$1" = "-m" ] && exit 0\nexec {sys.executable} "$@"\n')
  stub.chmod(0o755)
  run = tmp_path / "out" / "float32_seed0"
  run.mkdir(parents=True)
  rows = [{"step": s, "d_loss": 1.0 + s, "g_loss": 2.0, "d_real": 0.5, "d_fake": 0.25}
          for s in (2, 4, 6, 8)]
  (run / "metrics.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in rows) + '{"step": 8, "d_lo')
  proc = subprocess.run(["bash", str(REPO / "scripts" / "dtype_curves.sh"), str(tmp_path / "out")],
                        cwd=REPO, capture_output=True, text=True, timeout=60,
                        env={**os.environ, "PYTHON": str(stub), "SEEDS": "0",
                             "DTYPES": "float32", "NUM_STEPS": "8"})
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.splitlines()[-1].split() == [
      "float32_seed0", "3-4:", "5.00/2.00/0.50/0.25", "|", "7-8:", "9.00/2.00/0.50/0.25"]
