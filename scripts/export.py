"""Exports a trained generator alone: its parameters and a model card.

  python scripts/export.py --workdir=/tmp/mnist --out=/tmp/mnist_G [--step=best]

Writes OUT/generator.msgpack (the generator's params and BatchNorm statistics,
flax.serialization msgpack: arrays only, no pickle, no code) and
OUT/model_card.json (format, config, step, the metrics logged at that step,
parameter count, checksum, date). `gan_jax.analysis.load_run(OUT)` and
`scripts/sample.py --workdir=OUT` use it without the training state and give
the same images as the checkpoint it came from. --step: best, latest or a step
number; by default best when the run was evaluated, else latest. --out must be
new or empty (or --overwrite), and never a training workdir or a folder inside
one, this run's or another's (such as W/checkpoints or W/export). Bad input prints
one line and exits non-zero.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def training_workdir_above(path: str) -> str | None:
  """The nearest folder above `path` (real path) that holds a training run
  (config.json and metrics.jsonl, as gan_jax.train writes them), or None."""
  parent = os.path.dirname(os.path.realpath(path))
  while True:
    if all(os.path.isfile(os.path.join(parent, f)) for f in ("config.json", "metrics.jsonl")):
      return parent
    if os.path.dirname(parent) == parent:
      return None
    parent = os.path.dirname(parent)


class Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv=None) -> int:
  p = Parser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="training workdir")
  p.add_argument("--out", required=True, help="folder to write the export into")
  p.add_argument("--step", default=None, help="best, latest or a step number")
  p.add_argument("--overwrite", action="store_true", help="replace an existing export in --out")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  if not os.path.isdir(args.workdir):
    p.error(f"--workdir={args.workdir!r} is not a folder")
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    p.error(f"--out={args.out!r} is a file; give a folder")
  work, out = os.path.realpath(args.workdir), os.path.realpath(args.out)
  if out.startswith(work + os.sep):  # (the workdir itself is refused below)
    p.error(f"--out={args.out!r} is inside the training workdir {args.workdir!r}; give a "
            "folder outside it")
  other = training_workdir_above(args.out)
  if other is not None:
    p.error(f"--out={args.out!r} is inside the training workdir {other!r}; give a folder "
            "outside every run")
  if os.path.isdir(args.out):
    held = set(os.listdir(args.out))
    if held & {"checkpoints", "metrics.jsonl", "config.json"}:
      p.error(f"--out={args.out!r} is a training workdir; give a folder of its own")
    if held and not args.overwrite:
      p.error(f"--out={args.out!r} is not empty; pass --overwrite to replace the export there")
  from gan_jax import analysis
  from gan_jax.checkpoint import CheckpointError
  from gan_jax.cli import quiet_background_errors
  quiet_background_errors()  # a corrupt checkpoint: its one line, not Orbax's tracebacks
  if os.path.isfile(os.path.join(args.workdir, analysis.CARD_FILE)):
    p.error(f"--workdir={args.workdir!r} is already an export")
  try:
    run = analysis.load_run(args.workdir, args.step)
    card = analysis.export(run, args.out)
  except (CheckpointError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"exported the generator of {args.workdir} at step {run.step} to {args.out} "
        f"({os.path.basename(card)}, {analysis.PARAMS_FILE})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
