"""Writes N samples of a trained generator, as PNG files or one .npz.

  python scripts/sample.py --workdir=/tmp/mnist --num=10000 --out=/tmp/samples.npz
  python scripts/sample.py --workdir=/tmp/mnist --num=64 --out=/tmp/samples --step=latest

--workdir is a training workdir or a folder written by scripts/export.py.
--step: best (by the run's eval metric), latest or a step number; by default
best when the run was evaluated, else latest. --format: png (out/000000.png,
000001.png, ...) or npz (key 'images': uint8 N x H x W x C); by default npz
when --out ends in .npz. Runs on the 2-D toy data write npz only, with key
'points' (float32 N x 2), unclipped. --overwrite into a PNG folder first
removes the numbered PNGs an earlier call wrote there (it leaves a hidden
.gan_jax_samples.json beside them); it refuses a folder whose numbered PNGs
this script did not write, rather than replace them. Sample i comes from
fold_in(PRNGKey(seed), i), so the files are byte-identical for the same
checkpoint, seed and batch size. Images are generated and written batch by
batch; the .npz is streamed into its zip entry, so memory does not grow with
--num. --truncation=T resamples latent
components with |z| > T (the truncation trick). --labels is for
class-conditional generators; no model in gan_jax is one yet, so it is refused.
Bad input prints one line and exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from gan_jax.files import atomic_write  # noqa: E402

FORMATS = ("png", "npz")
# Written into a PNG folder before its samples: numbered PNGs are ours to replace
# only where it is (hidden: the folder data source does not read it).
MARKER = ".gan_jax_samples.json"
NUMBERED = re.compile(r"\d+\.png(\.tmp)?")  # (.tmp: a write a killed run left)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)   # fixed, so the same samples give the same bytes


class Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse(argv):
  p = Parser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="training workdir or export folder")
  p.add_argument("--num", type=int, required=True, help="number of images")
  p.add_argument("--out", required=True, help="folder (png) or .npz file")
  p.add_argument("--format", choices=FORMATS, help="png or npz (default: from --out)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--step", default=None, help="best, latest or a step number")
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--truncation", type=float, default=None)
  p.add_argument("--labels", default=None, help="class labels (conditional models only)")
  p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  args = p.parse_args(argv)
  if args.num < 1 or args.batch_size < 1:
    p.error(f"--num={args.num} and --batch_size={args.batch_size} must be positive")
  if not 0 <= args.seed < 2**32:
    p.error(f"--seed={args.seed} must be in [0, 2**32) (JAX keys keep 32 bits)")
  if args.truncation is not None and not args.truncation > 0:
    p.error(f"--truncation={args.truncation} must be a positive number")
  args.format = args.format or ("npz" if args.out.endswith(".npz") else "png")
  if not os.path.isdir(args.workdir):
    p.error(f"--workdir={args.workdir!r} is not a folder")
  _check_out(p, args)
  return args


def _check_out(p, args) -> None:
  out = args.out
  if args.format == "npz":
    if os.path.isdir(out):
      p.error(f"--out={out!r} is a folder; --format=npz writes one file")
    if os.path.exists(out) and not args.overwrite:
      p.error(f"--out={out!r} exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(out))
  else:
    if os.path.exists(out) and not os.path.isdir(out):
      p.error(f"--out={out!r} is a file; --format=png writes a folder of PNGs")
    names = os.listdir(out) if os.path.isdir(out) else []
    if names and not args.overwrite:
      p.error(f"--out={out!r} is not empty; pass --overwrite to write into it")
    if MARKER not in names and any(NUMBERED.fullmatch(n) for n in names):
      p.error(f"--out={out!r} holds numbered PNGs that scripts/sample.py did not write "
              f"(it finds no {MARKER}); --overwrite replaces only its own: use another folder")
    parent = os.path.dirname(os.path.abspath(out))
  if not os.path.isdir(parent):
    p.error(f"--out={out!r}: folder {parent!r} does not exist")


def to_uint8(images: np.ndarray) -> np.ndarray:
  return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def write_pngs(batches, out: str, num: int, about: dict) -> None:
  from gan_jax.writers import save_png
  os.makedirs(out, exist_ok=True)
  with atomic_write(os.path.join(out, MARKER)) as f:  # before any sample: see MARKER
    json.dump({**about, "num": num}, f, sort_keys=True)
  for name in os.listdir(out):  # an earlier, larger --num must not leave extra samples
    if NUMBERED.fullmatch(name):
      os.remove(os.path.join(out, name))
  width, i = max(6, len(str(num - 1))), 0
  for batch in batches:
    for img in to_uint8(batch):
      save_png(img, os.path.join(out, f"{i:0{width}d}.png"))  # atomic: never a torn PNG
      i += 1


def to_points(batch: np.ndarray) -> np.ndarray:
  return batch.reshape(len(batch), -1).astype(np.float32)


def write_npz(batches, out: str, num: int, shape, key: str = "images",
              convert=to_uint8, dtype=np.uint8) -> None:
  """np.load-able .npz with `key` (by default 'images', uint8, num x H x W x C),
  streamed: the .npy header is written first, then each batch's bytes (C order)."""
  header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False, "shape": (num, *shape)}
  info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_TIME)
  info.compress_type = zipfile.ZIP_DEFLATED
  info.external_attr = 0o644 << 16
  with atomic_write(out, "wb") as raw, zipfile.ZipFile(raw, "w") as zf, \
      zf.open(info, "w", force_zip64=True) as f:
    np.lib.format.write_array_header_1_0(f, header)
    for batch in batches:
      f.write(np.ascontiguousarray(convert(batch), dtype=dtype).tobytes())


def main(argv=None) -> int:
  args = parse(sys.argv[1:] if argv is None else argv)
  from gan_jax import analysis
  from gan_jax.checkpoint import CheckpointError
  from gan_jax.cli import quiet_background_errors
  quiet_background_errors()  # a corrupt checkpoint: its one line, not Orbax's tracebacks
  try:
    run = analysis.load_run(args.workdir, args.step)
    toy = run.config.data.source == "toy"
    if toy and args.format == "png":
      raise ValueError(f"{args.workdir} is a 2-D toy run: its samples are points, not "
                       "images; use --format=npz (key 'points')")
    labels = None if args.labels is None else args.labels.split(",")
    batches = run.iter_samples(args.num, args.seed, args.truncation, labels, args.batch_size)
    first = next(batches)  # fails here on bad labels, before anything is written
  except (CheckpointError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  batches = _chain(first, batches)
  if args.format == "png":
    write_pngs(batches, args.out, args.num, {"workdir": os.path.abspath(args.workdir),
                                             "step": run.step, "seed": args.seed})
  elif toy:
    write_npz(batches, args.out, args.num, (int(np.prod(first.shape[1:])),), key="points",
              convert=to_points, dtype=np.float32)
  else:
    write_npz(batches, args.out, args.num, first.shape[1:])
  print(f"wrote {args.num} samples of {args.workdir} at step {run.step} (seed {args.seed}) "
        f"to {args.out}")
  return 0


def _chain(first, rest):
  yield first
  yield from rest


if __name__ == "__main__":
  sys.exit(main())
