"""Evaluates a trained generator and prints its metrics beside the noise floor.

  python scripts/evaluate.py --workdir=W [--step=best|latest|N|init] \
    [--num_samples=N] [--real_vs_real]

* Generates --num_samples images (default: the run's eval.num_samples) from a
  fixed latent seed and computes FID, KID, IS, precision/recall and
  density/coverage against as many real images (features: eval.extractor,
  LeNet for MNIST-family data), or the mode metrics for the 2-D toy data.
* --step=init evaluates the untrained generator the run started from (the
  config's seed), a baseline for how far training moved.
* --real_vs_real also computes every metric between two disjoint sets of real
  images of the evaluation's sizes (real and generated): the floor the sample
  size allows. It is printed beside the model's numbers. When the data holds
  too few images for that, both sets shrink in proportion, a note says so, and
  the JSON's real_vs_real_sizes gives the sizes used. Image data only.
* Writes W/eval/step_<N>.json (step_init.json for --step=init); for the 2-D toy
  data also W/eval/step_<N>_scatter.png, beside training's own scatter_<N>.png.

Runs record data.path absolute. For a run recorded with a relative path (before
2026-11-26), run this from the directory the training ran from.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
flags.DEFINE_string("step", None, "best, latest, a step number, or init (untrained G).")
flags.DEFINE_integer("num_samples", 0, "Generated (and real) images; 0: config.eval.num_samples.")
flags.DEFINE_bool("real_vs_real", False, "Also compute the real-vs-real floor.")
FLAGS = flags.FLAGS


def _init_generator(config):
  """The untrained G of this run: create_state with the run's seed."""
  from gan_jax import models, steps
  from gan_jax.state import create_state, make_optimizers
  G, D = models.build(config)
  state = create_state(config, G, D, *make_optimizers(config))
  fn = steps.make_sample_fn(G)
  return lambda z: fn(state.g.params, state.g.collections, z)


def main(argv):
  del argv
  from absl import logging
  from gan_jax import analysis, data, evaluate
  from gan_jax.files import atomic_write
  logging.set_verbosity(logging.WARNING)
  if FLAGS.step == "init":
    config = analysis.run_config(FLAGS.workdir)  # a workdir's or an export's
    step_name, generate = "init", _init_generator(config)
  else:
    run = analysis.load_run(FLAGS.workdir, FLAGS.step)
    config, step_name, generate = run.config, str(run.step), run.generate
  config.unlock()
  if FLAGS.real_vs_real and config.data.source == "toy":
    raise ValueError("--real_vs_real is for image data; the toy metrics already compare "
                     "against the known mixture")
  if FLAGS.num_samples < 0:
    raise ValueError(f"--num_samples={FLAGS.num_samples} must be 0 (the run's "
                     "eval.num_samples) or a number of images")
  if FLAGS.num_samples:
    config.eval.num_samples = FLAGS.num_samples
    config.eval.num_real = FLAGS.num_samples
  evaluate.check_sizes(config)  # before the data loads; its size: by the Evaluator
  images = data.load(config.data).images
  if FLAGS.real_vs_real:  # its sizes, refused before the evaluation runs, not after
    n_real, n_fake, a, b = evaluate.floor_sizes(config, len(images))
  out_dir = os.path.join(FLAGS.workdir, "eval")
  # a toy run's scatter plot goes beside this script's JSON, never over the
  # one training drew at that step (possibly from other settings)
  scatter = os.path.join(out_dir, f"step_{step_name}_scatter.png")
  results = evaluate.Evaluator(config, images, FLAGS.workdir)(
      generate, 0 if step_name == "init" else int(step_name), scatter_path=scatter)
  floor, floor_n = {}, None
  if FLAGS.real_vs_real:
    if (a, b) != (n_real, n_fake):
      print(f"note: the data holds {len(images)} images, too few for a real-vs-real floor at "
            f"the evaluation's sizes ({n_real} real, {n_fake} generated); the floor uses "
            f"{a} and {b} disjoint real images, so it is higher than the true floor at this "
            "sample size", flush=True)
    floor, floor_n = evaluate.real_vs_real(config, images)
  print(f"{'metric':<18}{'step ' + step_name:>14}" + (f"{'real vs real':>16}" if floor else ""))
  for k, v in results.items():
    print(f"{k:<18}{v:>14.5g}" + (f"{floor[k]:>16.5g}" if k in floor else ""))
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"step_{step_name}.json")
  with atomic_write(path) as f:  # a crash never leaves a torn result
    json.dump({"step": step_name, "num_samples": config.eval.num_samples,
               "num_real": evaluate.eval_sizes(config, len(images))[0],
               "metrics": results, "real_vs_real": floor,
               "real_vs_real_sizes": list(floor_n) if floor_n else None}, f, indent=2)
  print(f"wrote {path}" + (f" and {scatter}" if config.data.source == "toy" else ""))


if __name__ == "__main__":
  try:
    app.run(main)
  except Exception as e:  # one line for a user; the traceback is not the message
    if os.environ.get("GAN_JAX_VERBOSE"):
      raise
    print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
