"""Entry point: `python -m gan_jax.main --config=experiments/mnist.py --workdir=DIR`.

Any config value can be overridden, e.g. `--config.train.batch_size=128`.
Bad settings print one line naming the setting and exit non-zero (add
`--verbose` for the traceback).
"""
from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
flags.DEFINE_bool("force_resume", False, "Resume even if the saved config differs.")
flags.DEFINE_bool("verbose", False, "Show tracebacks for configuration and data errors.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from gan_jax import train
  from gan_jax.config import ConfigError
  from gan_jax.data import DataError
  logging.set_verbosity(logging.WARNING)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir, force_resume=FLAGS.force_resume)
  except (ConfigError, DataError, train.NonFiniteError) as e:
    if FLAGS.verbose:
      raise
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


def run():
  flags.mark_flags_as_required(["config", "workdir"])
  try:
    app.run(main)
  except flags.IllegalFlagValueError as e:  # e.g. a missing or broken config file
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run()
