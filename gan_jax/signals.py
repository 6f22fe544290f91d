"""SIGTERM/SIGINT handling for a training run, with no module-level state:
what a handler has seen lives in the handler object, which the process's
signal table holds.

* `defer_early_interrupts` (main, before JAX is imported): a Ctrl-C that
  comes before training starts is remembered, not raised wherever the program
  is: inside JAX's garbage-collection callback a KeyboardInterrupt is printed
  and dropped (the run trained on), and inside a native module's import it can
  crash the process. A second Ctrl-C raises at once.
* `StopFlag` (training): the first SIGTERM/SIGINT becomes a flag the loop
  checks after each call, and the handlers that were there before come back,
  so a second signal aborts. A deferred early Ctrl-C stops training as it
  begins.
* `SecondSignal`: the KeyboardInterrupt of a second signal, raised by
  training once a first one had been taken.
"""
from __future__ import annotations

import signal
import threading


class SecondSignal(KeyboardInterrupt):
  """A second signal came while training handled its first (args: its name)."""


class EarlyInterrupts:
  """The SIGINT handler before training: remembers the first Ctrl-C and
  raises KeyboardInterrupt at a second."""

  def __init__(self):
    self.interrupted = False

  def __call__(self, signum, frame):
    if self.interrupted:
      raise KeyboardInterrupt
    self.interrupted = True


def defer_early_interrupts() -> None:
  """Installs an EarlyInterrupts handler (not where SIGINT is ignored)."""
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, EarlyInterrupts())


def stop_deferring() -> bool:
  """Python's own SIGINT handler again; whether a Ctrl-C had been deferred."""
  handler = signal.getsignal(signal.SIGINT)
  if not isinstance(handler, EarlyInterrupts):
    return False
  signal.signal(signal.SIGINT, signal.default_int_handler)
  return handler.interrupted


def raise_if_interrupted_early() -> None:
  handler = signal.getsignal(signal.SIGINT)
  if isinstance(handler, EarlyInterrupts) and handler.interrupted:
    raise KeyboardInterrupt


class StopFlag:
  """`with StopFlag() as stop:` ... `stop.signal` is the first signal's name
  (None until one comes); the original handlers come back then."""

  def __init__(self):
    self.signal = None
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is not threading.main_thread():
      return self
    deferred = stop_deferring()  # what the first signal gives back: a second one aborts
    for s in (signal.SIGTERM, signal.SIGINT):
      self._old[s] = signal.signal(s, self._handle)
    if deferred:  # a Ctrl-C that came before training began
      self._restore()
      raise KeyboardInterrupt
    return self

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name
    self._restore()

  def _restore(self):
    for s, h in self._old.items():
      signal.signal(s, h)
    self._old = {}

  def __exit__(self, exc_type, exc, tb):
    self._restore()
    if self.signal and isinstance(exc, KeyboardInterrupt) and not isinstance(exc, SecondSignal):
      raise SecondSignal(self.signal) from exc
