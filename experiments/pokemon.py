"""DCGAN on a folder of images: the 819 Pokemon artworks, 64x64 RGB.

  python -m gan_jax.main --config=experiments/pokemon.py --workdir=/tmp/pokemon \
    --config.data.path=../shared/data/pokemon

Images are resized and centre-cropped to 64x64 at load time. Measured on the
2-core CPU (batch 64): the step alone at 0.87 steps/s with the CPU default
model.patch_dots, against 0.76 without (same-process A/B, BENCHMARKS.md
"Eleventh session"). Before the patch dots: 0.72 steps/s on an idle machine
(2026-11-26: 100 steps in about 2.5 minutes; the step-100 grid shows pale backgrounds with dark,
checkerboard-textured blobs in the centre), 0.24-0.34 steps/s while other jobs
shared it (400 steps in 23 minutes). By 400 steps the samples have learned
the white background and show centred, multicoloured blobs with checkerboard
texture, not yet Pokemon shapes, so plan for many thousands of steps (a GPU).
819 images is a small dataset: watch for D overfitting (D(x) -> 1,
D(G(z)) -> 0).
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.data.source = "folder"
  c.data.path = "../shared/data/pokemon"
  c.data.image_size = 64
  c.data.channels = 3
  c.train.num_steps = 20_000
  c.train.sample_every = 500
  return c
