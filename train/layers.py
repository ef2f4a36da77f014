"""Binarized layers as Courbariaux/Hubara et al. (2016) define them.

- ``sign_ste``: deterministic sign with sign(0) = +1 in the forward pass and
  the saturated straight-through estimator ``g * 1{|x| <= 1}`` backward.
- ``stochastic_sign_ste``: +1 with probability ``hard_sigmoid(x)`` at train
  time (same backward); deterministic at eval time.
- ``BinaryLinear`` / ``BinaryConv2d``: real latent weights, binarized with
  sign in the forward pass; ``clip_weights_`` clamps them to [-1, 1] (the
  training loop calls it after every optimizer step).
- ``BatchNorm``: standard BN whose *eval* path computes
  ``(x - mean) * (gamma / sqrt(var + eps)) + beta`` with separate
  elementwise ops, so the result is the same float at every position, shape
  and memory layout (the exporter's thresholds rely on this).
- ``ShiftBatchNorm``: the paper's Algorithm 3 (power-of-two approximations).
- ``ScalarNorm``: one mean/variance and one scale/bias over all outputs
  (Brevitas's TensorNorm), used after the last layer by default: a single
  scale keeps the argmax of the integer scores exact.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["sign", "sign_ste", "stochastic_sign_ste", "ap2", "BinaryActivation",
           "BinaryLinear", "BinaryConv2d", "BatchNorm", "ShiftBatchNorm",
           "ScalarNorm", "binary_pad"]


def sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (also -0.0), else -1 (unlike torch.sign, sign(0) = +1); same dtype
    as ``x``.  Computed as sign(sign(x) + 0.5): three cheap passes (torch.where is several
    times slower on CPUs)."""
    return torch.sign(x).add_(0.5).sign_()


class _SignSTE(torch.autograd.Function):
    # saves the 1-byte mask |x| <= 1 rather than x: one pass less in backward, 4x less memory
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x.abs() <= 1)
        return sign(x)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside


class _StochasticSignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        p = torch.clamp((x + 1) / 2, 0, 1)  # hard sigmoid
        return torch.where(torch.rand_like(x) < p, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Deterministic sign forward, saturated straight-through estimator backward."""
    return _SignSTE.apply(x)


def stochastic_sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Stochastic binarization (+1 w.p. hard_sigmoid(x)), saturated STE backward."""
    return _StochasticSignSTE.apply(x)


def ap2(x: torch.Tensor) -> torch.Tensor:
    """Power-of-two approximation of the paper: sign(x) * 2**round(log2|x|) (0 stays 0)."""
    mag = torch.exp2(torch.round(torch.log2(x.abs().clamp_min(torch.finfo(x.dtype).tiny))))
    return torch.where(x == 0, torch.zeros_like(x), torch.sign(x) * mag)


class BinaryActivation(nn.Module):
    """Sign activation. ``mode``: ``"det"`` or ``"stochastic"`` (train time only)."""

    def __init__(self, mode: str = "det"):
        super().__init__()
        if mode not in ("det", "stochastic"):
            raise ValueError(f"binarization mode must be 'det' or 'stochastic', not {mode!r}")
        self.mode = mode

    def forward(self, x):
        if self.mode == "stochastic" and self.training:
            return stochastic_sign_ste(x)
        return sign_ste(x)


class _BinaryWeight:
    def binary_weight(self) -> torch.Tensor:
        return sign_ste(self.weight)

    @torch.no_grad()
    def clip_weights_(self) -> None:
        self.weight.clamp_(-1.0, 1.0)


class BinaryLinear(nn.Linear, _BinaryWeight):
    """Linear layer with sign-binarized weights and no bias (BN follows)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(in_features, out_features, bias=False)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x):
        return F.linear(x, self.binary_weight())


def binary_pad(x: torch.Tensor, pad: int, value: float) -> torch.Tensor:
    return F.pad(x, (pad, pad, pad, pad), value=value) if pad else x


class BinaryConv2d(nn.Conv2d, _BinaryWeight):
    """KxK convolution with sign-binarized weights, no bias, explicit pad value.

    ``pad_value`` is the float value of the border (-1 or +1 on binary maps;
    0 on the integer input layer)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 pad_value: float = -1.0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=0, bias=False)
        nn.init.uniform_(self.weight, -1.0, 1.0)
        self.pad = int(padding)
        self.pad_value = float(pad_value)

    def forward(self, x):
        return F.conv2d(binary_pad(x, self.pad, self.pad_value), self.binary_weight(),
                        stride=self.stride)


def _world_size() -> int:
    import torch.distributed as dist
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(t)


def global_mean(x: torch.Tensor, dims) -> tuple[torch.Tensor, int]:
    """Mean of ``x`` over ``dims`` and the element count, over the global batch:
    summed across ranks (differentiably) when torch.distributed is initialised,
    so every rank sees the statistics a single process would on the whole batch."""
    s = x.sum(dim=dims)
    n = x.numel() // max(1, s.numel())
    if _world_size() > 1:
        red = _all_reduce(torch.cat([s.reshape(-1), torch.tensor([float(n)], dtype=x.dtype)]))
        s, n = red[:-1].reshape(s.shape), int(red[-1].item())
    return s / n, n


def _bshape(x: torch.Tensor) -> tuple[int, ...]:
    return (1, -1) + (1,) * (x.dim() - 2)


def _full(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Normalisation runs in the parameters' precision: under mixed precision (bf16/fp16
    autocast) the statistics and running averages stay float32."""
    return x.to(like.dtype) if x.dtype in (torch.float16, torch.bfloat16) else x


class BatchNorm(nn.Module):
    """Per-channel batch normalisation over dim 1 (works for (N,C) and (N,C,H,W)).

    Train: batch statistics (``F.batch_norm``), running averages updated.
    Eval: canonical elementwise form (see module docstring)."""

    def __init__(self, num_features: int, eps: float = 1e-4, momentum: float = 0.1):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def eval_scale(self) -> torch.Tensor:
        return self.weight / torch.sqrt(self.running_var + self.eps)

    def update_running(self, mean, var, n) -> None:
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(
                self.momentum * var.detach() * n / max(n - 1, 1))

    def batch_stats(self, x):
        """Mean and biased variance over every dim but 1 (across all ranks under
        torch.distributed: synchronised BN), and update the running averages."""
        dims = [0] + list(range(2, x.dim()))
        mean, n = global_mean(x, dims)
        var, _ = global_mean((x - mean.view(_bshape(x))) ** 2, dims)
        self.update_running(mean, var, n)
        return mean, var

    def forward(self, x):
        if self.training and _world_size() == 1 and x.dim() in (2, 4) and self.eps > 0:
            # torch's fused kernel: the same statistics, the same running-average update
            # (momentum, unbiased variance) as batch_stats, a fraction of the memory passes;
            # with bf16/fp16 activations it accumulates in float32 and keeps float32
            # parameters and running statistics
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, True, self.momentum, self.eps)
        x = _full(x, self.weight)
        if self.training:
            mean, var = self.batch_stats(x)
            s = _bshape(x)
            return ((x - mean.view(s)) / torch.sqrt(var.view(s) + self.eps)
                    * self.weight.view(s) + self.bias.view(s))
        s = _bshape(x)
        return (x - self.running_mean.view(s)) * self.eval_scale().view(s) + self.bias.view(s)


class ShiftBatchNorm(BatchNorm):
    """Shift-based batch normalisation (paper, Algorithm 3).

    ``C = x - mean``; ``var ~= mean(C * AP2(C))``; ``x_hat = C * AP2(1/sqrt(var+eps))``;
    ``y = AP2(gamma) * x_hat + beta``.  Multiplications by powers of two are
    shifts in hardware; gradients flow through AP2 as identity (STE)."""

    @staticmethod
    def _ap2_ste(t):
        return t + (ap2(t) - t).detach()

    def eval_scale(self) -> torch.Tensor:
        inv = self._ap2_ste(1.0 / torch.sqrt(self.running_var + self.eps))
        return self._ap2_ste(self.weight) * inv

    def forward(self, x):
        x = _full(x, self.weight)
        if not self.training:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        s = _bshape(x)
        mean, n = global_mean(x, dims)
        c = x - mean.view(s)
        var, _ = global_mean(c * self._ap2_ste(c), dims)
        self.update_running(mean, var, n)
        inv = self._ap2_ste(1.0 / torch.sqrt(var + self.eps))
        return c * inv.view(s) * self._ap2_ste(self.weight).view(s) + self.bias.view(s)


class ScalarNorm(nn.Module):
    """One mean/variance over every element and a single scale and bias
    (Brevitas's TensorNorm).  Eval: ``(x - mean) * (w / sqrt(var + eps)) + b``."""

    def __init__(self, eps: float = 1e-4, momentum: float = 0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))

    def eval_scale(self) -> torch.Tensor:
        return self.weight / torch.sqrt(self.running_var + self.eps)

    def forward(self, x):
        x = _full(x, self.weight)
        if self.training:
            dims = list(range(x.dim()))
            mean, n = global_mean(x, dims)
            var, _ = global_mean((x - mean) ** 2, dims)
            BatchNorm.update_running(self, mean, var, n)
            return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
        return (x - self.running_mean) * self.eval_scale() + self.bias


def is_power_of_two_or_zero(t: torch.Tensor) -> bool:
    m, _ = torch.frexp(t.abs())
    return bool(((m == 0.5) | (t == 0)).all())
