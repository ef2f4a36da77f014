"""Optimisers and losses of the paper.

- ``ShiftAdaMax``: shift-based AdaMax (paper, Algorithm 2): the step size and
  the division by the infinity norm are replaced by multiplications with
  power-of-two approximations (``ap2``), i.e. shifts.  With ``shift=False``
  it is plain AdaMax and matches ``torch.optim.Adamax``.
- ``square_hinge_loss``: mean of ``max(0, 1 - t*y)^2`` with targets ``t`` in
  {-1, +1} (one-hot mapped to +-1), as in the paper and BNN-PYNQ.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .layers import ap2

__all__ = ["ShiftAdaMax", "square_hinge_loss", "make_loss"]


class ShiftAdaMax(torch.optim.Optimizer):
    """AdaMax with power-of-two (shift) arithmetic.

    ``m_t = b1*m + (1-b1)*g``; ``u_t = max(b2*u, |g| + eps)``;
    ``theta -= AP2(lr / (1 - b1**t)) * m_t * AP2(1 / u_t)``  (``shift=True``), or
    ``theta -= lr / (1 - b1**t) * m_t / u_t``                (``shift=False``)."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, shift=True):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, not {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, shift=shift))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_inf"] = torch.zeros_like(p)
                st["step"] += 1
                g = p.grad
                m, u = st["exp_avg"], st["exp_inf"]
                m.lerp_(g, 1 - b1)
                torch.maximum(u.mul_(b2), g.abs().add_(group["eps"]), out=u)
                lr_t = group["lr"] / (1 - b1 ** st["step"])
                if group["shift"]:
                    lr_t = float(ap2(torch.tensor(lr_t, dtype=torch.float64)))
                    p.sub_(lr_t * m * ap2(1.0 / u))
                else:
                    p.addcdiv_(m, u, value=-lr_t)
        return loss


def square_hinge_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    t = F.one_hot(labels, scores.shape[1]).to(scores.dtype) * 2 - 1
    return torch.clamp(1 - t * scores, min=0).pow(2).mean()


def make_loss(name: str):
    if name == "sqhinge":
        return square_hinge_loss
    if name == "ce":
        return F.cross_entropy
    raise ValueError(f"unknown loss {name!r}; use 'sqhinge' or 'ce'")
