"""The MLP GAN of Goodfellow et al. 2014 on MNIST with the minimax loss (the paper's Eq. 1).

  python -m gan_jax.main --config=experiments/mnist_mlp_minimax.py --workdir=/tmp/mlp_mm \
    --config.data.source=idx --config.data.split=test --config.data.path=../shared/data/mnist \
    --config.eval.every=2500

The model of experiments/mnist_mlp.py; G minimises log(1 - D(G(z))), which
saturates when D rejects the fakes. Here D never gets that far (D(G(z)) stays
0.25-0.55) and it learns: seeds 0/1, LeNet FID 29.2/30.8 at 10,000 steps
(floor 7.1; about 76 at 5,000), every class 8-13% of samples; 8-9.5 min on
2 shared CPU cores. To watch it saturate, use the 2014-style G and a larger D:
  --config.model.g_norm=none --config.model.g_activation=relu \
    --config.model.d_hidden="(1024,512,256)" --config.train.num_steps=5000
D(x) reaches 0.998 and D(G(z)) 0.0035 by step 1,000, and G's gradient norm
(g_grad_norm) falls from 1.1 at step 100 to 0.06 at 1,000 and 2e-4 at 3,500:
64 copies of one speckled blob, FID 1,273. The non-saturating loss on that
setup keeps G's gradient (norm 4-18) but collapses to one digit (97.6% of
samples, FID 1,124): docs/mlp_gan_curves.png shows the four runs side by side.
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.model.name = "mlp"
  c.model.g_norm = "batchnorm"      # without it D wins and G collapses (model docstring)
  c.model.g_activation = "leaky_relu"
  c.model.d_hidden = (512, 256)
  c.train.loss = "minimax"
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.train.num_steps = 10_000
  return c
