"""Trains the LeNet feature extractor used by the metrics, from any data source
with labels 0-9 (the LeNet has 10 classes; other labels are refused).

On the shared MNIST test set (what the shipped weights were trained on: after a
seeded shuffle, the first 1,000 digits held out and the other 9,000 for training):

  python scripts/train_classifier.py --source=idx --path=../shared/data/mnist \
    --split=test --holdout=1000 --out=gan_jax/metrics/weights/lenet_mnist.msgpack

(--split=test is also what --source=idx picks by itself for a folder without
train files.)

With the full TFDS MNIST (60k train, evaluated on the 10k test split):

  python scripts/train_classifier.py --source=tfds --name=mnist --split=train \
    --eval_split=test --holdout=0

Offline, a TFDS dataset not yet prepared is refused at once: pass --data_dir=DIR
where it is prepared, or --manual_dir=DIR holding its source files.

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
from gan_jax.data.common import to_signed  # noqa: E402
from gan_jax.config import ConfigError, base_config, check_tfds_available  # noqa: E402
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
flags.DEFINE_string("manual_dir", "", "TFDS manual_dir: a folder holding the dataset's source "
                    "files, to prepare it from without a network.")
flags.DEFINE_integer("holdout", 1000, "Examples held out for evaluation.")
flags.DEFINE_integer("epochs", 8, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_float("lr", 1e-3, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed for the split, init and shuffling.")
flags.DEFINE_string("out", LENET_WEIGHTS, "Where to write the msgpack weights.")
FLAGS = flags.FLAGS
SOURCES = ("digits", "folder", "idx", "tfds")  # the data sources with labelled images
_FLAG_OF = {"source", "path", "name", "data_dir", "manual_dir"}  # config.data keys with a flag


def _data_config(split: str):
  c = base_config().data
  c.source, c.path, c.name, c.split, c.data_dir, c.manual_dir = (
      FLAGS.source, FLAGS.path, FLAGS.name, split, FLAGS.data_dir, FLAGS.manual_dir)
  c.image_size, c.channels = 28, 1
  return c


def _error(e: Exception, flag: str = "--split") -> SystemExit:
  """The data layer's one-line error, naming this script's flags, not the config keys
  behind them (config.data.split is `flag`)."""
  text = str(e)
  if flag == "--eval_split":  # the split the folder has is the training one
    text = re.sub(r"; use config\.data\.split='\w+'", "", text)
  text = re.sub(r"(?:--)?config\.data\.split", flag, text)
  text = re.sub(r"(?:--)?config\.data\.(\w+)",
                lambda m: "--" + m[1] if m[1] in _FLAG_OF else m[0], text)
  return SystemExit("error: " + text)


def _load(split: str, flag: str):
  try:
    ds = data.load(_data_config(split))
  except data.DataError as e:
    raise _error(e, flag) from None
  if ds.labels is None:
    raise SystemExit(f"error: --source={FLAGS.source} has no labels; a classifier needs them")
  # an out-of-range label makes the cross-entropy NaN: the script used to train NaN
  # weights and write them (by default over the shipped ones) with exit status 0
  n = LeNet.num_classes
  lo, hi = int(ds.labels.min()), int(ds.labels.max())
  if lo < 0 or hi >= n:
    raise SystemExit(f"error: the labels of --source={FLAGS.source} {flag}={split!r} run from "
                     f"{lo} to {hi}; the LeNet has {n} classes and needs labels 0 to {n - 1}")
  return to_signed(ds.images), ds.labels


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


def _check_out(out: str) -> None:
  """--out must be a file in a folder that exists or can be made; nothing is made here."""
  if not out:
    raise SystemExit("error: --out is empty; give the path of the .msgpack file to write")
  if out.endswith(("/", os.sep)) or os.path.isdir(out):
    raise SystemExit(f"error: --out={out!r} is a folder; give a file path, e.g. "
                     f"{os.path.join(out, 'lenet.msgpack')}")
  parent = os.path.dirname(os.path.abspath(out))
  while not os.path.exists(parent):  # the nearest folder that is already there
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise SystemExit(f"error: --out={out!r} cannot be written: {parent} is a file, not a folder")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise SystemExit(f"error: --out={out!r} cannot be written: no write permission in {parent}")


def _check_flags():
  if FLAGS.source not in SOURCES:
    what = "holds no images" if FLAGS.source in data.SOURCES else "is unknown"
    raise SystemExit(f"error: --source={FLAGS.source!r} {what}; valid: {', '.join(SOURCES)}")
  for name in ("epochs", "batch_size"):
    if FLAGS[name].value < 1:
      raise SystemExit(f"error: --{name}={FLAGS[name].value} must be >= 1")
  if not FLAGS.lr > 0 or FLAGS.lr == float("inf"):  # (NaN fails the first test)
    raise SystemExit(f"error: --lr={FLAGS.lr} must be a positive, finite learning rate")
  _check_out(FLAGS.out)
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
  if FLAGS.source == "tfds":  # offline, TFDS would retry its downloads for minutes
    try:
      check_tfds_available(_data_config(FLAGS.split))
    except (data.DataError, ConfigError) as e:
      raise _error(e) from None


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
  if FLAGS.batch_size > len(x):  # known only now; an epoch would run no step at all
    raise SystemExit(f"error: --batch_size={FLAGS.batch_size} is larger than the training "
                     f"set of {len(x)} images; use at most {len(x)}")
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
