"""Workdir outputs: metrics.jsonl, TensorBoard events, sample grids, progress line."""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image

from gan_jax.files import atomic_write


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2) -> np.ndarray:
  """[-1, 1] float NHWC -> one uint8 HxWxC grid image (pad px of white between)."""
  images = np.asarray(images, np.float32)
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), 255, np.uint8)
  u8 = np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h,
         pad + col * (w + pad): pad + col * (w + pad) + w] = u8[i]
  return grid


def save_png(array_hwc: np.ndarray, path: str, upscale: int = 1) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im = Image.fromarray(array_hwc[..., 0] if array_hwc.shape[-1] == 1 else array_hwc)
  if upscale > 1:
    im = im.resize((im.width * upscale, im.height * upscale), Image.NEAREST)
  with atomic_write(path, "wb") as f:  # a killed run leaves no torn PNG
    im.save(f, format="PNG")


def _summary_writer_cls():
  """tensorboardX's SummaryWriter (no TensorFlow needed). Its module imports
  torch, when installed, only to accept torch tensors, which costs ~2.5 s and
  hundreds of MB per run; we pass numpy, so that import is made to fail."""
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    from tensorboardX import SummaryWriter
    return SummaryWriter
  sys.modules["torch"] = None  # `import torch` raises ImportError while set
  try:
    from tensorboardX import SummaryWriter
  finally:
    del sys.modules["torch"]
  return SummaryWriter


class Writer:
  """Appends scalars to metrics.jsonl and TensorBoard; writes sample grids.

  `resume_step`: TensorBoard discards events after it left by a killed run.
  At 0 (no checkpoint to resume from) the event files of a run killed before
  its first checkpoint are deleted, as its metrics.jsonl rows are
  (truncate_jsonl): a purge from step 1 would leave its step-0 events."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.workdir = workdir
    tb_dir = os.path.join(workdir, "tensorboard")
    if not resume_step and os.path.isdir(tb_dir):
      for name in os.listdir(tb_dir):
        if name.startswith("events.out.tfevents."):
          os.remove(os.path.join(tb_dir, name))
    self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", buffering=1)
    # The event file's name holds the time in whole seconds and the host. A
    # nanosecond suffix keeps a writer opened within the same second (a quick
    # resume) from overwriting the earlier file, and keeps the files in time
    # order, which TensorBoard reads them in (and so applies the purge after).
    self.tb = _summary_writer_cls()(tb_dir,
                                    purge_step=resume_step + 1 if resume_step else None,
                                    filename_suffix=f".{time.time_ns()}")
    self.tb_dir = tb_dir
    self._event_error: OSError | None = None
    self._event_error_raised = False
    self._catch_event_errors()

  def _catch_event_errors(self) -> None:
    """tensorboardX writes events in a thread fed by a queue of 10. A write or
    flush that fails there (a full disk) killed that thread with a traceback
    of its own, and the 11th event then blocked the run for ever. Here the
    thread's writer records the first such OSError instead and drops every
    later event, so the thread keeps draining its queue; the next call raises
    the error (`_check`), which training turns into one line. This wraps
    tensorboardX's private EventFileWriter._ev_writer; where that is missing
    (another version), nothing is wrapped."""
    events = getattr(getattr(getattr(self.tb, "file_writer", None), "event_writer", None),
                     "_ev_writer", None)
    if events is None:
      return
    for name in ("write_event", "flush"):
      method = getattr(events, name)

      def guarded(*args, _method=method):
        if self._event_error is None:
          try:
            return _method(*args)
          except OSError as e:
            self._event_error = e
      setattr(events, name, guarded)

  def _check(self) -> None:
    e = self._event_error
    if e is not None and not self._event_error_raised:
      self._event_error_raised = True  # once: close() after it does not repeat it
      raise OSError(e.errno, f"writing TensorBoard events in {self.tb_dir} failed: "
                             f"{e.strerror or e}")

  def scalars(self, step: int, values: dict) -> None:
    row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
    self.jsonl.write(json.dumps(row) + "\n")
    self._check()
    for k, v in values.items():
      self.tb.add_scalar(k, float(v), int(step))

  def samples(self, step: int, images: np.ndarray) -> str:
    grid = image_grid(images)
    upscale = max(1, 512 // grid.shape[0])
    path = os.path.join(self.workdir, "samples", f"step_{int(step):08d}.png")
    save_png(grid, path, upscale)
    self._check()
    self.tb.add_image("samples", grid, int(step), dataformats="HWC")
    return path

  def sync(self) -> None:
    """Puts metrics.jsonl on the disk. Called before each checkpoint is saved:
    a resumed run keeps the rows up to its checkpoint's step, so after a crash
    or power loss they must be there whenever the checkpoint is."""
    self.jsonl.flush()
    os.fsync(self.jsonl.fileno())

  def flush(self) -> None:
    self.jsonl.flush()
    self.tb.flush()
    self._check()

  def close(self) -> None:
    self.jsonl.close()
    self.tb.close()
    self._check()  # an event the thread could not write since the last call


def truncate_jsonl(path: str, last_step: int) -> None:
  """Drops rows with step > last_step (written after the checkpoint a resumed
  run restarts from), so a resumed log has no duplicate steps. Stops at the
  first torn line (no newline, or not JSON) that a killed process can leave."""
  if not os.path.exists(path):
    return
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")[:-1]  # the part after the last newline is torn
  keep = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      break
    if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= last_step:
      keep.append(line + b"\n")
  with atomic_write(path, "wb") as f:
    f.writelines(keep)


class Progress:
  """A periodic one-line progress report: step, d_loss and g_loss, then every
  other training metric the run logs (in the order logged), steps/s, ETA."""

  # logged with every row, shown in the line's own words
  RATES = ("steps_per_sec", "images_per_sec")

  def __init__(self, total: int, stream=None):
    # sys.stdout as it is now, not at import: the run's other lines follow a
    # redirect_stdout (a notebook's, a test's capture), and so must these
    self.total, self.stream, self.t0 = total, stream or sys.stdout, time.time()

  def line(self, step: int, m: dict, steps_per_sec: float) -> None:
    if math.isfinite(steps_per_sec) and steps_per_sec > 0:
      eta = int((self.total - step) / steps_per_sec)
      eta_str = f"ETA {eta // 60}m{eta % 60:02d}s"
    else:
      eta_str = "ETA ?"
    losses = " ".join(f"{k} {m[k]:.4f}" for k in ("d_loss", "g_loss") if k in m)
    rest = " ".join(f"{k} {v:.4g}" for k, v in m.items()
                    if k not in ("d_loss", "g_loss", *self.RATES))
    parts = [f"step {step}/{self.total}", losses, rest, f"{steps_per_sec:.2f} steps/s", eta_str]
    self.stream.write(" | ".join(p for p in parts if p) + "\n")
    self.stream.flush()
