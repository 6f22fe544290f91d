"""Entry point: `python -m gan_jax.main --config=experiments/mnist.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.batch_size=128`.
Running the same command again continues the run from its latest checkpoint
(`--force_resume` if the config changed). Bad settings, a missing config file
or unusable data print one line naming the setting, write nothing and exit
non-zero (add `--verbose` for the traceback). SIGTERM/SIGINT save and exit 0.
"""
from __future__ import annotations

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_bool("force_resume", False, "Resume even if the saved config differs.")
flags.DEFINE_bool("verbose", False, "Show tracebacks for configuration and data errors.")


def _fail(message: str, code: int = 1):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def _flag_error(argv: list[str], e: Exception) -> str:
  """One line for a failure to parse the flags or load the config file."""
  config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if config_arg is not None:
    path = config_arg.split(":", 1)[0]
    if not os.path.isfile(path):
      return (f"--config={config_arg}: no such file; pass an experiment config such as "
              "experiments/digits.py")
  if isinstance(e, (KeyError, AttributeError)):  # an override names a missing field
    key = str(e).strip("'\"")
    for a in argv:
      name = a.split("=", 1)[0]
      if name.startswith("--config.") and key in name.split(".")[1:]:
        return f"{name}: the config has no such setting"
  if isinstance(e, flags.Error):
    return str(e).splitlines()[0]
  text = " ".join(str(e).split())
  text = re.sub(r"^Configuration is not available because of an earlier failure to load: ",
                "", text)
  return f"--config={config_arg}: could not be loaded ({type(e).__name__}: {text[:300]})"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, but every failure is one line on stderr and exit code 2."""
  try:
    rest = FLAGS(argv)
    # The config file loads lazily, on first attribute access: load it now, so
    # that a missing or broken file fails here, as one line.
    FLAGS.config.keys()
    return rest
  except Exception as e:  # flags.Error, or whatever loading the config file raised
    if "--verbose" in argv:
      raise
    _fail(_flag_error(argv, e), code=2)


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}", code=2)
  from gan_jax import train
  from gan_jax.checkpoint import CheckpointError
  from gan_jax.config import ConfigError
  from gan_jax.data import DataError
  logging.set_verbosity(logging.WARNING)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir, force_resume=FLAGS.force_resume)
  except (ConfigError, DataError, train.NonFiniteError, CheckpointError) as e:
    if FLAGS.verbose:
      raise
    _fail(str(e))
  except KeyboardInterrupt:  # a second Ctrl-C while the first one was being handled
    if FLAGS.verbose:
      raise
    _fail("interrupted twice: stopped without saving; the newest checkpoint is intact", 130)


def run():
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
  run()
