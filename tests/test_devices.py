"""One XLA:CPU device per core (gan_jax/devices.py), chosen before JAX starts."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from gan_jax import devices
from test_main import TINY_FLAGS, run_main


@pytest.mark.parametrize("batch, cores, want", [
    (64, 2, 2), (64, 1, 1), (64, 16, 4), (256, 16, 16), (100, 16, 5), (96, 8, 6),
    (16, 2, 1), (31, 2, 1), (32, 2, 2), (7, 4, 1), (0, 2, 1), (-4, 2, 1)])
def test_device_count_divides_the_batch_and_keeps_per_device_batches_large(batch, cores, want):
  n = devices.cpu_device_count(batch, cores)
  assert n == want
  if batch > 0:
    assert batch % n == 0 and n <= cores
    assert n == 1 or batch // n >= devices.MIN_PER_DEVICE_BATCH


def _probe(env_extra, drop=("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")):
  """configure_cpu_devices(64) in a fresh process; returns its report."""
  env = {k: v for k, v in os.environ.items() if k not in drop}
  env.update(env_extra, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
  code = ("import json, os, jax; from gan_jax.devices import configure_cpu_devices as c; "
          "n = c(64); print(json.dumps([n, jax.device_count(), os.environ.get('XLA_FLAGS', '')]))")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_configure_splits_the_cpu_unless_the_user_chose():
  want = devices.cpu_device_count(64, devices.cpu_cores())
  n, count, flags = _probe({"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"})
  if want > 1:
    assert (n, count) == (want, want)
    assert flags == "--xla_cpu_enable_fast_math=false --xla_cpu_multi_thread_eigen=false"
  else:
    assert (n, count, flags) == (None, 1, "--xla_cpu_enable_fast_math=false")
  # The user's choice wins, through either knob, and XLA_FLAGS is left alone.
  assert _probe({"JAX_NUM_CPU_DEVICES": "3"}) == [None, 3, ""]
  forced = "--xla_force_host_platform_device_count=5"
  assert _probe({"XLA_FLAGS": forced}) == [None, 5, forced]


def test_main_picks_devices_and_a_run_resumes_on_another_device_count(tmp_path):
  """Checkpoints hold replicated arrays, so a run started with one device per
  core continues with a single device (and the other way round)."""
  want = devices.cpu_device_count(32, devices.cpu_cores())  # 2 on a 2-core machine
  wd = tmp_path / "run"
  flags = [f for f in TINY_FLAGS if "num_steps" not in f and "batch_size" not in f]
  flags.append("--config.train.batch_size=32")
  first = run_main(wd, *flags, "--config.train.num_steps=4", env_devices=None)
  assert first.returncode == 0, first.stderr[-3000:]
  assert (f"cpu: {want} XLA devices" in first.stdout) == (want > 1)
  assert f"; {want} device(s) (cpu)" in first.stdout
  second = run_main(wd, *flags, "--config.train.num_steps=6", env_devices="1")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "resumed from checkpoint at step 4" in second.stdout
  assert "; 1 device(s) (cpu)" in second.stdout
  rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [2, 4, 6]
