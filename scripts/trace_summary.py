r"""Where a traced training step's device time goes, from a Perfetto trace.

  python scripts/benchmark.py --config=experiments/mnist.py --profile=/tmp/prof
  python scripts/trace_summary.py /tmp/prof/plugins/profile/*/perfetto_trace.json.gz --steps=20

`--steps` is the number of steps the trace holds (benchmark.py prints it and
records it in its JSON as profile_trace.steps). On an accelerator the device's
lines ("/device:GPU:0", its "Stream #..." threads) hold one event per kernel,
with its launch grid and the operation that launched it: the JAX
name-stack path where the trace has one (library calls such as cuDNN's
convolutions), else XLA's op name ("command_buffer_N" for the kernels XLA runs
as a CUDA graph). On a CPU, where there is no device line, the events of
XLA's own threads (thunks, one per HLO op or fusion) are used instead.

On a CPU, time is counted as a profiler does, by SELF time: per line (process
and thread), an event's duration less that of the events nested directly in
it on the same line (a "while.N" thunk holds its loop body's thunks). "Busy"
is the sum of the events' self times, so for properly nested events it is the
union of the time each line was busy: a nested event is counted once. Device
kernels are counted in full (a stream runs them one after another). Lines are
summed, so "busy" can exceed the span where several lines work at once (the
CPU thunk executor's threads, or several streams or devices).

Prints, per step: the events, their summed self time ("busy"), the span from
the first event's start to the last event's end (per step: over all steps
divided by --steps), and the top kernels by self time with their share of
busy time. The grid column (blocks of the launch, from the trace) shows
kernels that occupy few of the chip's multiprocessors. A trace of several
devices is summed over them: divide by their number for one device's busy
time.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import sys

_CPU_NOISE = ("ThreadpoolListener", "end: ", "ThunkExecutor", "Wait for", "SlinkyThreadPool",
              "$")
# Slack, in microseconds, for a nested event's bounds: trace times are floats
# (to the nanosecond), so a child can seem to end a hair after its parent.
_NEST_SLACK_US = 1e-3


def load(path: str) -> list[dict]:
  """The complete ('X') events of a Perfetto/Chrome trace, each with its
  process and thread names added as 'process' and 'thread'."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rt") as f:
    trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  procs, threads = {}, {}
  for e in events:
    if e.get("ph") == "M" and e.get("name") == "process_name":
      procs[e["pid"]] = e["args"]["name"]
    elif e.get("ph") == "M" and e.get("name") == "thread_name":
      threads[(e["pid"], e["tid"])] = e["args"]["name"]
  out = []
  for e in events:
    if e.get("ph") == "X" and "dur" in e:
      out.append({**e, "process": procs.get(e.get("pid"), ""),
                  "thread": threads.get((e.get("pid"), e.get("tid")), "")})
  return out


def device_events(events: list[dict]) -> tuple[str, list[dict]]:
  """('device' | 'cpu', the events that are device work)."""
  dev = [e for e in events if e["process"].startswith("/device:")]
  if dev:
    return "device", dev
  return "cpu", [e for e in events
                 if e["thread"].startswith("tf_XLA") and not e["name"].startswith(_CPU_NOISE)]


def _op(e: dict) -> str:
  """The JAX operation that launched the event: its name-stack path (e.g.
  "transpose(jvp(DCGANGenerator))/Upsample2x_1/conv_general_dilated", with the
  jit/loop prefix dropped) where the trace has one, else XLA's op name."""
  args = e.get("args", {})
  path = args.get("name", "")
  if path:
    return re.sub(r"^jit\([^)]*\)/(while/body/)?(eval_jaxpr/)?", "", path)
  return args.get("hlo_op", "")


def _grid(e: dict) -> str:
  m = re.search(r"grid:([\d,]+)", e.get("args", {}).get("kernel_details", ""))
  return m.group(1) if m else "-"


def self_times(events: list[dict]) -> list[float]:
  """Each event's self time, in the events' order: its duration less the
  durations of the events nested directly in it on its line (same pid and
  tid). An event is nested in another that starts at or before it and ends at
  or after it (within _NEST_SLACK_US); the innermost such event is its parent.
  A self time below zero (only from siblings that overlap each other) is
  counted as zero."""
  self_us = [float(e["dur"]) for e in events]
  lines = collections.defaultdict(list)
  for i, e in enumerate(events):
    lines[(e.get("pid"), e.get("tid"))].append(i)
  for idx in lines.values():
    idx.sort(key=lambda i: (events[i]["ts"], -events[i]["dur"]))
    stack = []  # indices of the open events, outermost first
    for i in idx:
      ts, end = events[i]["ts"], events[i]["ts"] + events[i]["dur"]
      while stack:
        top = events[stack[-1]]
        if ts >= top["ts"] - _NEST_SLACK_US and end <= top["ts"] + top["dur"] + _NEST_SLACK_US:
          self_us[stack[-1]] -= events[i]["dur"]
          break
        stack.pop()
      stack.append(i)
  return [max(0.0, t) for t in self_us]


def summarize(events: list[dict], steps: int, top: int = 15) -> dict:
  if steps < 1:
    raise ValueError(f"--steps={steps} must be >= 1")
  kind, dev = device_events(events)
  if not dev:
    raise ValueError("no device or XLA-thread events in the trace")
  start = min(e["ts"] for e in dev)
  end = max(e["ts"] + e["dur"] for e in dev)
  # XLA:CPU's thunks nest (a while loop holds its body); a device stream runs
  # its kernels one after another, so there each kernel counts in full
  self_us = self_times(dev) if kind == "cpu" else [float(e["dur"]) for e in dev]
  busy = sum(self_us)
  by_name = collections.defaultdict(lambda: {"us": 0.0, "calls": 0, "ops": set(), "grids": set()})
  for e, us in zip(dev, self_us):
    row = by_name[e["name"]]
    row["us"] += us
    row["calls"] += 1
    row["ops"].add(_op(e))
    row["grids"].add(_grid(e))
  ranked = sorted(by_name.items(), key=lambda kv: -kv[1]["us"])
  return {
      "kind": kind,
      "lines": sorted({f"{e['process']} {e['thread']}".strip() for e in dev}),
      "steps": steps,
      "events_per_step": len(dev) / steps,
      "busy_us_per_step": busy / steps,
      "span_us_per_step": (end - start) / steps,
      "busy_fraction": busy / (end - start) if end > start else None,
      "distinct": len(by_name),
      "top": [{"name": name, "us_per_step": r["us"] / steps, "calls_per_step": r["calls"] / steps,
               "share": r["us"] / busy, "ops": sorted(o for o in r["ops"] if o),
               "grids": sorted(r["grids"])} for name, r in ranked[:top]],
  }


def report(s: dict) -> str:
  lines = [
      f"{s['kind']} events from: {'; '.join(s['lines'])}",
      f"per step ({s['steps']} steps traced): {s['events_per_step']:.1f} events, busy "
      f"{s['busy_us_per_step']:.1f} us, span {s['span_us_per_step']:.1f} us"
      + ("" if s["busy_fraction"] is None else f" (busy/span {s['busy_fraction']:.0%})")
      + f"; {s['distinct']} distinct names",
      f"{'self us/step':>12} {'calls':>6} {'share':>6}  {'grid':14} kernel (name) <- op"
      "   (self: less the events nested in it)"]
  for r in s["top"]:
    ops = ", ".join(r["ops"][:2]) + (f" (+{len(r['ops']) - 2})" if len(r["ops"]) > 2 else "")
    grids = ";".join(r["grids"][:2]) + ("..." if len(r["grids"]) > 2 else "")
    lines.append(f"{r['us_per_step']:12.2f} {r['calls_per_step']:6.2f} {r['share']:6.1%}  "
                 f"{grids:14.14} {r['name'][:60]} <- {ops}")
  return "\n".join(lines)


def write_json(path: str, s: dict) -> None:
  """Writes s to path atomically: to a temporary file in path's folder, then
  renamed over path, so that path never holds a partial summary."""
  folder, name = os.path.split(os.path.abspath(path))
  tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")  # open() keeps the usual mode
  try:
    with open(tmp, "w") as f:
      json.dump(s, f, indent=1)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("trace", help="perfetto_trace.json.gz (or .json) from benchmark.py --profile")
  p.add_argument("--steps", type=int, required=True, help="steps the trace holds")
  p.add_argument("--top", type=int, default=15, help="kernels to list")
  p.add_argument("--json", help="also write the summary to this JSON file")
  a = p.parse_args(argv)
  if a.steps < 1:  # before reading a trace that may be large
    print(f"error: --steps={a.steps} must be >= 1", file=sys.stderr)
    return 1
  if a.json:  # also before reading the trace
    folder = os.path.dirname(os.path.abspath(a.json))
    if not os.path.isdir(folder):
      print(f"error: --json={a.json}: no folder {folder}", file=sys.stderr)
      return 1
    if os.path.isdir(a.json):
      print(f"error: --json={a.json} is a folder", file=sys.stderr)
      return 1
  try:
    s = summarize(load(a.trace), a.steps, a.top)
  except (OSError, EOFError, ValueError, KeyError) as e:  # EOFError: a truncated .gz
    print(f"error: {a.trace}: {e}", file=sys.stderr)
    return 1
  if a.json:  # before the report, so that a failed write prints nothing
    try:
      write_json(a.json, s)
    except OSError as e:
      print(f"error: --json={a.json}: {e}", file=sys.stderr)
      return 1
  print(report(s))
  return 0


if __name__ == "__main__":
  sys.exit(main())
