"""Compares two image sets by FID (and KID, IS, precision/recall, density/coverage).

  python scripts/fid.py A B [--extractor=inception_v3] [--metrics=fid,kid,prdc]

A and B are each a folder of images (.png .jpg .jpeg .bmp .tif .tiff .webp,
searched recursively, as fid-helper-pytorch does; grayscale files stay one
channel, everything else is read as RGB) or an .npz written by
scripts/sample.py or scripts/export.py (key 'images', uint8 N x H x W x C).
A is the reference (real) set, B the set under test: FID and KID are
symmetric, precision is B's images within A's manifold, IS is B's alone.
--extractor: inception_v3 (default; FIDs comparable with published ones, see
docs/reference.md) or lenet_mnist (digits). --metrics: any of
fid (default), kid, is, precision_recall, density_coverage, prdc, class_spread
(B's rarest and commonest class share by the LeNet's classes). Prints one
line per number, e.g. "fid: 12.3456". A folder's images are read and scored
500 at a time, so memory does not grow with it. Bad input (a missing path, no
images, an unknown name, too few images for a metric, missing weights) is one
line before any model is loaded, and a non-zero exit.
"""
from __future__ import annotations

import argparse
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
# The fewest images per set each metric needs: FID and KID a covariance or
# pairs, precision/recall and density/coverage their k+1 = 4 and 6 neighbours.
MIN_IMAGES = {"fid": 2, "kid": 2, "is": 1, "precision_recall": 4, "density_coverage": 6,
              "prdc": 6, "class_spread": 1}
CHUNK = 500


class Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def image_files(folder: str) -> list[str]:
  files = [os.path.join(root, f) for root, _, names in os.walk(folder) for f in names
           if f.lower().endswith(IMAGE_EXTENSIONS)]
  return sorted(files)


def npz_shape(path: str) -> tuple[int, ...]:
  """The shape of the .npz's 'images' array, read from its header alone."""
  with zipfile.ZipFile(path) as z:
    names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
    if "images" not in names:
      raise ValueError(f"holds no 'images' array (it has: {', '.join(names) or 'nothing'})")
    with z.open("images.npy") as f:
      fmt = np.lib.format
      read = (fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0)
              else fmt.read_array_header_2_0)
      shape, _, dtype = read(f)
  if dtype != np.uint8 or len(shape) not in (3, 4):
    raise ValueError(f"'images' must be uint8 N x H x W (x C), got {dtype} {shape}")
  return shape


def count_images(arg: str, path: str) -> int:
  """How many images `path` holds; ValueError naming the argument otherwise."""
  if os.path.isdir(path):
    n = len(image_files(path))
    if not n:
      raise ValueError(f"{arg}={path!r} holds no images ({' '.join(IMAGE_EXTENSIONS)})")
    return n
  if os.path.isfile(path) and path.endswith(".npz"):
    try:
      return npz_shape(path)[0]
    except (ValueError, zipfile.BadZipFile, OSError) as e:
      raise ValueError(f"{arg}={path!r} {e}") from None
  if os.path.exists(path):
    raise ValueError(f"{arg}={path!r} is neither a folder of images nor an .npz")
  raise ValueError(f"{arg}={path!r} does not exist; give a folder of images or an .npz")


def parse(argv):
  from gan_jax import metrics
  from gan_jax.metrics.features import EXTRACTORS, NO_LOGITS, check_weights
  p = Parser(description=__doc__.splitlines()[0])
  p.add_argument("a", metavar="A", help="reference images: folder or .npz")
  p.add_argument("b", metavar="B", help="images to score: folder or .npz")
  p.add_argument("--extractor", default="inception_v3", help=", ".join(sorted(EXTRACTORS)))
  p.add_argument("--metrics", default="fid", help="comma-separated: " + ", ".join(metrics.METRICS))
  p.add_argument("--seed", type=int, default=0, help="KID's subset draws")
  args = p.parse_args(argv)
  if args.seed < 0:
    p.error(f"--seed={args.seed} must be >= 0")
  if args.extractor not in EXTRACTORS:
    p.error(f"--extractor={args.extractor!r} is unknown; valid: {', '.join(sorted(EXTRACTORS))}")
  args.metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
  for m in args.metrics or [""]:
    if m not in metrics.METRICS:
      p.error(f"--metrics: {m!r} is unknown; valid: {', '.join(metrics.METRICS)}")
  for m in ("is", "class_spread"):
    if m in args.metrics and args.extractor in NO_LOGITS:
      p.error(f"--metrics={m} needs logits, which --extractor={args.extractor} does not give; "
              f"use --extractor=lenet_mnist, or drop {m}")
  try:
    args.counts = [count_images(arg, path) for arg, path in (("A", args.a), ("B", args.b))]
  except ValueError as e:
    p.error(str(e))
  least = max(MIN_IMAGES[m] for m in args.metrics)
  if min(args.counts) < least:
    p.error(f"A holds {args.counts[0]} images and B {args.counts[1]}; --metrics="
            f"{','.join(args.metrics)} needs at least {least} in each")
  try:
    check_weights(args.extractor)
  except FileNotFoundError as e:
    p.error(f"--extractor={args.extractor}: {e}")
  return args


def read_image(path: str) -> np.ndarray:
  from PIL import Image
  with Image.open(path) as im:
    im = im.convert("L" if im.mode in GRAY_MODES else "RGB")
    x = np.asarray(im, np.uint8)
  return x[..., None] if x.ndim == 2 else x


def chunks(path: str):
  """The images of `path` as uint8 NHWC arrays, CHUNK at a time, one shape per array."""
  if os.path.isdir(path):
    files = image_files(path)
    for i in range(0, len(files), CHUNK):
      by_shape: dict[tuple, list] = {}
      for f in files[i:i + CHUNK]:
        x = read_image(f)
        by_shape.setdefault(x.shape, []).append(x)
      yield from (np.stack(group) for group in by_shape.values())
  else:
    with np.load(path) as z:
      images = z["images"]
    images = images[..., None] if images.ndim == 3 else images
    yield from (images[i:i + CHUNK] for i in range(0, len(images), CHUNK))


def features(extract, path: str):
  feats, logits = zip(*(extract(x) for x in chunks(path)))
  return np.concatenate(feats), None if logits[0] is None else np.concatenate(logits)


def main(argv=None) -> int:
  args = parse(sys.argv[1:] if argv is None else argv)
  from gan_jax import metrics
  from gan_jax.metrics.features import get_extractor
  extract = get_extractor(args.extractor)
  print(f"A: {args.counts[0]} images ({args.a}); B: {args.counts[1]} images ({args.b}); "
        f"features: {args.extractor}", flush=True)
  fa, la = features(extract, args.a)
  fb, lb = features(extract, args.b)
  out = metrics.compute(args.metrics, fa, fb, real_logits=la, fake_logits=lb, rng=args.seed)
  for k, v in out.items():
    print(f"{k}: {v:.8g}")
  return 0


if __name__ == "__main__":
  from gan_jax.cli import run_script
  run_script(main)
