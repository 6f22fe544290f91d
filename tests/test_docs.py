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
