r"""Training throughput of gan_jax, optionally against an equivalent PyTorch GAN.

  python scripts/benchmark.py --config=experiments/mnist.py --compare=torch
  python scripts/benchmark.py --config=experiments/mnist.py --compare=torch --torch_compile=default
  python scripts/benchmark.py --config=experiments/mnist.py --config.train.batch_size=256

Times full training steps (config.train.d_steps D updates + one G update) with
the real gan_jax train function (steps.make_train_fn) on the current JAX backend
and all local devices, the dataset resident on the device. Compilation and
warm-up are excluded. With --compare=torch the PyTorch twin in
scripts/torch_dcgan.py (same architecture, parameter count, batch, Adam, loss and
update order) is timed too, in blocks that alternate with the JAX blocks so that
drift in machine load hits both sides alike (ABBA order); each side reports
the median over its blocks, and the JSON also holds the median of the per-round
ratios. torch uses one thread per CPU the process may run on
(os.sched_getaffinity, so taskset is honoured; or --torch_threads), and XLA:CPU
uses all cores by default. On a GPU torch is set to what XLA does by default:
float32 matmuls in TF32 and cudnn.benchmark autotuning. --torch_compile=MODE
compiles the twin's G, D and optimizer steps with torch.compile(mode=MODE); its
compilation happens in the untimed warm-up and its time is printed.

On a CPU shared with other jobs, wall-clock rates swing by 2x from minute to
minute, and torch with more threads than free cores can slow down 3-10x
(OpenMP threads wait on each other), so the JSON also records the load average
and the process CPU time per step of each side. --torch_threads=1 restricts
torch alone (XLA keeps every core); for one core on both sides run the script
under `taskset -c 0` with XLA_FLAGS=--xla_cpu_multi_thread_eigen=false. See
BENCHMARKS.md.

flops_per_step is XLA's count, not the model's nominal one. On a CPU it counts
the compiled program (the CPU default 'transpose_wgrad' executes what a
transposed convolution does; under model.upsample=subpixel the 2x2 window
executes ~12% more); on a GPU, where XLA does not count cuDNN's
convolutions, the same step compiled for a CPU (flops_counted_from says which).
XLA counts only the convolution taps that land on the input, not on padding:
9.10 GFLOP for the MNIST DCGAN at batch 64 with transposed convolutions, where
torch's FlopCounterMode counts 10.37; the CPU default's patch dots
(model.patch_dots) multiply the padding taps too, and count 9.47.

Data are synthetic uniform uint8 images of the config's shape (throughput does
not depend on pixel values), so no dataset is needed; --real_data loads
config.data instead. The last line printed is one JSON object (see `result`).
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

from absl import app, flags
from ml_collections import config_flags

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_HERE), _HERE]  # the repo (gan_jax) and scripts/

from gan_jax.cli import fail, parse_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).",
                                lock_config=True)
flags.DEFINE_enum("compare", "none", ["none", "torch"], "Also time this implementation.")
flags.DEFINE_integer("steps", 50, "Training steps per timing block.")
flags.DEFINE_integer("rounds", 5, "Timing blocks per side (alternating with --compare).")
flags.DEFINE_integer("warmup", 5, "Untimed steps per side after compilation.")
flags.DEFINE_bool("real_data", False, "Load config.data instead of synthetic uint8 images.")
flags.DEFINE_integer("synthetic_examples", 10_000, "Number of synthetic images.")
flags.DEFINE_enum("torch_compile", "none", ["none", "default", "reduce-overhead", "max-autotune"],
                  "With --compare=torch: torch.compile G, D and the optimizer steps with "
                  "this mode (none: eager PyTorch).")
flags.DEFINE_bool("torch_channels_last", False,
                  "With --compare=torch: keep the twin's convolution weights and images in "
                  "torch.channels_last (NHWC) memory order.")
flags.DEFINE_string("profile", None,
                    "After the timed rounds and every measurement, trace --profile_steps "
                    "more JAX steps with jax.profiler into this folder (a Perfetto trace, "
                    "perfetto_trace.json.gz, that scripts/trace_summary.py tabulates).")
flags.DEFINE_integer("profile_steps", 20, "Steps to trace with --profile.")
flags.DEFINE_integer("torch_threads", 0, "With --compare=torch: torch.set_num_threads(N), "
                     "N >= 1; 0: one per usable CPU.")


def _usable_cpus() -> int:
  """CPUs this process may run on (taskset, cpusets), not os.cpu_count()."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _images(config):
  import numpy as np
  from gan_jax import data
  if FLAGS.real_data:
    return data.load(config.data).images
  d = config.data
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (FLAGS.synthetic_examples, d.image_size, d.image_size,
                               d.channels), dtype=np.uint8)


class JaxSide:
  def __init__(self, config, images):
    import jax
    from gan_jax import models, steps
    from gan_jax.state import count_params, create_state, make_optimizers
    self.jax = jax
    self.mesh = steps.make_mesh()
    G, D = models.build(config)
    g_tx, d_tx = make_optimizers(config)
    self.config, self.parts = config, (G, D, g_tx, d_tx)
    self.state = steps.replicate(create_state(config, G, D, g_tx, d_tx), self.mesh)
    self.params = (count_params(self.state.g.params), count_params(self.state.d.params))
    self.images = steps.replicate(images, self.mesh)
    self.fn = steps.make_train_fn(config, G, D, g_tx, d_tx, self.mesh)
    self.k = config.train.steps_per_call

  def run(self, n: int) -> int:
    """Runs at least n steps (whole calls of steps_per_call); returns how many."""
    calls = -(-n // self.k)
    for _ in range(calls):
      self.state, _ = self.fn(self.state, self.images, self.k)
    self.jax.block_until_ready(self.state)
    return calls * self.k

  def flops_per_step(self):
    """(XLA's count of the FLOPs one step executes on all devices, "this
    backend" | "cpu"); (None, None) where no count comes back.

    One step, not steps_per_call: XLA counts a while loop's body once, so the
    lax.scan program of K steps reports the FLOPs of one. On a CPU this counts
    the compiled per-device program (with steps_per_call=1 JAX's compilation
    cache hands back the executable the timed calls use). Elsewhere it counts
    the same step compiled for one CPU device (cpu_program_flops)."""
    if self.jax.default_backend() != "cpu":
      return cpu_program_flops(self.config, self.parts, self.state, self.images), "cpu"
    flops = _flops(self.fn.lower(self.state, self.images, 1).compile())
    return (None, None) if flops is None else (flops * self.mesh.size, "this backend")

  def device_peak_mb(self):
    stats = self.jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2 ** 20


def _flops(compiled):
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jaxlibs: one dict per program
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return None if not flops or flops < 0 else flops


def cpu_program_flops(config, parts, state, images):
  """XLA's FLOP count of one training step over the whole batch, compiled for
  one CPU device from the shapes alone; None if no CPU backend is there.

  For GPUs: their compiled programs call cuDNN for the convolutions, which
  XLA's cost analysis counts as zero (0.35 of ~9.1 GFLOP for the MNIST DCGAN
  at batch 64 on an H200), and the unoptimised program gave no count there.
  The model is the one the GPU runs (model.upsample was resolved when it was
  built on that backend), so the count is that of its formulation."""
  import jax
  from jax.sharding import NamedSharding, PartitionSpec
  from gan_jax import steps
  try:
    mesh = steps.make_mesh(jax.devices("cpu")[:1])
  except RuntimeError:  # JAX_PLATFORMS without cpu
    return None
  fn = steps.make_train_fn(config, *parts, mesh)
  spec = NamedSharding(mesh, PartitionSpec())
  shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=spec),
                        (state, images))
  return _flops(fn.lower(*shapes, 1).compile())


class TorchSide:
  def __init__(self, config, images, backend: str):
    import torch
    import torch_dcgan
    torch.set_num_threads(FLAGS.torch_threads or _usable_cpus())
    self.torch = torch
    device = "cuda" if backend == "gpu" and torch.cuda.is_available() else "cpu"
    if device == "cuda":
      # What XLA does by default on the GPU: float32 dots in TF32 (JAX's
      # default matmul precision) and autotuned convolutions.
      torch.set_float32_matmul_precision("high")
      torch.backends.cudnn.benchmark = True
    if device == "cpu" and backend != "cpu":
      print(f"warning: JAX runs on {backend} but torch on cpu; the ratio compares "
            "different hardware", flush=True)
    mode = None if FLAGS.torch_compile == "none" else FLAGS.torch_compile
    self.trainer = torch_dcgan.Trainer(config, images, device, seed=config.seed,
                                       compile_mode=mode,
                                       channels_last=FLAGS.torch_channels_last)
    self.params = (torch_dcgan.count_params(self.trainer.G),
                   torch_dcgan.count_params(self.trainer.D))
    self.device = device

  def run(self, n: int) -> int:
    self.trainer.train_steps(n)
    self.trainer.sync()
    return n

  def device_peak_mb(self):
    if self.device != "cuda":
      return None
    return self.torch.cuda.max_memory_allocated() / 2 ** 20


def _cpu_s() -> float:
  t = os.times()
  return t.user + t.system


def _timed(side, n: int) -> tuple[float, float]:
  """(steps/s, process CPU milliseconds per step) over one block of >= n steps."""
  t0, c0 = time.perf_counter(), _cpu_s()
  done = side.run(n)
  return done / (time.perf_counter() - t0), (_cpu_s() - c0) / done * 1e3


# What scripts/torch_dcgan.py mirrors; (setting, supported values, default if absent).
TORCH_TWINS = (("model.name", ("dcgan", "mlp"), None),
               ("train.loss", ("minimax", "non_saturating"), None),
               ("train.compute_dtype", ("float32",), None),
               ("train.lr_decay", ("none",), "none"),
               ("model.g_output", ("tanh",), "tanh"),
               ("model.d_pack", (1,), 1),
               ("model.g_norm", ("none",), "none"),
               ("model.g_activation", ("relu",), "relu"))


def check_compare(config) -> None:
  """Fails before any compilation when the PyTorch twin cannot mirror `config`."""
  from gan_jax.config import ConfigError
  for name, valid, default in TORCH_TWINS:
    section, key = name.split(".")
    value = config[section].get(key, default)
    if value not in valid:
      raise ConfigError(f"--compare=torch does not support config.{name}={value!r}; "
                        f"supported: {', '.join(map(repr, valid))}")


def _make_profile_folder(folder: str) -> None:
  """--profile's folder, made before anything is compiled (one line if it cannot be)."""
  from gan_jax.config import ConfigError
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise ConfigError(f"--profile={folder} is a file; pass a folder for the trace")
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"--profile={folder}: cannot make the folder ({e.strerror})") from None


def benchmark(config) -> dict:
  import importlib.util
  import jax
  from gan_jax.config import ConfigError, check_tfds_available, validate
  from gan_jax.models.layers import resolve_patch_dots, resolve_upsample
  from gan_jax.models.norm import resolve_batchnorm
  # synthetic images need no data files; --real_data checks them as training does
  validate(config, jax.device_count(), data_files=FLAGS.real_data)
  if FLAGS.real_data:
    check_tfds_available(config.data)  # offline: seconds, not minutes of retries
  for name, low in (("steps", 1), ("rounds", 1), ("warmup", 0), ("synthetic_examples", 1),
                    ("torch_threads", 0)) + ((("profile_steps", 1),) if FLAGS.profile else ()):
    if FLAGS[name].value < low:
      raise ConfigError(f"--{name}={FLAGS[name].value} must be >= {low}")
  if FLAGS.compare == "torch":
    check_compare(config)
    try:
      have_torch = importlib.util.find_spec("torch") is not None
    except ValueError:  # a torch module without a spec: treat as absent
      have_torch = False
    if not have_torch:
      raise ConfigError("--compare=torch needs PyTorch, which is not installed: "
                        'pip install -e ".[benchmark]"')
  elif FLAGS.torch_compile != "none":
    raise ConfigError(f"--torch_compile={FLAGS.torch_compile} needs --compare=torch")
  elif FLAGS.torch_channels_last:
    raise ConfigError("--torch_channels_last needs --compare=torch")
  elif FLAGS.torch_threads:
    raise ConfigError(f"--torch_threads={FLAGS.torch_threads} needs --compare=torch")
  backend, devices = jax.default_backend(), jax.local_devices()
  load_start = os.getloadavg()
  batch = config.train.batch_size
  images = _images(config)  # (--real_data: a data error comes before the folder below)
  if FLAGS.profile:
    _make_profile_folder(FLAGS.profile)
  sides = {"jax": JaxSide(config, images)}
  print(f"jax {jax.__version__}: {backend} x{len(devices)} ({devices[0].device_kind}); "
        f"{config.model.name} {config.data.image_size}x{config.data.image_size}x"
        f"{config.data.channels}, batch {batch}, d_steps {config.train.d_steps}, "
        f"steps_per_call {config.train.steps_per_call}; G {sides['jax'].params[0]:,} / "
        f"D {sides['jax'].params[1]:,} params; "
        f"{'real' if FLAGS.real_data else 'synthetic'} data {images.shape}", flush=True)
  t0 = time.perf_counter()
  sides["jax"].run(1)
  print(f"jax: compiled and ran the first call in {time.perf_counter() - t0:.1f} s", flush=True)
  sides["jax"].run(FLAGS.warmup)
  flops, flops_source = sides["jax"].flops_per_step()
  if flops:
    print(f"jax: XLA counts {flops / 1e9:.4g} GFLOP per step (all devices; the step "
          f"compiled for {flops_source})", flush=True)
  rss_jax = _rss_mb()
  if FLAGS.compare == "torch":
    import torch
    sides["torch"] = TorchSide(config, images, backend)
    print(f"torch {torch.__version__}: {sides['torch'].device}, "
          f"torch.set_num_threads({torch.get_num_threads()}) ({_usable_cpus()} usable "
          f"CPUs); G "
          f"{sides['torch'].params[0]:,} / D {sides['torch'].params[1]:,} params", flush=True)
    if sides["torch"].params != sides["jax"].params:  # not an assert, which python -O skips
      raise ConfigError(f"--compare=torch: parameter counts differ: jax (G, D) = "
                        f"{sides['jax'].params}, torch = {sides['torch'].params}")
    print("parameter counts identical: ok", flush=True)
    kind = ("eager" if FLAGS.torch_compile == "none"
            else f"torch.compile(mode={FLAGS.torch_compile!r})")
    kind += ", channels_last" if FLAGS.torch_channels_last else ""
    t0, warm = time.perf_counter(), max(FLAGS.warmup, 1)
    sides["torch"].run(warm)
    print(f"torch {kind}: the first {warm} steps (compilation included) took "
          f"{time.perf_counter() - t0:.1f} s", flush=True)

  rates, cpu_ms = {name: [] for name in sides}, {name: [] for name in sides}
  for r in range(FLAGS.rounds):
    # ABBA order: a steady rise or fall in the machine's load does not always
    # land on the side that runs second
    for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
      rate, cpu = _timed(sides[name], FLAGS.steps)
      rates[name].append(rate)
      cpu_ms[name].append(cpu)
    print(f"round {r + 1}/{FLAGS.rounds}: " + ", ".join(
        f"{name} {rates[name][-1]:.2f} steps/s" for name in sides), flush=True)

  med = {name: statistics.median(v) for name, v in rates.items()}
  jax_sps, torch_sps = med["jax"], med.get("torch")
  result = {
      "config": config_flags.get_config_filename(FLAGS["config"]),
      "backend": backend,
      "device_kind": devices[0].device_kind,
      "devices": len(devices),
      "batch_size": batch,
      "steps_per_call": config.train.steps_per_call,
      "compute_dtype": config.train.compute_dtype,
      "model": config.model.name,
      "image_size": config.data.image_size,
      "data": "real" if FLAGS.real_data else "synthetic",
      "steps_per_block": FLAGS.steps,
      "jax_steps_per_block": -(-FLAGS.steps // config.train.steps_per_call)
                             * config.train.steps_per_call,
      "rounds": FLAGS.rounds,
      "jax_steps_per_sec": jax_sps,
      "jax_images_per_sec": jax_sps * batch,
      "jax_blocks_steps_per_sec": rates["jax"],
      "flops_per_step": flops,
      "flops_counted_from": flops_source,
      "jax_tflops_per_sec": None if flops is None else flops * jax_sps / 1e12,
      "torch_steps_per_sec": torch_sps,
      "torch_images_per_sec": None if torch_sps is None else torch_sps * batch,
      "torch_blocks_steps_per_sec": rates.get("torch"),
      "torch_threads": None if torch_sps is None else sides["torch"].torch.get_num_threads(),
      "torch_compile": None if torch_sps is None else FLAGS.torch_compile,
      "torch_channels_last": None if torch_sps is None else FLAGS.torch_channels_last,
      "ratio": None if torch_sps is None else jax_sps / torch_sps,
      # the same-round pairs, whose load was closest: a check on "ratio"
      "ratio_median_of_rounds": None if torch_sps is None else statistics.median(
          j / t for j, t in zip(rates["jax"], rates["torch"])),
      "torch_float32_matmul_precision": None if torch_sps is None
                                        else sides["torch"].torch.get_float32_matmul_precision(),
      "torch_inductor_layout_optimization": None if FLAGS.torch_compile == "none" else getattr(
          sys.modules.get("torch._inductor.config"), "layout_optimization", None),
      "jax_cpu_ms_per_step": statistics.median(cpu_ms["jax"]),
      "torch_cpu_ms_per_step": None if torch_sps is None else statistics.median(cpu_ms["torch"]),
      "upsample": resolve_upsample(config.model.upsample),
      "patch_dots": resolve_patch_dots(config.model.get("patch_dots", "auto")),
      "batchnorm": config.model.get("batchnorm", "auto"),
      "bn_two_stage_rows": resolve_batchnorm(config.model.get("batchnorm", "auto")),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "cpu_count": os.cpu_count(),
      "usable_cpus": _usable_cpus(),
      "load_avg_1min": [load_start[0], os.getloadavg()[0]],
      "g_params": sides["jax"].params[0],
      "d_params": sides["jax"].params[1],
      "peak_rss_mb_jax": rss_jax,
      "peak_rss_mb": _rss_mb(),
      "jax_peak_device_mb": None if backend == "cpu" else sides["jax"].device_peak_mb(),
      "torch_peak_device_mb": None if torch_sps is None else sides["torch"].device_peak_mb(),
      "versions": _versions(),
      "profile_trace": None,
  }
  for name in sides:  # JAX runs whole calls: its blocks can hold more than --steps
    block = result["jax_steps_per_block"] if name == "jax" else FLAGS.steps
    print(f"{name}: median {med[name]:.2f} steps/s = {med[name] * batch:.0f} images/s "
          f"over {FLAGS.rounds} blocks of {block} steps", flush=True)
  if torch_sps is not None:
    print(f"ratio jax/torch: {result['ratio']:.2f}", flush=True)
  print("process CPU time per step: " + ", ".join(
      f"{name} {statistics.median(cpu_ms[name]):.0f} ms" for name in sides)
      + f"; 1-min load average {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f} on "
      f"{os.cpu_count()} CPUs", flush=True)
  if flops:
    print(f"jax: {flops * jax_sps / 1e12:.4g} TFLOP/s achieved (XLA's FLOP count x steps/s)",
          flush=True)
  print(f"peak host RSS: {result['peak_rss_mb']:.0f} MiB (after JAX warm-up: {rss_jax:.0f} MiB)"
        + ("" if backend == "cpu" else f"; peak device memory: jax "
           f"{result['jax_peak_device_mb']} MiB, torch {result['torch_peak_device_mb']} MiB"),
        flush=True)
  if FLAGS.profile:  # after every measurement above, which the profiler must not touch
    result["profile_trace"] = _profile(sides["jax"], FLAGS.profile, FLAGS.profile_steps)
  return result


def _profile(side, folder: str, n: int):
  """Traces >= n more JAX steps (whole calls) after the timed ones; returns the
  Perfetto trace's path, or None where jax.profiler wrote none."""
  import glob
  import jax
  os.makedirs(folder, exist_ok=True)
  pattern = os.path.join(folder, "**", "perfetto_trace.json.gz")
  earlier = set(glob.glob(pattern, recursive=True))  # never report an older run's trace
  with jax.profiler.trace(folder, create_perfetto_trace=True):
    t0 = time.perf_counter()
    done = side.run(n)
    wall = time.perf_counter() - t0
  traces = sorted(set(glob.glob(pattern, recursive=True)) - earlier, key=os.path.getmtime)
  print(f"jax: traced {done} steps in {wall * 1e3:.1f} ms "
        f"({wall / done * 1e3:.3f} ms per step while tracing): "
        f"{traces[-1] if traces else 'no perfetto_trace.json.gz written'}", flush=True)
  return {"path": traces[-1] if traces else None, "steps": done, "wall_s": wall}


def _versions() -> dict:
  import flax
  import jax
  out = {"jax": jax.__version__, "flax": flax.__version__}
  if "torch" in sys.modules:
    out["torch"] = sys.modules["torch"].__version__
  return out


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments: {' '.join(argv[1:])}", code=2)
  from gan_jax.config import ConfigError
  from gan_jax.data import DataError
  try:
    result = benchmark(FLAGS.config)
  except (ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=parse_flags)
