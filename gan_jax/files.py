"""Atomic file writes: a crash, a kill or an error mid-write leaves the file
that was there (or none), never a torn one."""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w"):
  """`with atomic_write(path, "wb") as f: ...` writes to path + ".tmp", then
  renames it over `path` on success; on an error the temporary file is removed.

  The data reach the disk (fsync) before the rename, and the rename before
  this returns (fsync of the folder): without that, a machine that crashes
  or loses power soon after can come back with `path` renamed but empty, the
  old contents lost as well."""
  tmp = path + ".tmp"
  try:
    with open(tmp, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(os.path.dirname(os.path.abspath(path)))
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _fsync_folder(folder: str) -> None:
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:  # a folder that cannot be opened (not on Windows): the rename is made
    return
  try:
    os.fsync(fd)
  except OSError:  # file systems that cannot sync a folder
    pass
  finally:
    os.close(fd)
