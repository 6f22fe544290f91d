#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md ("NVIDIA H100", "NVIDIA H200"):
#
#   bash scripts/gpu_bench.sh OUT_DIR
#
# Runs scripts/benchmark.py on experiments/mnist.py at batch 64 and 256:
# against eager PyTorch with steps_per_call 1 (the default) and 10 (lax.scan)
# (b*_k1_eager, b*_k10_eager), against channels-last eager PyTorch
# (b*_k10_eager_cl), JAX alone in bfloat16 (b*_k10_bf16), JAX alone and then
# 50 steps traced with jax.profiler (b*_k10_profile: the Perfetto trace is
# copied to OUT_DIR/trace_bB.json.gz for scripts/trace_summary.py), and against
# the same two with the autodiffed transposed convolution, the earlier GPU
# default (model.upsample=transpose: b*_k10_eager_tr,
# b*_k10_profile_tr, trace to OUT_DIR/trace_bB_tr.json.gz), JAX alone at
# batch 64 with 1, 10, 50 and 100 steps per call and 200 steps traced at 50
# (b64_k*_jax, b64_k50_profile: is the step bound by the host?), JAX alone
# with the CPU's patch dots switched on (b*_k10_pd), against
# torch.compile in default mode, reduce-overhead (CUDA graphs) and max-autotune
# (b*_k10_compile, b*_k10_compile_ro, b*_k10_compile_ma). Every run's full
# output is appended to OUT_DIR/bench.log and its JSON line (with the run's
# name and wall time) to OUT_DIR/results.jsonl; a run that fails or runs out
# of time is logged and the next one starts. The last lines printed are a
# table of all runs. The runs before channels-last, profile and max-autotune
# were added took ~7 minutes on an H200 and 439 s on a freshly started H100
# (eager and bf16 runs 12-51 s each, with torch.compile 33-71 s). On an H100
# the channels-last runs took 30-33 s and the profile runs 9-11 s;
# max-autotune took 157 s at batch 64 (128 s of it torch's compilation) and
# 301 s at batch 256 (limits of 84 and 193 s cut it). So the whole set takes
# well over 10 minutes: choose with RUNS, e.g. RUNS=b256_k10_compile_ma
# DEADLINE_S=420 alone. The
# before/after of the up-convolution (216 s on an H100, with the runs then
# named *_twg):
#   RUNS="b64_k10_eager b64_k10_eager_tr b256_k10_eager b256_k10_eager_tr
#         b64_k10_profile b64_k10_profile_tr b256_k10_profile b256_k10_profile_tr"
# The host-bound check at batch 64 (b64_k1_jax, b64_k10_jax, b64_k50_jax,
# b64_k100_jax, b64_k50_profile) took 10-16 s a run, 63 s in all, on an H100.
# BatchNorm's sums (model.batchnorm) were compared by calling the script in
# turn with EXTRA=--config.model.batchnorm=flax and =two_stage, e.g.
# RUNS="b64_k10_jax b256_k10_profile" (10-25 s a run on an H100).
# BENCHMARKS.md has the results.
#
# Environment: PYTHON (python3), STEPS (300 per timing block), ROUNDS (5),
# DEADLINE_S (520: no run starts or continues past this many seconds), RUNS
# (names of the runs to make, space-separated; all by default), EXTRA
# (more benchmark.py flags for every run, e.g. a tiny model for a dry run on
# a CPU). JAX's persistent compilation cache is on, so runs that share a
# program compile it once.
set -u
out=${1:?usage: bash scripts/gpu_bench.sh OUT_DIR}
mkdir -p "$out"
py=${PYTHON:-python3}
steps=${STEPS:-300}
rounds=${ROUNDS:-5}
deadline=${DEADLINE_S:-520}
read -r -a extra <<< "${EXTRA:-}"
export PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/gan_jax_xla_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv 2>&1
  "$py" -c "import sys, jax, flax, optax; print(sys.version.split()[0], 'jax', jax.__version__,
jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__)
try:
  import torch; print('torch', torch.__version__, torch.cuda.is_available())
except ImportError as e: print(e)"
} >> "$out/bench.log" 2>&1

bench() {  # bench NAME LIMIT_S benchmark.py-flags...
  local name=$1 limit=$2
  shift 2
  if [[ -n "${RUNS:-}" && " $RUNS " != *" $name "* ]]; then return 1; fi
  local left=$((deadline - SECONDS))
  if ((left < 30)); then
    echo "$name: skipped, ${left} s left before the ${deadline} s deadline" | tee -a "$out/bench.log"
    return 1
  fi
  ((limit > left)) && limit=$left
  local flags=(--config=experiments/mnist.py --steps="$steps" --rounds="$rounds" "$@" "${extra[@]}")
  echo "=== $name (limit ${limit} s): python scripts/benchmark.py ${flags[*]}" >> "$out/bench.log"
  local t0=$SECONDS rc
  # stdout apart from stderr: the JSON row is stdout's last line, whatever a
  # library prints to stderr as the process ends
  timeout "$limit" "$py" scripts/benchmark.py "${flags[@]}" > "$out/run.log" 2> "$out/run.err"
  rc=$?
  cat "$out/run.log" "$out/run.err" >> "$out/bench.log"
  if ((rc == 0)); then
    printf '{"name": "%s", "wall_s": %d, "command": "python scripts/benchmark.py %s", "result": %s}\n' \
      "$name" $((SECONDS - t0)) "${flags[*]}" "$(tail -n 1 "$out/run.log")" >> "$out/results.jsonl"
  fi
  echo "$name: rc=$rc in $((SECONDS - t0)) s" | tee -a "$out/bench.log"
  return $rc
}

k10=--config.train.steps_per_call=10
for b in 64 256; do
  bench "b${b}_k1_eager" 120 --config.train.batch_size=$b --compare=torch
  bench "b${b}_k10_eager" 120 --config.train.batch_size=$b --compare=torch $k10
done
for b in 64 256; do
  bench "b${b}_k10_eager_cl" 120 --config.train.batch_size=$b --compare=torch $k10 \
    --torch_channels_last
done
for b in 64 256; do
  bench "b${b}_k10_bf16" 90 --config.train.batch_size=$b $k10 --config.train.compute_dtype=bfloat16
done
profile() {  # profile BATCH SUFFIX benchmark.py-flags...
  # JAX alone, then 50 more steps under jax.profiler; the trace is copied to
  # OUT_DIR/trace_bBATCH[SUFFIX].json.gz for scripts/trace_summary.py
  local b=$1 sfx=$2
  shift 2
  if bench "b${b}_k10_profile$sfx" 90 --config.train.batch_size=$b $k10 \
      --profile="$out/profile_b$b$sfx" --profile_steps=50 "$@"; then
    t=$(find "$out/profile_b$b$sfx" -name perfetto_trace.json.gz | sort | tail -n 1)
    [[ -n "$t" ]] && cp "$t" "$out/trace_b$b$sfx.json.gz"
  fi
}
for b in 64 256; do
  profile $b ""
done
# The up-convolution differentiated by autodiff (model.upsample=transpose),
# against the default above (transpose_wgrad: its gradients as a strided
# convolution's backward).
for b in 64 256; do
  bench "b${b}_k10_eager_tr" 120 --config.train.batch_size=$b --compare=torch $k10 \
    --config.model.upsample=transpose
  profile $b _tr --config.model.upsample=transpose
done
# The CPU's patch dots (model.patch_dots=on; 'auto' keeps them off on GPUs),
# JAX alone: compare with b64_k10_jax and the JAX-alone part of
# b256_k10_profile.
for b in 64 256; do
  bench "b${b}_k10_pd" 90 --config.train.batch_size=$b $k10 --config.model.patch_dots=on
done
# Is batch 64 bound by the host? JAX alone at 1, 10, 50 and 100 steps per
# call with 1,000 steps a block (b64_kK_jax), and 200 steps traced at K=50
# (b64_k50_profile, trace to OUT_DIR/trace_b64_k50.json.gz).
for k in 1 10 50 100; do
  bench "b64_k${k}_jax" 90 --config.train.batch_size=64 --config.train.steps_per_call=$k \
    --steps=1000
done
if bench "b64_k50_profile" 90 --config.train.batch_size=64 --config.train.steps_per_call=50 \
    --profile="$out/profile_b64_k50" --profile_steps=200; then
  t=$(find "$out/profile_b64_k50" -name perfetto_trace.json.gz | sort | tail -n 1)
  [[ -n "$t" ]] && cp "$t" "$out/trace_b64_k50.json.gz"
fi
for b in 64 256; do
  bench "b${b}_k10_compile" 200 --config.train.batch_size=$b --compare=torch $k10 \
    --torch_compile=default
done
for b in 64 256; do
  bench "b${b}_k10_compile_ro" 200 --config.train.batch_size=$b --compare=torch $k10 \
    --torch_compile=reduce-overhead
done
for b in 64 256; do
  bench "b${b}_k10_compile_ma" 420 --config.train.batch_size=$b --compare=torch $k10 \
    --torch_compile=max-autotune
done
rm -f "$out/run.log" "$out/run.err"

"$py" - "$out/results.jsonl" <<'EOF'
import json, sys
# Dense peaks of the SXM H100/H200 datasheets, TFLOP/s: TF32 (what XLA uses
# for float32 dots and convolutions by default) and bf16.
PEAK = {"float32": 494.7, "bfloat16": 989.4}
try:
  rows = [json.loads(line) for line in open(sys.argv[1])]
except FileNotFoundError:
  rows = []
print(f"{'run':22} {'jax img/s':>10} {'torch img/s':>11} {'ratio':>6} {'TFLOP/s':>8} "
      f"{'%peak':>6} {'GFLOP/step':>10} {'jax MiB':>8} {'torch MiB':>9}")
for row in rows:
  r = row["result"]
  t = r.get("torch_images_per_sec")
  tf = r.get("jax_tflops_per_sec")
  peak = PEAK.get(r.get("compute_dtype"))
  print(f"{row['name']:22} {r['jax_images_per_sec']:10.0f} "
        f"{'-' if t is None else f'{t:.0f}':>11} "
        f"{'-' if r.get('ratio') is None else format(r['ratio'], '.2f'):>6} "
        f"{'-' if tf is None else f'{tf:.2f}':>8} "
        f"{'-' if tf is None or peak is None else f'{100 * tf / peak:.2f}':>6} "
        f"{'-' if r.get('flops_per_step') is None else format(r['flops_per_step'] / 1e9, '.2f'):>10} "
        f"{r.get('jax_peak_device_mb') or '-'!s:>8.8} {r.get('torch_peak_device_mb') or '-'!s:>9.9}")
EOF
