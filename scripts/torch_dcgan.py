"""PyTorch twins of gan_jax's DCGAN and MLP GANs and of its train step, used only
as the baseline of scripts/benchmark.py (torch is the `benchmark` extra, never a
runtime dependency of gan_jax).

The architecture, parameter count, optimizer, loss and update order follow
gan_jax.models and gan_jax.steps:

* D step: z ~ N(0, 1); G(z) in train mode without gradients; D on the real batch
  and on the fake batch as two separate train-mode calls (two sets of BatchNorm
  batch statistics); BCE-with-logits loss; one Adam update of D.
* G step: fresh z; G and D in train mode; D's weights get no gradient (its
  `requires_grad` is switched off, as XLA drops the unused D weight gradients);
  one Adam update of G.
* Real batches are drawn by uniform random indices (with replacement) from a
  device-resident uint8 tensor and scaled to [-1, 1] on the device.

Harmless differences: torch BatchNorm updates its running statistics in
every train-mode call, where gan_jax keeps only those of the updated network,
and its running variance is the unbiased one (flax keeps the biased one);
the MLP twin starts from torch's default initialisation, not flax's (the DCGAN
twin from the same N(0, 0.02)); and weight layouts differ (NCHW vs NHWC),
which permutes but does not change the parameters. None changes the cost of a
step: from the same weights and batches both take the same steps
(tests/test_benchmark.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN = dict(momentum=0.1, eps=1e-5)  # = flax BatchNorm(momentum=0.9, epsilon=1e-5)


def dcgan_plan(image_size: int) -> tuple[int, int]:
  from gan_jax.models.dcgan import dcgan_plan as plan
  return plan(image_size)


def _init_dcgan(module: nn.Module) -> None:
  """Radford et al. 2015: weights ~ N(0, 0.02), biases 0 (as DCGAN_INIT)."""
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      nn.init.normal_(m.weight, 0.0, 0.02)
      if m.bias is not None:
        nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
  def __init__(self, image_size: int, channels: int, base: int, z_dim: int):
    super().__init__()
    s0, n = dcgan_plan(image_size)
    feats = base * 2 ** (n - 1)
    self.s0, self.feats = s0, feats
    self.fc = nn.Linear(z_dim, s0 * s0 * feats, bias=False)
    self.bn0 = nn.BatchNorm2d(feats, **BN)
    layers = []
    for i in range(n - 1):
      out = base * 2 ** (n - 2 - i)
      layers += [nn.ConvTranspose2d(feats, out, 4, 2, 1, bias=False),
                 nn.BatchNorm2d(out, **BN), nn.ReLU(inplace=True)]
      feats = out
    layers += [nn.ConvTranspose2d(feats, channels, 4, 2, 1, bias=True), nn.Tanh()]
    self.body = nn.Sequential(*layers)
    _init_dcgan(self)

  def forward(self, z):
    x = self.fc(z).view(z.shape[0], self.feats, self.s0, self.s0)
    return self.body(F.relu(self.bn0(x)))


class DCGANDiscriminator(nn.Module):
  def __init__(self, image_size: int, channels: int, base: int):
    super().__init__()
    s0, n = dcgan_plan(image_size)
    layers, cin = [], channels
    for i in range(n):
      out = base * 2 ** i
      layers.append(nn.Conv2d(cin, out, 4, 2, 1, bias=(i == 0)))
      if i > 0:
        layers.append(nn.BatchNorm2d(out, **BN))
      layers.append(nn.LeakyReLU(0.2, inplace=True))
      cin = out
    self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * s0 * s0, 1))
    _init_dcgan(self)

  def forward(self, x):
    return self.body(x)[:, 0]


class MLPGenerator(nn.Module):
  def __init__(self, image_size: int, channels: int, hidden, z_dim: int):
    super().__init__()
    layers, cin = [], z_dim
    for h in hidden:
      layers += [nn.Linear(cin, h), nn.ReLU(inplace=True)]
      cin = h
    self.shape = (channels, image_size, image_size)
    self.body = nn.Sequential(*layers, nn.Linear(cin, channels * image_size ** 2), nn.Tanh())

  def forward(self, z):
    return self.body(z).view(z.shape[0], *self.shape)


class MLPDiscriminator(nn.Module):
  def __init__(self, image_size: int, channels: int, hidden):
    super().__init__()
    layers, cin = [nn.Flatten()], channels * image_size ** 2
    for h in hidden:
      layers += [nn.Linear(cin, h), nn.LeakyReLU(0.2, inplace=True)]
      cin = h
    self.body = nn.Sequential(*layers, nn.Linear(cin, 1))

  def forward(self, x):
    return self.body(x)[:, 0]


def build(config):
  """(G, D) torch modules for `config`, mirroring gan_jax.models.build."""
  d, m = config.data, config.model
  if m.name == "dcgan":
    return (DCGANGenerator(d.image_size, d.channels, m.g_features, m.z_dim),
            DCGANDiscriminator(d.image_size, d.channels, m.d_features))
  if m.name == "mlp":
    return (MLPGenerator(d.image_size, d.channels, tuple(m.g_hidden), m.z_dim),
            MLPDiscriminator(d.image_size, d.channels, tuple(m.d_hidden)))
  raise ValueError(f"--compare=torch has no PyTorch twin of model.name={m.name!r}; "
                   "supported: dcgan, mlp")


def count_params(module: nn.Module) -> int:
  return sum(p.numel() for p in module.parameters())


def d_loss_bce(real_logits, fake_logits):
  """-[log D(x) + log(1 - D(G(z)))] = softplus(-l_real) + softplus(l_fake)."""
  return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
          + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


G_LOSSES = {
    # -log D(G(z)) = softplus(-l)
    "non_saturating": lambda l: F.binary_cross_entropy_with_logits(l, torch.ones_like(l)),
    # log(1 - D(G(z))) = -softplus(l)
    "minimax": lambda l: -F.binary_cross_entropy_with_logits(l, torch.zeros_like(l)),
}


def _compiled_step(opt, mode: str):
  """`opt.step()` compiled as in the PyTorch compiled-optimizer recipe."""
  @torch.compile(mode=mode)
  def step():
    opt.step()
  return step


class Trainer:
  """G, D, their Adam optimizers, and the data; `train_steps(n)` runs n full steps."""

  def __init__(self, config, images_u8, device: str = "cpu", seed: int = 0,
               compile_mode: str | None = None, channels_last: bool = False):
    """`images_u8`: numpy uint8 NHWC, moved to `device` once as uint8 NCHW.

    `compile_mode` (None: eager) compiles what a PyTorch user would compile:
    `torch.compile(G)`, `torch.compile(D)` (forward and backward through
    TorchDynamo/Inductor) and each optimizer's `step`, with that `mode`
    ("default", "reduce-overhead" = CUDA graphs, "max-autotune").

    `channels_last` stores the convolution weights, the real batches and hence
    the activations in torch.channels_last (NHWC) memory order, the PyTorch
    performance guide's advice for convolutions on tensor cores; the step
    computes the same function.
    """
    t = config.train
    if t.compute_dtype != "float32":
      raise ValueError("--compare=torch supports config.train.compute_dtype='float32' only, "
                       f"got {t.compute_dtype!r}")
    if t.loss not in G_LOSSES:
      raise ValueError(f"--compare=torch has no PyTorch loss {t.loss!r}; valid: "
                       f"{', '.join(sorted(G_LOSSES))}")
    torch.manual_seed(seed)
    self.device = torch.device(device)
    self.G, self.D = (m.to(self.device).train() for m in build(config))
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
      self.G, self.D = (m.to(memory_format=torch.channels_last) for m in (self.G, self.D))
    adam = dict(betas=(t.b1, t.b2), eps=1e-8)  # optax.adam's defaults
    self.g_opt = torch.optim.Adam(self.G.parameters(), lr=t.g_lr, **adam)
    self.d_opt = torch.optim.Adam(self.D.parameters(), lr=t.d_lr, **adam)
    self.images = torch.from_numpy(images_u8).permute(0, 3, 1, 2).contiguous().to(self.device)
    self.batch, self.z_dim, self.d_steps = t.batch_size, config.model.z_dim, t.d_steps
    self.g_loss = G_LOSSES[t.loss]
    self._g_update, self._d_update = self.g_opt.step, self.d_opt.step
    self._new_step = lambda: None
    if compile_mode is not None:
      if self.device.type == "cuda":
        # Inductor's layout optimisation (convolutions in channels-last) breaks
        # the G step's backward through D on CUDA: its convolution_backward
        # meta kernel predicts channels-last strides that cuDNN does not
        # return (as in pytorch/pytorch#171622), so the compiled code fails its
        # stride assertion. Seen with torch 2.11 on an H200 (BENCHMARKS.md).
        from torch._inductor import config as inductor_config
        inductor_config.layout_optimization = False
      self.G, self.D = (torch.compile(m, mode=compile_mode) for m in (self.G, self.D))
      if compile_mode in ("reduce-overhead", "max-autotune") and self.device.type == "cuda":
        # Both modes run CUDA graphs on a GPU, which reuse their output
        # buffers: each D and G update is a new step of the graph trees, as the
        # torch.compile docs ask. Without it max-autotune failed on an H100
        # ("accessing tensor output of CUDAGraphs that has been overwritten").
        self._new_step = torch.compiler.cudagraph_mark_step_begin
      self._g_update = _compiled_step(self.g_opt, compile_mode)
      self._d_update = _compiled_step(self.d_opt, compile_mode)

  def _z(self):
    return torch.randn(self.batch, self.z_dim, device=self.device)

  def _real(self):
    idx = torch.randint(0, self.images.shape[0], (self.batch,), device=self.device)
    x = self.images[idx].float().mul_(2.0 / 255.0).sub_(1.0)
    return x.contiguous(memory_format=self.memory_format)

  def d_step(self):
    self._new_step()
    with torch.no_grad():
      fake = self.G(self._z())
    loss = d_loss_bce(self.D(self._real()), self.D(fake))
    self.d_opt.zero_grad(set_to_none=True)
    loss.backward()
    self._d_update()
    return loss

  def g_step(self):
    self._new_step()
    self.D.requires_grad_(False)
    loss = self.g_loss(self.D(self.G(self._z())))
    self.g_opt.zero_grad(set_to_none=True)
    loss.backward()
    self._g_update()
    self.D.requires_grad_(True)
    return loss

  def train_steps(self, n: int):
    for _ in range(n):
      for _ in range(self.d_steps):
        self.d_step()
      self.g_step()

  def sync(self):
    if self.device.type == "cuda":
      torch.cuda.synchronize(self.device)
