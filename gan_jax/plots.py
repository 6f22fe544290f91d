"""Matplotlib figures for analysing a run: image grids, metric curves and
nearest-neighbour tables. Every function returns a `matplotlib.figure.Figure`
made without pyplot (no global state, no backend chosen, nothing shown);
notebooks display it with `display(fig)`, anything can `fig.savefig(path)`.
Images are NHWC float arrays in [-1, 1], or uint8 arrays in [0, 255] (a
dataset's own images), as `neighbors.nearest_neighbors` reads them.
"""
from __future__ import annotations

import numpy as np

from gan_jax.data.common import to_signed


def _figure(width: float, height: float):
  from matplotlib.figure import Figure  # no pyplot: no global state, no backend
  return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _signed(images) -> np.ndarray:
  """uint8 [0, 255] -> float [-1, 1]; float images as they are."""
  images = np.asarray(images)
  return to_signed(images) if images.dtype == np.uint8 else images


def plot_grid(images, ncols: int | None = None, title: str | None = None,
              scale: float | None = None):
  """A grid of [-1, 1] NHWC images as one Figure; `scale` screen px per image
  px (by default about 500 px along the longer side)."""
  from gan_jax.writers import image_grid
  images = _signed(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"plot_grid draws NHWC images of 1 or 3 channels, not shape "
                     f"{images.shape} (2-D toy points: see eval/scatter_*.png)")
  grid = image_grid(images, ncols)
  h, w = grid.shape[:2]
  scale = scale or max(1.0, 500 / max(h, w))
  fig = _figure(max(w * scale / 100, 1.5), max(h * scale / 100, 1.0) + (0.3 if title else 0))
  ax = fig.add_subplot()
  ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
            interpolation="nearest")
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=9)
  return fig


TRAIN_PANELS = {"losses": ("d_loss", "g_loss"), "D outputs": ("d_real", "d_fake"),
                "D logits": ("d_real_logit", "d_fake_logit"),
                "gradient norms": ("d_grad_norm", "g_grad_norm")}
# Logged with every training row, but not curves of the game.
NOT_CURVES = ("step", "steps_per_sec", "images_per_sec")


def train_panels(columns) -> dict:
  """TRAIN_PANELS, then one panel for each other training metric in `columns`
  (a penalty, a loss's own reading): whatever keys the run logged."""
  grouped = {c for cols in TRAIN_PANELS.values() for c in cols}
  rest = [c for c in columns
          if c not in grouped and c not in NOT_CURVES and not c.startswith("eval/")]
  return {**TRAIN_PANELS, **{c: (c,) for c in rest}}


def plot_curves(metrics, which: str = "all", panels: dict | None = None,
                title: str | None = None):
  """Metrics (a DataFrame with a 'step' column) against step. `which`:
  'train' (losses; what the loss reports of D's outputs, e.g. mean D(x) and
  D(G(z)); the norms of D's and G's averaged gradients; then every other
  training metric the run logged, e.g. a penalty), 'eval' (one panel per eval/*
  metric, with a +-std band where an eval/*_std column exists) or 'all'; or
  explicit `panels` ({panel title: [columns]}). Infinite values (a toy run's
  eval/reverse_kl when a mode gets no sample) cannot be drawn: the panel's
  title says how many there are, so that a gap in the line is explained."""
  if which not in ("all", "train", "eval"):
    raise ValueError(f"which={which!r} is unknown; valid: all, train, eval")
  if panels is None:
    panels = train_panels(metrics.columns) if which != "eval" else {}
    if which != "train":
      panels.update({c[5:]: (c,) for c in metrics.columns
                     if c.startswith("eval/") and not c.endswith("_std")})
  panels = {t: [c for c in cols if c in metrics.columns and metrics[c].notna().any()]
            for t, cols in panels.items()}
  panels = {t: cols for t, cols in panels.items() if cols}
  ncols = min(3, max(len(panels), 1))
  nrows = max(1, -(-len(panels) // ncols))
  fig = _figure(4 * ncols, 2.8 * nrows)
  if title:
    fig.suptitle(title)
  if not panels:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, f"no {'' if which == 'all' else which + ' '}metrics to plot",
            ha="center", va="center")
    ax.set_axis_off()
    return fig
  for n, (t, cols) in enumerate(panels.items()):
    ax = fig.add_subplot(nrows, ncols, n + 1)
    infinite = []
    for c in cols:
      d = metrics[["step", c]].dropna()
      inf = np.isinf(d[c].to_numpy(np.float64))
      if inf.any():
        infinite.append(f"{c} infinite at {inf.sum()} of {len(d)} steps")
        d = d[~inf]
      std = c + "_std"
      marker = "o" if len(d) < 30 else None
      ax.plot(d["step"], d[c], label=c, marker=marker, lw=1)
      if std in metrics.columns:
        s = metrics.loc[d.index, std].fillna(0)
        ax.fill_between(d["step"], d[c] - s, d[c] + s, alpha=0.2)
    ax.set_title("\n".join([t, *infinite]), fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(cols) > 1:
      ax.legend(fontsize=8)
  return fig


def plot_runs(runs: dict, columns=("d_loss", "g_loss", "d_real", "d_fake"),
              smooth: int = 1, title: str | None = None):
  """Several runs on shared axes: one panel per metric column, one line per
  run. `runs` maps a label to a metrics DataFrame (`analysis.read_metrics`);
  `smooth` > 1 is a centred moving average over that many logged rows of the
  training metrics (eval/* points are drawn as they are).
  A run without a column is left out of that panel; empty panels are dropped."""
  panels = {}
  for c in columns:
    lines = {label: df[["step", c]].dropna() for label, df in runs.items() if c in df.columns}
    lines = {label: d for label, d in lines.items() if len(d)}
    if lines:
      panels[c] = lines
  if not panels:
    raise ValueError(f"none of the runs {sorted(runs)} has any of the columns {list(columns)}")
  ncols = min(2, len(panels))
  nrows = -(-len(panels) // ncols)
  fig = _figure(4.5 * ncols, 3 * nrows)
  if title:
    fig.suptitle(title)
  for n, (c, lines) in enumerate(panels.items()):
    ax = fig.add_subplot(nrows, ncols, n + 1)
    for label, d in lines.items():
      y = d[c]
      if smooth > 1 and not c.startswith("eval/"):
        y = y.rolling(smooth, center=True, min_periods=1).mean()
      ax.plot(d["step"], y, label=label, marker="o" if len(d) < 30 else None, lw=1)
    ax.set_title(c, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  return fig


def plot_neighbors(samples, real, indices, distances=None, title: str | None = None):
  """Each row: a sample, then its nearest real images (distance above each)."""
  n, k = indices.shape
  fig = _figure(1.1 * (k + 1) + 0.2, 1.15 * n + (0.3 if title else 0))
  if title:
    fig.suptitle(title, fontsize=10)
  for r in range(n):
    row = [_signed(samples[r])] + [_signed(real[j]) for j in indices[r]]
    for c, img in enumerate(row):
      ax = fig.add_subplot(n, k + 1, r * (k + 1) + c + 1)
      img = np.clip((np.asarray(img) + 1) / 2, 0, 1)
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        if r == 0:
          ax.set_title("sample", fontsize=7, color="tab:red")
        for s in ax.spines.values():
          s.set_edgecolor("tab:red")
      elif distances is not None:
        ax.set_title(f"{distances[r, c - 1]:.2f}", fontsize=7)
  return fig
