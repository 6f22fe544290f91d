"""Atomic file writes: a crash, a kill or an error mid-write leaves the file
that was there (or none), never a torn one."""
from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w"):
  """`with atomic_write(path, "wb") as f: ...` writes to path + ".tmp", then
  renames it over `path` on success; on an error the temporary file is removed."""
  tmp = path + ".tmp"
  try:
    with open(tmp, mode) as f:
      yield f
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
