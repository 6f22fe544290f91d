"""gan_jax/files.py: atomic_write replaces a file whole, and durably."""
import os
import stat

import pytest

from gan_jax import files


def test_atomic_write_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
  # Without the fsyncs a crash or power loss soon after could leave the renamed
  # file empty (e.g. config.json beside the checkpoints), the old one lost too.
  events = []
  real_fsync, real_replace = os.fsync, os.replace

  def fsync(fd):
    st = os.fstat(fd)
    events.append(("fsync dir",) if stat.S_ISDIR(st.st_mode) else ("fsync file", st.st_size))
    real_fsync(fd)

  def replace(src, dst):
    events.append(("replace", os.path.basename(src), os.path.basename(dst)))
    real_replace(src, dst)
  monkeypatch.setattr(files.os, "fsync", fsync)
  monkeypatch.setattr(files.os, "replace", replace)
  path = tmp_path / "config.json"
  path.write_text("old")
  with files.atomic_write(str(path)) as f:
    f.write("0123456789")
  assert events == [("fsync file", 10), ("replace", "config.json.tmp", "config.json"),
                    ("fsync dir",)]
  assert path.read_text() == "0123456789" and os.listdir(tmp_path) == ["config.json"]


def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "config.json"
  path.write_text("old")
  with pytest.raises(RuntimeError):
    with files.atomic_write(str(path)) as f:
      f.write("half")
      raise RuntimeError("killed")
  assert path.read_text() == "old" and os.listdir(tmp_path) == ["config.json"]
