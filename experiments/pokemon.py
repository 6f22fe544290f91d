"""DCGAN on a folder of images: the 819 Pokemon artworks, resized and cropped to 64x64 RGB.

  python -m gan_jax.main --config=experiments/pokemon.py --workdir=/tmp/pokemon \
    --config.data.path=../shared/data/pokemon

On 2 idle CPU cores the step runs at 0.72-0.87 steps/s (100 steps took about 2.5
minutes; 0.24-0.34 steps/s on a shared machine), so the 20,000 steps want a GPU (not
measured there). At step 100 the grid shows pale backgrounds with dark,
checkerboard-textured blobs; by step 400, a white background with centred multicoloured
blobs, not yet Pokemon shapes. 819 images is a small dataset: watch for D overfitting
(D(x) -> 1, D(G(z)) -> 0).
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
