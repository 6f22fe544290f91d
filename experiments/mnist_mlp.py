"""The original GAN (Goodfellow et al. 2014): MLP G and D with the minimax loss.

  python -m gan_jax.main --config=experiments/mnist_mlp.py --workdir=/tmp/mlp \
    --config.data.source=idx --config.data.split=test --config.data.path=../shared/data/mnist

The minimax loss saturates early (the paper's Sec. 3 remark), so progress is
slower than with non_saturating; expect blurry digit-like strokes after a few
thousand steps.
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.model.name = "mlp"
  c.train.loss = "minimax"
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.train.num_steps = 10_000
  return c
