"""Trains the LeNet feature extractor used by the metrics, from any data source.

On the shared MNIST test set (what the shipped weights were trained on: the
first 9,000 digits after a seeded shuffle for training, the other 1,000 held out):

  python scripts/train_classifier.py --source=idx --path=../shared/data/mnist \
    --split=test --holdout=1000 --out=gan_jax/metrics/weights/lenet_mnist.msgpack

(--split=test is also what --source=idx picks by itself for a folder without
train files.)

With the full TFDS MNIST (60k train, evaluated on the 10k test split):

  python scripts/train_classifier.py --source=tfds --name=mnist --split=train \
    --eval_split=test --holdout=0

Prints the held-out accuracy; takes about a minute on a 2-core CPU.
"""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from gan_jax import data  # noqa: E402
from gan_jax.config import base_config  # noqa: E402
from gan_jax.data.idx import SPLITS, present  # noqa: E402
from gan_jax.metrics.features import LENET_WEIGHTS, LeNet, save_params  # noqa: E402

flags.DEFINE_string("source", "idx", "Data source: tfds, idx, folder or digits.")
flags.DEFINE_string("path", "../shared/data/mnist", "Folder for idx/folder sources.")
flags.DEFINE_string("name", "mnist", "TFDS dataset name.")
flags.DEFINE_string("split", "", "Split to train on: a TFDS split, or train/test/all for "
                    "--source=idx. Default: train, or for idx test when the folder has no "
                    "train files (the shared MNIST folder holds only the test set).")
flags.DEFINE_string("eval_split", "", "Split to evaluate on, instead of --holdout (tfds, idx).")
flags.DEFINE_string("data_dir", "", "TFDS data_dir.")
flags.DEFINE_integer("holdout", 1000, "Examples held out for evaluation.")
flags.DEFINE_integer("epochs", 8, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed for the split, init and shuffling.")
flags.DEFINE_string("out", LENET_WEIGHTS, "Where to write the msgpack weights.")
FLAGS = flags.FLAGS


def _load(split: str, flag: str):
  c = base_config().data
  c.source, c.path, c.name, c.split, c.data_dir = (FLAGS.source, FLAGS.path, FLAGS.name,
                                                   split, FLAGS.data_dir)
  c.image_size, c.channels = 28, 1
  try:
    ds = data.load(c)
  except data.DataError as e:  # name this script's flags, not the config keys behind them
    text = str(e)
    if flag == "--eval_split":  # the split the folder has is the training one
      text = re.sub(r"; use config\.data\.split='\w+'", "", text)
    raise SystemExit("error: " + text.replace("config.data.split", flag)
                     .replace("config.data.path", "--path")) from None
  if ds.labels is None:
    raise SystemExit(f"error: --source={FLAGS.source} has no labels; a classifier needs them")
  return ds.images.astype(np.float32) / 127.5 - 1, ds.labels


def accuracy(apply, params, x, y) -> float:
  preds = np.concatenate([np.argmax(np.asarray(apply(params, x[i:i + 1000])[1]), -1)
                          for i in range(0, len(x), 1000)])
  return float(np.mean(preds == y))


def _default_split() -> str:
  if FLAGS.split:
    return FLAGS.split
  if FLAGS.source == "idx" and os.path.isdir(FLAGS.path) and "train" not in present(FLAGS.path):
    print(f"--split=test: {FLAGS.path} holds no train files", flush=True)
    return "test"
  return "train"


def _check_flags():
  FLAGS.split = _default_split()
  if FLAGS.eval_split:
    if FLAGS.source not in ("tfds", "idx"):
      raise SystemExit(f"error: --eval_split needs --source=tfds or idx, not {FLAGS.source!r}; "
                       "use --holdout")
    overlap = (FLAGS.eval_split == FLAGS.split if FLAGS.source == "tfds" else
               set(SPLITS.get(FLAGS.split, ())) & set(SPLITS.get(FLAGS.eval_split, ())))
    if overlap:
      raise SystemExit(f"error: --eval_split={FLAGS.eval_split!r} overlaps "
                       f"--split={FLAGS.split!r}; held-out data must be disjoint")
  elif FLAGS.holdout <= 0:
    raise SystemExit(f"error: --holdout={FLAGS.holdout} must be positive without --eval_split")


def main(_):
  _check_flags()
  x, y = _load(FLAGS.split, "--split")
  if FLAGS.eval_split:
    x_test, y_test = _load(FLAGS.eval_split, "--eval_split")
  else:
    if FLAGS.holdout >= len(x):
      raise SystemExit(f"error: --holdout={FLAGS.holdout} leaves nothing to train on; the "
                       f"data holds {len(x)} images")
    perm = np.random.default_rng(FLAGS.seed).permutation(len(x))
    test, train = perm[:FLAGS.holdout], perm[FLAGS.holdout:]
    x, y, x_test, y_test = x[train], y[train], x[test], y[test]
  model, tx = LeNet(), optax.adam(FLAGS.lr)
  params = model.init(jax.random.PRNGKey(FLAGS.seed), x[:1])["params"]
  opt = tx.init(params)
  apply = jax.jit(lambda p, xb: model.apply({"params": p}, xb))

  @jax.jit
  def step(params, opt, xb, yb):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(apply(p, xb)[1], yb).mean()
    loss, g = jax.value_and_grad(loss_fn)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), opt, loss

  rng = np.random.default_rng(FLAGS.seed)
  bs = FLAGS.batch_size
  for epoch in range(FLAGS.epochs):
    perm = rng.permutation(len(x))
    for i in range(0, len(x) - bs + 1, bs):
      idx = perm[i:i + bs]
      params, opt, loss = step(params, opt, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
    print(f"epoch {epoch + 1}/{FLAGS.epochs}: loss {float(loss):.4f}, "
          f"held-out accuracy {accuracy(apply, params, x_test, y_test):.4f}", flush=True)
  acc = accuracy(apply, params, x_test, y_test)
  save_params(params, FLAGS.out)
  print(f"trained on {len(x)} images, held-out accuracy {acc:.4f} on {len(x_test)}; "
        f"wrote {FLAGS.out} ({os.path.getsize(FLAGS.out):,} bytes)")


if __name__ == "__main__":
  app.run(main)
