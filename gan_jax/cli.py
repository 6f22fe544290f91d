"""Command-line plumbing shared by `gan_jax.main` and the scripts: absl flag
parsing in which every failure (an unknown flag, a missing or broken config
file, an override of a setting the config lacks) is one line on stderr, and
the filter that keeps a failed checkpoint save or restore to its one line."""
from __future__ import annotations

import ast
import os
import re
import sys

from absl import flags, logging

FLAGS = flags.FLAGS


def fail(message: str, code: int = 1):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def run_script(main) -> None:
  """Exits with `main()`'s code; an exception is one `error:` line (exit 1),
  and its traceback only with GAN_JAX_VERBOSE set. For argparse scripts."""
  try:
    sys.exit(main())
  except Exception as e:  # one line for a user; the traceback is not the message
    if os.environ.get("GAN_JAX_VERBOSE"):
      raise
    fail(f"{type(e).__name__}: {e}")


def flag_error(argv: list[str], e: Exception) -> str:
  """One line for a failure to parse the flags or load the config file."""
  config_arg = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if config_arg is not None:
    path = config_arg.split(":", 1)[0]
    if not os.path.isfile(path):
      return (f"--config={config_arg}: no such file; pass an experiment config such as "
              "experiments/digits.py")
  if isinstance(e, (KeyError, AttributeError)):  # an override names a missing field
    # ml_collections: "'key'", then for a near miss 'Did you mean "k" instead of "key"?'
    # (ml_collections re-raises the KeyError as an AttributeError of its str(),
    # which is the repr of the message: undo that)
    msg = str(e.args[0] if e.args else e)
    if msg[:1] in "'\"" and "\\n" in msg:
      try:
        msg = ast.literal_eval(msg)
      except (ValueError, SyntaxError):
        pass
    first, *rest = msg.splitlines() or [""]
    key = first.strip("'\"")
    near = re.match(r'Did you mean "([^"]+)"', rest[0]) if rest else None
    for a in argv:
      name = a.split("=", 1)[0]
      if name.startswith("--config.") and key in name.split(".")[1:]:
        return (f"{name}: the config has no such setting"
                + (f" (did you mean {near.group(1)}?)" if near else ""))
  if isinstance(e, flags.Error):
    return str(e).splitlines()[0]
  text = " ".join(str(e).split())
  text = re.sub(r"^Configuration is not available because of an earlier failure to load: ",
                "", text)
  return f"--config={config_arg}: could not be loaded ({type(e).__name__}: {text[:300]})"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, but every failure is one line on stderr and exit code 2."""
  try:
    rest = FLAGS(argv)
    # The config file loads lazily, on first attribute access: load it now, so
    # that a missing or broken file fails here, as one line.
    FLAGS.config.keys()
    return rest
  except Exception as e:  # flags.Error, or whatever loading the config file raised
    if "--verbose" in argv and "verbose" in FLAGS:  # (a script may have no --verbose)
      raise
    fail(flag_error(argv, e), code=2)


def quiet_background_errors() -> None:
  """Keeps a failed checkpoint save or restore to its one-line error. A save
  that fails (a full disk) reaches the training loop as checkpoint.SaveError,
  and a restore that fails (a truncated or corrupt checkpoint: analysis,
  scripts/sample.py, scripts/export.py) as CheckpointError; each is one line.
  Meanwhile each Orbax thread and asyncio loop that the save or restore ran in
  reports it too, with a traceback: Orbax and asyncio log it (asyncio: 'exception
  was never retrieved'), and TensorStore reads and writes that finish after
  Orbax closed their event loop raise 'Event loop is closed' as unraisable
  exceptions. Those reports, from Orbax's and asyncio's code (no other code
  here uses asyncio), are dropped, and so is the RuntimeWarning "coroutine ...
  was never awaited" for a write that Orbax's closed loop never ran; other
  warnings and everything else are kept."""
  import logging as py_logging
  import traceback
  import warnings
  warnings.filterwarnings("ignore", message=r"coroutine .* was never awaited",
                          category=RuntimeWarning)
  libraries = (f"{os.sep}orbax{os.sep}", f"{os.sep}asyncio{os.sep}")

  def keep(record):
    return record.levelno < py_logging.ERROR or not any(
        d in record.pathname for d in libraries)
  logging.get_absl_logger().addFilter(keep)
  py_logging.getLogger("asyncio").addFilter(keep)
  default_hook = sys.unraisablehook

  def unraisable(u):
    files = [f.filename for f in traceback.extract_tb(u.exc_traceback)]
    if not any(d in f for f in files for d in libraries):
      default_hook(u)
  sys.unraisablehook = unraisable
