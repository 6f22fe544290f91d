"""DCGAN (Radford et al. 2015) on MNIST, non-saturating loss, 28x28.

With TFDS (needs the dataset prepared once, or --config.data.data_dir):

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/mnist

Offline, on the 10,000-digit MNIST test set in IDX files:

  python -m gan_jax.main --config=experiments/mnist.py --workdir=/tmp/m \
    --config.data.source=idx --config.data.split=test \
    --config.data.path=../shared/data/mnist --config.train.num_steps=2000 \
    --config.eval.every=1000 --config.train.log_every=50

On a 2-core CPU (batch 64) the training step alone runs at ~15 steps/s on an
idle machine (scripts/benchmark.py; 13-14 before the patch dots of
model.patch_dots, BENCHMARKS.md "Eleventh session", and 9-10 before the CPU
changes of the "Eighth session"), and at about half that while other jobs
share the cores. That command (evaluation is off unless eval.every > 0)
took 158 s for its 2,000 steps and two evaluations (seed 0, 2026-11-26, with the
patch dots), and 144 s when run again later that day, with the same FIDs; the
logged rate was 13-16 steps/s. Digits are recognisable
in samples/ from ~1,000 steps on; at 2,000 about half of the 64 samples are
clear digits and the rest digit-like strokes. The evaluation is
FID/KID/IS/precision/recall on LeNet features (real-vs-real FID floor 7.1).
That run measured FID 140.7/87.9 at steps 1,000/2,000 (precision/recall at
2,000: 0.64/0.74).
Each change of the CPU convolutions' form keeps the function but changes
their rounding, and so the trajectory. Earlier forms measured, for seeds 0
and 1, 149.9/97.2 and 152.1/99.6 (`transpose_wgrad` without patch dots;
precision/recall at 2,000: 0.66/0.70 and 0.63/0.78), 139 and 90 (the first
form), and 139.9/100.3 and 136.6/96.1 (`subpixel`). With `subpixel`,
--config.train.compute_dtype=bfloat16 gave 144.2/102.7 and 147.2/99.1; it is
slower on a CPU (see BENCHMARKS.md).

On one NVIDIA H200 the training step alone (scripts/benchmark.py, no logging,
sampling or evaluation) ran at ~890-980 steps/s at batch 64 and ~490 at batch
256; --config.train.steps_per_call=10 gave ~1,050 at batch 64, and
--config.train.compute_dtype=bfloat16 with it ~1,280 (batch 64) and ~980
(batch 256). 10,000 steps are then well under a minute of stepping. On one
NVIDIA H100 the same runs gave ~760-1,010 (batch 64; the lower end was the
unsteady first run on a fresh machine) and ~483 (batch 256); ~1,040 with
steps_per_call=10, and with bfloat16 ~1,230 (batch 64) and ~970 (batch 256).
These GPU numbers are for the GPU default of then, model.upsample=transpose.
Under the default of now (transpose_wgrad on GPUs too), a third H100 ran the
step at ~930 steps/s with steps_per_call=1 at both batch 64 (its blocks
ranged from 660 to 1,340) and 256; with steps_per_call=10 at ~1,250-1,430
(batch 64) and ~970-1,000 (batch 256), and in bfloat16 at ~1,365 and ~1,173.
A later session measured ~1,470 steps/s at batch 64 on an H100 with
steps_per_call 10, 50 or 100 alike (~916 with 1), and on an H200 ~1,430-1,480
(batch 64) and ~1,020-1,030 (batch 256) with steps_per_call=10.
With BatchNorm's sums taken in two stages (model.batchnorm, whose default
'auto' does that on GPUs for the 7x7 layers at batch 64), an H100 ran the
batch-64 step at ~1,655-1,755 steps/s against ~1,410-1,465 with flax's
BatchNorm, and ~1,970 with --config.model.patch_dots=on as well (those runs set
model.batchnorm=two_stage; BENCHMARKS.md, fourteenth session).
On an H200 at batch 64 (fifteenth session) the default 'auto' ran at
~1,540-1,700 steps/s, flax's BatchNorm at ~1,470 and
--config.model.batchnorm=two_stage at ~1,600-1,960: at batch 64 or less on a
GPU, pass that flag. bfloat16 is slower than float32 there now (~1,360).
On an H100 the offline command above with --config.eval.every=1000
--config.train.log_every=50 took 30-34 s per 2,000-step run (start-up,
compilation, two evaluations and checkpoints included) and measured FID
86.8/92.0/104.3 at step 2,000 for seeds 0/1/2, and 87.2/94.3/103.0 in bfloat16
(`SEEDS="0 1 2" bash scripts/dtype_curves.sh OUT_DIR ../shared/data/mnist`
runs them; these curves, too, were made with model.upsample=transpose).
"""
from gan_jax.config import base_config


def get_config():
  c = base_config()
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.data.image_size = 28
  c.data.channels = 1
  c.model.name = "dcgan"
  c.train.loss = "non_saturating"
  c.train.num_steps = 10_000
  return c
