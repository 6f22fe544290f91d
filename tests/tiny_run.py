"""One tiny evaluated DCGAN run on the offline `digits` data, trained once per
pytest run (in a subprocess, on 2 fake CPU devices) and shared by
test_analysis.py, test_scripts_sample_export.py and test_notebook.py: 6 steps,
checkpoints at 4 and 6, eval rows at 4 and 6. Only read it; copy it to modify."""
import os
import subprocess
import sys
import tempfile

from conftest import REPO

FLAGS = ["--config.model.z_dim=16", "--config.model.g_features=8",
         "--config.model.d_features=8", "--config.train.batch_size=16",
         "--config.train.num_steps=6", "--config.train.log_every=2",
         "--config.train.sample_every=6", "--config.checkpoint.every=4",
         "--config.eval.every=2", "--config.eval.num_samples=64"]


def env(devices: int = 1) -> dict:
  """Subprocess environment: the repo importable, N fake CPU devices, and the
  persistent compilation cache the other subprocess tests share."""
  return {**os.environ, "JAX_NUM_CPU_DEVICES": str(devices), "CUDA_VISIBLE_DEVICES": "",
          "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
          "JAX_COMPILATION_CACHE_DIR": os.path.join(tempfile.gettempdir(),
                                                    "gan_jax_tests_jax_cache"),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def trained_run(tmp_path_factory):
  """The workdir of the shared run (trains it on first use in this pytest run)."""
  root = tmp_path_factory.getbasetemp() / "tiny_evaluated_run"
  workdir = root / "run"
  if not (root / "DONE").exists():
    root.mkdir(exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "gan_jax.main", "--config=experiments/digits.py",
                          f"--workdir={workdir}", *FLAGS], cwd=REPO, env=env(2),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    (root / "DONE").touch()
  return workdir
