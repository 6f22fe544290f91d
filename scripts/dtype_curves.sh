#!/usr/bin/env bash
# bfloat16 against float32 training curves (BENCHMARKS.md, "Training curves:
# bfloat16 against float32"), on whatever backend JAX finds:
#
#   bash scripts/dtype_curves.sh OUT_DIR [MNIST_IDX_FOLDER]
#
# Trains experiments/mnist.py on the 10,000-digit MNIST test set in IDX files
# (default ../shared/data/mnist) once per dtype and seed, one run at a time,
# into OUT_DIR/DTYPE_seedS, with the protocol of that BENCHMARKS.md
# section: NUM_STEPS (2000) steps, evaluation (FID/KID/IS/precision/
# recall on LeNet features) every EVAL_EVERY (1000) steps, losses logged every
# 50. Then prints one line per run: the mean d_loss / g_loss / D(x) / D(G(z))
# over the logged steps of the second and fourth quarter of the run, and every
# evaluation. Each run's log is OUT_DIR/DTYPE_seedS.log. Exits 1 if any run
# failed or was skipped. Use a fresh OUT_DIR: gan_jax.main resumes a workdir
# that holds checkpoints.
#
# Environment: PYTHON (python3), SEEDS ("0 1"), DTYPES ("float32 bfloat16"),
# NUM_STEPS, EVAL_EVERY, DEADLINE_S (no run starts after this many seconds;
# default: none), EXTRA (more gan_jax.main flags for every run). A 2,000-step
# run takes about 160 s on a 2-core CPU and 30-34 s on an H100 (BENCHMARKS.md).
set -u
out=${1:?usage: bash scripts/dtype_curves.sh OUT_DIR [MNIST_IDX_FOLDER]}
data=${2:-../shared/data/mnist}
py=${PYTHON:-python3}
steps=${NUM_STEPS:-2000}
every=${EVAL_EVERY:-1000}
deadline=${DEADLINE_S:-0}
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0

for seed in ${SEEDS:-0 1}; do
  for dtype in ${DTYPES:-float32 bfloat16}; do
    name=${dtype}_seed${seed}
    if ((deadline > 0 && SECONDS > deadline)); then
      echo "$name: skipped, past the ${deadline} s deadline"
      status=1
      continue
    fi
    t0=$SECONDS
    "$py" -m gan_jax.main --config=experiments/mnist.py --workdir="$out/$name" \
      --config.data.source=idx --config.data.split=test --config.data.path="$data" \
      --config.train.num_steps="$steps" --config.eval.every="$every" \
      --config.train.log_every=50 --config.train.compute_dtype="$dtype" \
      --config.seed="$seed" "${extra[@]}" > "$out/$name.log" 2>&1
    rc=$?
    ((rc == 0)) || status=1
    echo "$name: rc=$rc in $((SECONDS - t0)) s"
  done
done

"$py" - "$out" "$steps" <<'EOF'
import glob, json, os, statistics, sys
out, steps = sys.argv[1], int(sys.argv[2])
quarter = steps // 4
windows = [(quarter + 1, 2 * quarter), (3 * quarter + 1, steps)]
for path in sorted(glob.glob(os.path.join(out, "*_seed*", "metrics.jsonl"))):
  rows = []
  for line in open(path):
    try:
      rows.append(json.loads(line))
    except ValueError:  # a line torn by a killed run: the run's resume truncates it
      pass
  cells = []
  for lo, hi in windows:
    sel = [r for r in rows if lo <= r["step"] <= hi and "d_loss" in r]
    cells.append(f"{lo}-{hi}: " + "/".join(
        f"{statistics.mean(r[k] for r in sel):.2f}" if sel else "-"
        for k in ("d_loss", "g_loss", "d_real", "d_fake")))
  evals = [f"@{r['step']}: FID {r['eval/fid']:.1f} P {r['eval/precision']:.2f} "
           f"R {r['eval/recall']:.2f}" for r in rows if "eval/fid" in r]
  print(f"{os.path.basename(os.path.dirname(path)):18} " + " | ".join(cells + evals))
EOF
exit $status
