"""The documentation's own checks: benchmarks/history.csv parses, and the
tracked files speak of the project, not of how the work was organised."""
import csv
import re
import subprocess

import pytest

from conftest import REPO

HISTORY = REPO / "benchmarks" / "history.csv"
COLUMNS = ["date", "machine", "commit", "command", "jax_steps_per_s", "torch_steps_per_s",
           "ratio", "note"]
NUMERIC = ("jax_steps_per_s", "torch_steps_per_s", "ratio")


def _history():
  with open(HISTORY, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    return reader.fieldnames, list(reader)


def test_history_csv_columns_and_rows():
  columns, rows = _history()
  assert columns == COLUMNS
  assert len(rows) > 300
  for i, row in enumerate(rows, start=2):  # line numbers as an editor shows them
    assert None not in row and all(v is not None for v in row.values()), f"line {i}: field count"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["date"]), f"line {i}: date {row['date']!r}"
    assert row["machine"].strip(), f"line {i}: no machine"
    assert row["command"].strip(), f"line {i}: no command"
    for key in NUMERIC:
      if row[key]:
        assert float(row[key]) > 0, f"line {i}: {key}={row[key]!r}"


# The project's files speak of the project (its code, users and measurements),
# not of how the work on it was organised; `git log` keeps that history.
PROCESS_WORDS = re.compile(r"\b(session|sessions|lease)\b|issue [0-9]", re.IGNORECASE)
THIS_FILE = "tests/test_docs.py"  # holds the pattern itself


def _tracked_text_files():
  try:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  for name in out.stdout.decode().split("\0"):
    path = REPO / name
    if not name or name == THIS_FILE or not path.is_file():
      continue
    data = path.read_bytes()
    if b"\0" in data:
      continue  # binary (images, weights)
    try:
      yield name, data.decode("utf-8")
    except UnicodeDecodeError:
      continue


def test_tracked_files_do_not_speak_of_the_work_process():
  found = [f"{name}:{n}: {line.strip()[:100]}"
           for name, text in _tracked_text_files()
           for n, line in enumerate(text.splitlines(), start=1) if PROCESS_WORDS.search(line)]
  assert not found, "\n".join(found)


def test_the_process_word_check_finds_what_it_should():
  assert PROCESS_WORDS.search("measured in the eighth Session")
  assert PROCESS_WORDS.search("see issue 5, item 4")
  assert not PROCESS_WORDS.search("sessionless issues of a leased line")
