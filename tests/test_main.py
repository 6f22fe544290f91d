"""End to end: `python -m gan_jax.main` on a tiny config leaves the full workdir."""
import concurrent.futures
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

TINY_FLAGS = [
    "--config.model.z_dim=16", "--config.model.g_features=8", "--config.model.d_features=8",
    "--config.train.batch_size=16", "--config.train.num_steps=6",
    "--config.train.log_every=2", "--config.train.sample_every=4", "--config.checkpoint.every=4",
]


def run_main(workdir, *flags, env_devices="1", config="experiments/digits.py"):
  env = {**os.environ, "JAX_NUM_CPU_DEVICES": env_devices, "PYTHONPATH": str(REPO)}
  return subprocess.run([sys.executable, "-m", "gan_jax.main", f"--config={config}",
                         f"--workdir={workdir}", *flags], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)


OVERRIDES = ["--config.train.loss=minimax", "--config.model.name=mlp",
             "--config.model.g_hidden=(32,)", "--config.model.d_hidden=(32,)",
             "--config.train.num_steps=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The two tests' runs, started together (each process spends seconds importing
  and compiling on one core): name -> (CompletedProcess, workdir)."""
  jobs = {"full": (tmp_path_factory.mktemp("full") / "run", TINY_FLAGS, "2"),
          "override": (tmp_path_factory.mktemp("override") / "r", TINY_FLAGS + OVERRIDES, "1")}
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    futures = {name: pool.submit(run_main, wd, *flags, env_devices=devices)
               for name, (wd, flags, devices) in jobs.items()}
    return {name: (f.result(), jobs[name][0]) for name, f in futures.items()}


def test_main_leaves_the_full_workdir(runs):
  out, wd = runs["full"]
  assert out.returncode == 0, out.stderr[-3000:]

  cfg = json.loads((wd / "config.json").read_text())
  assert cfg["train"]["num_steps"] == 6 and cfg["data"]["source"] == "digits"

  rows = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [2, 4, 6]
  for r in rows:
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "steps_per_sec", "images_per_sec"):
      assert key in r
    assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 and np.isfinite(r["d_loss"])
  assert rows[-1]["images_per_sec"] == rows[-1]["steps_per_sec"] * 16

  pngs = sorted(os.listdir(wd / "samples"))
  assert pngs == ["step_00000000.png", "step_00000004.png", "step_00000006.png"]
  grid = np.asarray(Image.open(wd / "samples" / pngs[-1]))
  assert grid.ndim == 2 and grid.shape[0] >= 8 * 8  # 8x8 grid of 8-px digits, upscaled
  assert not np.array_equal(grid, np.asarray(Image.open(wd / "samples" / pngs[0])))

  events = glob.glob(str(wd / "tensorboard" / "events.out.tfevents.*"))
  assert events and os.path.getsize(events[0]) > 0
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  acc = EventAccumulator(str(wd / "tensorboard")).Reload()
  assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(acc.Tags()["scalars"])
  assert [e.step for e in acc.Scalars("g_loss")] == [2, 4, 6]
  assert "samples" in acc.Tags()["images"]

  assert sorted(os.listdir(wd / "checkpoints")) == ["4", "6"]
  assert "step 6/6" in out.stdout and "steps/s" in out.stdout and "ETA" in out.stdout


def test_config_override_from_the_command_line(runs):
  out, wd = runs["override"]
  assert out.returncode == 0, out.stderr[-3000:]
  cfg = json.loads((wd / "config.json").read_text())
  assert cfg["train"]["loss"] == "minimax" and cfg["model"]["name"] == "mlp"
  assert cfg["model"]["g_hidden"] == [32]
