"""scripts/sample.py and scripts/export.py as a user runs them (subprocesses on
1 device, against the shared tiny run trained on 2): byte-identical output for
the same seed and checkpoint, PNG and npz agree, an export samples exactly like
its checkpoint, and bad input is one line and a non-zero exit."""
import concurrent.futures
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from tiny_run import env, trained_run

SAMPLE, EXPORT = str(REPO / "scripts" / "sample.py"), str(REPO / "scripts" / "export.py")


def script(*args, timeout=300):
  return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env(1),
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def outputs(workdir, tmp_path_factory):
  """Runs the scripts: each sample command twice, and sample on an export."""
  d = tmp_path_factory.mktemp("outputs")
  common = ["--num=11", "--batch_size=4", "--seed=7", "--step=4"]
  jobs = {f"png{i}": (SAMPLE, f"--workdir={workdir}", f"--out={d}/png{i}", *common)
          for i in (1, 2)}
  jobs.update({f"npz{i}": (SAMPLE, f"--workdir={workdir}", f"--out={d}/s{i}.npz", *common)
               for i in (1, 2)})
  jobs["export"] = (EXPORT, f"--workdir={workdir}", "--step=4", f"--out={d}/export")
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    done = {k: pool.submit(script, *v) for k, v in jobs.items()}
    results = {k: f.result() for k, f in done.items()}
  results["from_export"] = script(SAMPLE, f"--workdir={d}/export", f"--out={d}/e.npz",
                                  "--num=11", "--batch_size=4", "--seed=7")
  for k, r in results.items():
    assert r.returncode == 0, (k, r.stderr[-3000:])
  return d, results


def test_sample_is_byte_identical_across_runs(outputs):
  d, results = outputs
  assert "at step 4" in results["png1"].stdout
  names = sorted(p.name for p in (d / "png1").iterdir())
  assert names == [".gan_jax_samples.json"] + [f"{i:06d}.png" for i in range(11)]
  for n in names:
    assert (d / "png1" / n).read_bytes() == (d / "png2" / n).read_bytes()
  assert (d / "s1.npz").read_bytes() == (d / "s2.npz").read_bytes()


def test_npz_holds_the_same_uint8_images_as_the_pngs(outputs, workdir):
  d, _ = outputs
  with np.load(d / "s1.npz") as f:
    assert f.files == ["images"]
    images = f["images"]
  assert images.dtype == np.uint8 and images.shape == (11, 8, 8, 1)
  assert images.std() > 0
  for i in (0, 5, 10):
    np.testing.assert_array_equal(np.asarray(Image.open(d / "png1" / f"{i:06d}.png")),
                                  images[i, ..., 0])
  from gan_jax import analysis
  expect = analysis.load_run(workdir, 4).sample(11, seed=7, batch_size=4)
  u8 = np.clip(np.round((expect + 1) * 127.5), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(u8, images)  # 4 devices here, 1 in the script


def test_export_samples_like_its_checkpoint(outputs):
  d, results = outputs
  card = json.loads((d / "export" / "model_card.json").read_text())
  assert card["step"] == 4 and "eval/fid" in card["metrics"]
  blob = (d / "export" / "generator.msgpack").read_bytes()
  assert not blob.startswith(b"\x80")  # msgpack, not a pickle
  assert "at step 4" in results["from_export"].stdout
  with np.load(d / "e.npz") as a, np.load(d / "s1.npz") as b:
    np.testing.assert_array_equal(a["images"], b["images"])


def test_write_npz_streams_batches(tmp_path):
  sys.path.insert(0, str(REPO / "scripts"))
  try:
    import sample
  finally:
    sys.path.remove(str(REPO / "scripts"))
  seen = []

  def batches():
    for i in range(3):
      seen.append(i)
      yield np.full((4, 2, 2, 1), i / 2 - 0.5, np.float32)

  out = tmp_path / "x.npz"
  sample.write_npz(batches(), str(out), 12, (2, 2, 1))
  with zipfile.ZipFile(out) as zf:
    assert zf.namelist() == ["images.npy"]
  with np.load(out) as f:
    x = f["images"]
  assert seen == [0, 1, 2] and x.shape == (12, 2, 2, 1)
  np.testing.assert_array_equal(x[:, 0, 0, 0], np.repeat([64, 128, 191], 4))


@pytest.mark.parametrize("args, message", [
    (["--num=0", "--out={t}/a"], "--num=0 and --batch_size=256 must be positive"),
    (["--num=x", "--out={t}/a"], "invalid int value"),
    (["--num=2", "--out={t}/a", "--format=gif"], "invalid choice: 'gif'"),
    (["--num=2", "--out={t}/no/such/a.npz"], "does not exist"),
    (["--num=2", "--out={t}/a", "--step=5"], "no checkpoint at step 5; available: 2, 4, 6"),
    (["--num=2", "--out={t}/a", "--labels=1,2"], "unconditional"),
    (["--num=2", "--out={t}/a", "--truncation=-1"], "must be a positive number"),
    (["--num=2", "--out={t}/a", f"--seed={2**32}"], "must be in [0, 2**32)"),
])
def test_sample_bad_input_is_one_line(workdir, tmp_path, args, message):
  out = script(SAMPLE, f"--workdir={workdir}", *[a.format(t=tmp_path) for a in args])
  assert out.returncode != 0 and out.stdout == ""
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
  assert not (tmp_path / "a").exists()


def test_export_and_sample_refuse_missing_workdirs(tmp_path):
  for cmd in ([SAMPLE, "--num=2", f"--out={tmp_path}/a"], [EXPORT, f"--out={tmp_path}/a"]):
    out = script(*cmd, f"--workdir={tmp_path}/missing")
    assert out.returncode != 0
    assert out.stderr.strip() == f"error: --workdir='{tmp_path}/missing' is not a folder"


def _import_script(name):
  sys.path.insert(0, str(REPO / "scripts"))
  try:
    return __import__(name)
  finally:
    sys.path.remove(str(REPO / "scripts"))


def test_sample_overwrite_leaves_no_stale_pngs(workdir, tmp_path):
  sample = _import_script("sample")
  (tmp_path / "pngs").mkdir()
  (tmp_path / "pngs" / "notes.txt").write_text("kept")
  assert sample.main([f"--workdir={workdir}", "--num=5", f"--out={tmp_path}/pngs",
                      "--overwrite"]) == 0
  (tmp_path / "pngs" / "000007.png.tmp").write_bytes(b"\x89PNG half")  # a killed write's
  assert sample.main([f"--workdir={workdir}", "--num=2", f"--out={tmp_path}/pngs",
                      "--overwrite"]) == 0
  assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [
      ".gan_jax_samples.json", "000000.png", "000001.png", "notes.txt"]
  about = json.loads((tmp_path / "pngs" / ".gan_jax_samples.json").read_text())
  assert about["num"] == 2 and about["seed"] == 0 and about["step"] >= 4


def test_sample_overwrite_refuses_numbered_pngs_it_did_not_write(workdir, tmp_path):
  # --overwrite used to delete every <digits>.png in --out: a folder of numbered
  # dataset images would have lost them
  theirs = tmp_path / "theirs"
  theirs.mkdir()
  (theirs / "0001.png").write_bytes(b"a user's image")
  out = script(SAMPLE, f"--workdir={workdir}", "--num=2", f"--out={theirs}", "--overwrite")
  assert out.returncode == 2 and out.stderr == (
      f"error: --out={str(theirs)!r} holds numbered PNGs that scripts/sample.py did not write "
      "(it finds no .gan_jax_samples.json); --overwrite replaces only its own: use another "
      "folder\n"), out.stderr
  assert [p.name for p in theirs.iterdir()] == ["0001.png"]
  assert (theirs / "0001.png").read_bytes() == b"a user's image"


@pytest.mark.parametrize("setup, message", [
    ("workdir", "is a training workdir; give a folder of its own"),
    ("inside", "is inside the training workdir"),
    ("inside another run", "is inside the training workdir"),
    ("non-empty", "is not empty; pass --overwrite to replace the export there"),
])
def test_export_refuses_a_workdir_or_a_used_folder(workdir, tmp_path, setup, message, capsys):
  export = _import_script("export")
  out = {"workdir": workdir, "inside": workdir / "checkpoints"}.get(setup, tmp_path / "e")
  if setup == "inside another run":  # a second run's folder (its files as training writes them)
    other = tmp_path / "other_run"
    (other / "checkpoints").mkdir(parents=True)
    (other / "config.json").write_text("{}")
    (other / "metrics.jsonl").write_text("")
    out = other / "exports" / "g"
    message = f"is inside the training workdir {str(other)!r}; give a folder outside every run"
  if setup == "non-empty":
    out.mkdir()
    (out / "model_card.json").write_text("{}")
  with pytest.raises(SystemExit) as e:
    export.main([f"--workdir={workdir}", f"--out={out}"])
  assert e.value.code == 2
  assert message in capsys.readouterr().err
  assert not (workdir / "model_card.json").exists()
  assert not (workdir / "checkpoints" / "model_card.json").exists()
  assert (tmp_path / "e" / "model_card.json").read_text() == "{}" if setup == "non-empty" else True


@pytest.mark.parametrize("name", ["sample", "export"])
def test_a_failed_restore_leaves_one_line_not_orbax_background_reports(
    name, tmp_path, monkeypatch, capsys):
  """A corrupt checkpoint is one CheckpointError line, but the TensorStore reads
  that Orbax abandons then finish on its closed event loop ('Event loop is
  closed', unraisable) and asyncio logs 'Future exception was never retrieved':
  tracebacks after the line, in 3 of 4 runs of sample.py here. The scripts drop
  those reports, as gan_jax.main does; others are kept."""
  import asyncio
  import logging
  import types
  script_module = _import_script(name)
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)  # the hook the scripts wrap
  (tmp_path / "w").mkdir()  # no checkpoints: the error is the script's one line
  args = [f"--workdir={tmp_path}/w", f"--out={tmp_path}/o"] + (["--num=2"] if name == "sample"
                                                               else [])
  assert script_module.main(args) == 1
  assert capsys.readouterr().err.strip().startswith("error: no checkpoints in")
  loop = asyncio.new_event_loop()
  loop.close()
  with pytest.raises(RuntimeError, match="Event loop is closed") as closed:
    loop.call_soon_threadsafe(print)  # what a TensorStore callback does
  for err in (closed.value, ValueError("ours")):
    sys.unraisablehook(types.SimpleNamespace(exc_type=type(err), exc_value=err,
                                             exc_traceback=err.__traceback__,
                                             err_msg=None, object=None))
  assert [type(u.exc_value) for u in seen] == [ValueError]
  record = logging.LogRecord("asyncio", logging.ERROR, asyncio.base_events.__file__, 1,
                             "Future exception was never retrieved", None, None)
  assert not logging.getLogger("asyncio").filter(record)
