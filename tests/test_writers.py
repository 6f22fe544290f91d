"""Workdir writers: the sample grid's exact layout, and a resumed run's logs
(TensorBoard and metrics.jsonl) holding each step once."""
import json

import numpy as np

from gan_jax.writers import Writer, image_grid, save_png


def test_image_grid_places_each_image_in_its_cell_row_major():
  # Three 2x3 images of -1, 0 and 1 in 2 columns, with 1 px of white between
  # and around the cells: [-1, 1] maps to 0..255 (0 -> 128 by rounding 127.5).
  x = np.stack([np.full((2, 3, 1), v, np.float32) for v in (-1.0, 0.0, 1.0)])
  g = image_grid(x, ncols=2, pad=1)
  assert g.shape == (2 * 3 + 1, 2 * 4 + 1, 1) and g.dtype == np.uint8
  expected = np.full((7, 9), 255, np.uint8)
  expected[1:3, 1:4] = 0      # image 0: row 0, column 0
  expected[1:3, 5:8] = 128    # image 1: row 0, column 1
  expected[4:6, 1:4] = 255    # image 2: row 1, column 0 (white, like the padding)
  np.testing.assert_array_equal(g[..., 0], expected)
  # The default is a square-ish grid: 5 images -> 3 columns, 2 rows.
  assert image_grid(np.zeros((5, 4, 4, 3)), pad=2).shape == (2 * 6 + 2, 3 * 6 + 2, 3)


def test_image_grid_clips_out_of_range_values():
  g = image_grid(np.array([[[[-3.0]], [[3.0]]]], np.float32).reshape(1, 2, 1, 1), pad=0)
  np.testing.assert_array_equal(g[..., 0], [[0], [255]])


def test_save_png_upscales_by_nearest_neighbour(tmp_path):
  from PIL import Image
  grid = np.array([[0, 255], [255, 0]], np.uint8)[..., None]
  save_png(grid, str(tmp_path / "s" / "g.png"), upscale=3)
  back = np.asarray(Image.open(tmp_path / "s" / "g.png"))
  np.testing.assert_array_equal(back, np.kron(grid[..., 0], np.ones((3, 3), np.uint8)))


def test_a_resumed_writer_keeps_each_step_once_in_tensorboard(tmp_path):
  # A killed run logged steps 1-6 but its last checkpoint is step 4; the
  # resumed run logs 5-6 again. TensorBoard must then hold 1..6 once each,
  # with the resumed values.
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  w = Writer(str(tmp_path))
  for s in range(1, 7):
    w.scalars(s, {"g_loss": float(s)})
  w.close()
  w = Writer(str(tmp_path), resume_step=4)
  for s in (5, 6):
    w.scalars(s, {"g_loss": 100.0 + s})
  w.close()
  acc = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
  events = acc.Scalars("g_loss")
  assert [e.step for e in events] == [1, 2, 3, 4, 5, 6]
  assert [e.value for e in events] == [1, 2, 3, 4, 105, 106]
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 5, 6]  # train.py truncates first


def test_a_restart_without_checkpoint_keeps_only_the_new_runs_events(tmp_path):
  # A run killed before its first checkpoint logged steps 0-3; the rerun starts
  # over at step 0 (train.py empties metrics.jsonl). TensorBoard must hold only
  # the new run's points, once each, step 0 included.
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  w = Writer(str(tmp_path))
  for s in range(4):
    w.scalars(s, {"g_loss": float(s)})
  w.close()
  w = Writer(str(tmp_path), resume_step=0)
  for s in range(3):
    w.scalars(s, {"g_loss": 100.0 + s})
  w.close()
  events = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Scalars("g_loss")
  assert [(e.step, e.value) for e in events] == [(0, 100.0), (1, 101.0), (2, 102.0)]


def test_a_failed_event_file_write_is_an_os_error_at_the_next_call_not_a_hang(
    tmp_path, monkeypatch, capfd):
  """tensorboardX writes events in a thread through a queue of 10: when a write
  failed (a full disk) the thread died with a traceback, and the 11th event
  blocked the run for ever. Now a later call (or close) raises an OSError
  naming the folder, which training turns into one line, and nothing blocks."""
  import errno
  import threading
  from tensorboardX import event_file_writer

  def full(self, event_str):
    raise OSError(errno.ENOSPC, "No space left on device")
  w = Writer(str(tmp_path))
  monkeypatch.setattr(event_file_writer.EventsWriter, "_write_serialized_event", full)
  errors = []

  def log():
    try:
      for step in range(1, 101):
        w.scalars(step, {"a": 1.0, "b": 2.0})
    except OSError as e:
      errors.append(e)
    try:
      w.close()
    except OSError as e:  # if the thread had not yet failed before the last call
      errors.append(e)
  t = threading.Thread(target=log, daemon=True)
  t.start()
  t.join(timeout=60)
  assert not t.is_alive(), "the writer blocked"
  assert len(errors) == 1, errors
  assert str(errors[0]) == (f"[Errno 28] writing TensorBoard events in {tmp_path}/tensorboard "
                            "failed: No space left on device")
  assert "Traceback" not in capfd.readouterr().err


def test_each_progress_line_names_the_step_its_losses_are_from(tmp_path, capsys, monkeypatch):
  # With log_every=3 and steps_per_call=2 the call ending at step 4 logs step
  # 3: its line said "step 4/6" beside step 3's losses. A stand-in for the
  # jitted steps reports each step's number as its losses (nothing compiles).
  import re
  import numpy as np
  from gan_jax import steps, train
  from conftest import tiny_config

  def numbered_steps(*args, **kwargs):
    def call(state, images, k):
      s = np.arange(int(state.step[()]) + 1, int(state.step[()]) + k + 1, dtype=np.float32)
      return state.replace(step=state.step + k), {"d_loss": s, "g_loss": s, "d_real": s / 10,
                                                  "d_fake": s / 10}
    return call
  monkeypatch.setattr(steps, "make_train_fn", numbered_steps)
  config = tiny_config(**{"model.name": "mlp", "train.num_steps": 6, "train.steps_per_call": 2,
                          "train.log_every": 3, "train.sample_every": 6, "checkpoint.every": 6})
  train.train_and_evaluate(config, str(tmp_path / "run"))
  rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").open()]
  assert [(r["step"], r["d_loss"]) for r in rows] == [(3, 3.0), (6, 6.0)]
  lines = re.findall(r"^step (\d+)/6 \| d_loss (\S+) g_loss ", capsys.readouterr().out, re.M)
  assert lines == [("3", "3.0000"), ("6", "6.0000")]

def test_the_progress_line_goes_to_sys_stdout_as_it_is_when_the_run_starts():
  # the default stream was bound when gan_jax.writers was imported, so a
  # redirect_stdout around training caught every line but these
  import contextlib
  import io
  from gan_jax.writers import Progress
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    Progress(10).line(4, {"d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5, "d_fake": 0.25}, 2.0)
  assert out.getvalue() == ("step 4/10 | d_loss 1.0000 g_loss 2.0000 | d_real 0.5 d_fake 0.25 "
                            "| 2.00 steps/s | ETA 0m03s\n")


def test_the_progress_line_shows_whatever_metrics_the_run_logs():
  import io
  from gan_jax.writers import Progress
  out = io.StringIO()
  Progress(10, out).line(2, {"g_loss": 2.0, "wasserstein": 0.125, "d_loss": 1.0, "r1": 3.5,
                             "steps_per_sec": 9.0}, 1.0)
  assert out.getvalue() == ("step 2/10 | d_loss 1.0000 g_loss 2.0000 | wasserstein 0.125 r1 3.5 "
                            "| 1.00 steps/s | ETA 0m08s\n")


def test_metrics_jsonl_is_on_disk_before_each_checkpoint_is_saved(tmp_path, monkeypatch):
  # A checkpoint reaches the disk (TensorStore syncs its files) while the
  # metrics.jsonl rows before it could sit in the page cache: after a power loss
  # the run resumed from the checkpoint with those rows missing for good.
  import os
  import numpy as np
  from gan_jax import checkpoint, steps, train

  from conftest import tiny_config
  synced, order = [], []
  real_fsync, real_save = os.fsync, checkpoint.save

  def fsync(fd):
    synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    real_fsync(fd)

  def save(manager, step, *args, **kwargs):
    path = str(tmp_path / "run" / "metrics.jsonl")
    order.append((step, synced.count(path), len(open(path).readlines())))
    return real_save(manager, step, *args, **kwargs)

  def stand_in(*args, **kwargs):
    def call(state, images, k):
      return state.replace(step=state.step + k), {n: np.ones(k, np.float32) / 2 for n in
                                                  ("d_loss", "g_loss", "d_real", "d_fake")}
    return call
  monkeypatch.setattr(steps, "make_train_fn", stand_in)
  monkeypatch.setattr(os, "fsync", fsync)
  monkeypatch.setattr(checkpoint, "save", save)
  config = tiny_config(**{"model.name": "mlp", "train.num_steps": 4, "train.log_every": 1,
                          "checkpoint.every": 2})
  train.train_and_evaluate(config, str(tmp_path / "run"))
  # at each save: its rows written (steps 1-2, then 1-4) and synced since the last save
  assert [(s, rows) for s, _, rows in order] == [(2, 2), (4, 4)]
  assert [n for _, n, _ in order] == [1, 2]
