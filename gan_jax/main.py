"""Entry point: `python -m gan_jax.main --config=experiments/mnist.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.batch_size=128`.
Running the same command again continues the run from its latest checkpoint
(`--force_resume` if the config changed). Bad settings, a missing config file
or unusable data print one line naming the setting, write nothing and exit
non-zero (add `--verbose` for the traceback). A checkpoint save that fails
(a full disk) also ends the run with one line, naming the last good
checkpoint, which a rerun resumes from. SIGTERM/SIGINT save and exit 0.
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gan_jax import signals
from gan_jax.cli import fail, parse_flags, quiet_background_errors

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_bool("force_resume", False, "Resume even if the saved config differs.")
flags.DEFINE_bool("verbose", False, "Show tracebacks for configuration and data errors.")


def main(argv):
  if len(argv) > 1:
    fail(f"unexpected arguments: {' '.join(argv[1:])}", code=2)
  from gan_jax import train
  from gan_jax.checkpoint import CheckpointError
  from gan_jax.config import ConfigError
  from gan_jax.data import DataError
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.verbose:
    quiet_background_errors()
  try:
    signals.raise_if_interrupted_early()
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir, force_resume=FLAGS.force_resume)
  except (ConfigError, DataError, train.NonFiniteError, train.WriteError,
          CheckpointError) as e:
    if FLAGS.verbose:
      raise
    fail(str(e))
  except signals.SecondSignal:  # a second Ctrl-C while the first one was being handled
    if FLAGS.verbose:
      raise
    fail("interrupted twice: stopped without saving; the newest checkpoint is intact", 130)
  except KeyboardInterrupt:  # before the stop handlers were in place
    if FLAGS.verbose:
      raise
    _interrupted_before_training()


def _interrupted_before_training():
  fail("interrupted before training began: nothing was saved; the workdir's checkpoints, "
       "if any, are intact", 130)


def run():
  flags.mark_flags_as_required(["config", "workdir"])
  signals.defer_early_interrupts()  # loading the config file imports JAX
  try:
    app.run(main, flags_parser=parse_flags)
  except KeyboardInterrupt:  # while the flags were parsed, before main
    if "--verbose" in sys.argv:
      raise
    _interrupted_before_training()


if __name__ == "__main__":
  run()
