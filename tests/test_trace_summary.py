"""scripts/trace_summary.py on synthetic Chrome traces: self time of nested
CPU (XLA thunk) events, and --json. (Its device-trace test and the test on a
real CPU profile are in test_benchmark.py.)"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "scripts" / "trace_summary.py"


def _module():
  """scripts/trace_summary.py, freshly loaded under its own name."""
  spec = importlib.util.spec_from_file_location("trace_summary_under_test", SCRIPT)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def _script(*args):
  return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                        text=True, timeout=60)


def _cpu_trace(path):
  """An XLA:CPU-like trace of 2 steps, 200 us apart. Per step, on XLA's Eigen
  thread: a 60 us "while.1" holding its body (body_a 10 us from the loop's
  start, body_b 20 us holding "inner" 5 us, body_c 6 us ending with the loop),
  then "fusion.2" 8 us after the loop; on the client thread "copy.1" 30 us,
  at the same time as the loop but on another line. Self times: while.1
  60-10-20-6 = 24, body_b 20-5 = 15; busy 68 + 30 = 98 us per step (the
  summed durations, 139, count the nested ones twice). The executor's own
  events and other threads must not count. Written children first, so that
  the order in the file does not matter."""
  events = [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 10,
             "args": {"name": "tf_XLAEigen/123"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 11,
             "args": {"name": "tf_XLAPjRtCpuClient/456"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 12, "args": {"name": "python"}},
            {"ph": "X", "name": "python_step", "pid": 1, "tid": 12, "ts": 0, "dur": 400}]
  for step in range(2):
    t0 = 200.0 * step
    for name, tid, ts, dur in (("inner", 10, 25, 5), ("body_c", 10, 54, 6),
                               ("body_b", 10, 20, 20), ("body_a", 10, 0, 10),
                               ("ThunkExecutor::Execute", 10, -1, 100),
                               ("end: while.1", 10, 60, 1),
                               ("while.1", 10, 0, 60), ("fusion.2", 10, 70, 8),
                               ("copy.1", 11, 10, 30)):
      events.append({"ph": "X", "name": name, "pid": 1, "tid": tid, "ts": t0 + ts, "dur": dur,
                     "args": {"hlo_op": name}})
  path.write_text(json.dumps({"traceEvents": events}))
  return path


def test_nested_cpu_events_count_by_self_time(tmp_path):
  path = _cpu_trace(tmp_path / "cpu.json")
  ts = _module()
  s = ts.summarize(ts.load(str(path)), steps=2)
  assert s["kind"] == "cpu"
  assert s["lines"] == ["/host:CPU tf_XLAEigen/123", "/host:CPU tf_XLAPjRtCpuClient/456"]
  assert s["events_per_step"] == 7 and s["distinct"] == 7
  assert s["busy_us_per_step"] == 98 and s["span_us_per_step"] == 139
  assert s["busy_fraction"] == 98 / 139
  top = {r["name"]: r for r in s["top"]}
  assert top["while.1"]["us_per_step"] == 24 and top["body_b"]["us_per_step"] == 15
  assert top["copy.1"]["us_per_step"] == 30 and top["inner"]["us_per_step"] == 5
  assert all(r["calls_per_step"] == 1 for r in s["top"])
  assert [r["name"] for r in s["top"]] == ["copy.1", "while.1", "body_b", "body_a", "fusion.2",
                                           "body_c", "inner"]
  assert top["copy.1"]["share"] == 30 / 98
  assert sum(r["us_per_step"] for r in s["top"]) == s["busy_us_per_step"]
  out = _script(path, "--steps=2")
  assert out.returncode == 0, out.stderr
  assert "busy 98.0 us, span 139.0 us (busy/span 71%)" in out.stdout


def test_self_time_allows_float_slack_but_not_overlap():
  ts = _module()
  ev = [{"name": "p", "pid": 1, "tid": 1, "ts": 100.0, "dur": 10.0},
        # ends 0.0004 us after its parent: the trace's rounding, still nested
        {"name": "c", "pid": 1, "tid": 1, "ts": 109.0, "dur": 1.0004},
        # starts inside "q" but ends 2 us after it: a neighbour, not a child
        {"name": "q", "pid": 1, "tid": 2, "ts": 100.0, "dur": 10.0},
        {"name": "r", "pid": 1, "tid": 2, "ts": 108.0, "dur": 4.0},
        # on another process's thread of the same id: not nested either
        {"name": "s", "pid": 2, "tid": 1, "ts": 101.0, "dur": 1.0}]
  assert ts.self_times(ev) == pytest.approx([10 - 1.0004, 1.0004, 10, 4, 1])


def test_json_to_a_missing_folder_fails_up_front(tmp_path):
  path = _cpu_trace(tmp_path / "cpu.json")
  target = tmp_path / "no_such_dir" / "s.json"
  out = _script(path, "--steps=2", f"--json={target}")
  assert out.returncode == 1
  assert out.stdout == ""  # no report before the error
  assert "Traceback" not in out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: --json={target}"), out.stderr
  assert not target.parent.exists()


def test_json_is_the_summary_written_atomically(tmp_path, monkeypatch, capsys):
  path = _cpu_trace(tmp_path / "cpu.json")
  target = tmp_path / "s.json"
  target.write_text("an older summary")
  ts = _module()
  replaced = []
  real_replace = os.replace

  def spy(src, dst):
    replaced.append((str(src), str(dst)))
    real_replace(src, dst)

  monkeypatch.setattr(os, "replace", spy)
  assert ts.main([str(path), "--steps=2", f"--json={target}"]) == 0
  assert json.loads(target.read_text()) == ts.summarize(ts.load(str(path)), steps=2)
  # written beside the target, then renamed over it; nothing left behind
  assert len(replaced) == 1 and replaced[0][1] == str(target)
  assert replaced[0][0].startswith(str(tmp_path) + "/")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.json", "s.json"]
  assert "busy 98.0 us" in capsys.readouterr().out  # the report too


def test_failed_json_write_keeps_the_old_file(tmp_path, monkeypatch, capsys):
  path = _cpu_trace(tmp_path / "cpu.json")
  target = tmp_path / "s.json"
  target.write_text("an older summary")
  ts = _module()

  def full_disk(obj, f, **kw):
    f.write('{"kind": "c')
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(ts.json, "dump", full_disk)
  assert ts.main([str(path), "--steps=2", f"--json={target}"]) == 1
  out, err = capsys.readouterr()
  assert out == "" and err.startswith(f"error: --json={target}: ") and "No space" in err
  assert target.read_text() == "an older summary"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu.json", "s.json"]
