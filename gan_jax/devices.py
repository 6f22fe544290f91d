"""CPU set-up that must happen before JAX starts its backends: one device per core.

XLA:CPU runs a program on one device with one intra-op thread pool. For the
small convolutions of a DCGAN that pool scales poorly: on the 2-core machine
in BENCHMARKS.md one device with 2 threads ran the MNIST DCGAN at 7.1-8.0
steps/s, while 2 devices (one per core, each single-threaded, the batch split
between them by the same shard_map that spreads work over GPUs) ran 9.2-10.6.
The training trajectory is the same up to float reassociation
(tests/test_steps.py checks 1 against 4 devices).

So, on CPU, entry points (`gan_jax.main`, `scripts/benchmark.py`) call
`configure_cpu_devices(batch_size)` before anything touches a JAX device. It
does nothing when the user has already chosen (``JAX_NUM_CPU_DEVICES``, or
``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``), when JAX's
backends are already running, or when an accelerator plugin is installed.
``JAX_NUM_CPU_DEVICES=1`` restores one multi-threaded device.
"""
from __future__ import annotations

import importlib.util
import os

# Devices get at least this many examples each: smaller per-device batches
# make every convolution too small to run efficiently. A guess, measured only
# down to 32 per device (2 cores, batch 64).
MIN_PER_DEVICE_BATCH = 16
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                        "jax_rocm7_plugin", "libtpu")


def cpu_cores() -> int:
  """The cores this process may run on (respects taskset/cpusets)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def cpu_device_count(batch_size: int, cores: int) -> int:
  """The largest divisor of `batch_size` that is at most `cores` and leaves
  each device at least MIN_PER_DEVICE_BATCH examples (at least 1)."""
  if not isinstance(batch_size, int) or batch_size < 1:
    return 1
  limit = max(1, min(cores, batch_size // MIN_PER_DEVICE_BATCH))
  return max(d for d in range(1, limit + 1) if batch_size % d == 0)


def _user_chose() -> bool:
  return bool(os.environ.get("JAX_NUM_CPU_DEVICES")) or (
      "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""))


def _accelerator_possible() -> bool:
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if platforms and platforms.split(",")[0].strip() not in ("cpu", ""):
    return True
  if platforms.strip() == "cpu":
    return False
  return any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS)


def configure_cpu_devices(batch_size: int) -> int | None:
  """Splits the CPU into `cpu_device_count(batch_size, cores)` XLA devices with
  single-threaded kernels each. Returns the count, or None if it left JAX alone."""
  import jax
  from jax._src import xla_bridge
  if _user_chose() or _accelerator_possible() or xla_bridge.backends_are_initialized():
    return None
  n = cpu_device_count(batch_size, cpu_cores())
  if n <= 1:
    return None
  jax.config.update("jax_num_cpu_devices", n)
  xla_flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_multi_thread_eigen" not in xla_flags:
    # Each device already has a core; intra-op threads would only contend.
    os.environ["XLA_FLAGS"] = (xla_flags + " --xla_cpu_multi_thread_eigen=false").strip()
  return n
