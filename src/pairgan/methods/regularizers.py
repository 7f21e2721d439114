"""Discriminator regularisers shared by the methods: the R1 gradient penalty (``model.r1_gamma``).

R1 (Mescheder et al. 2018) penalises the gradient of D's scores with respect to real images:
``gamma / 2 * E ||grad_x D(x)||^2``. It is lazy as in StyleGAN2: computed every ``r1_every``
steps only and multiplied by ``r1_every``, so that its average strength matches an every-step
penalty at a fraction of the cost (the double backward roughly doubles a D step).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["r1_due", "r1_penalty"]


def _score_maps(pred: Any) -> list[Tensor]:
    """The score maps of a D output: a tensor, a list per scale, or per scale a list of
    intermediate features with the score map last (pix2pixHD's)."""
    if isinstance(pred, Tensor):
        return [pred]
    return [p[-1] if isinstance(p, (list, tuple)) else p for p in pred]


def r1_due(gamma: float, every: int, step: int) -> bool:
    """Whether optimisation step ``step`` (0-based) adds the lazy R1 penalty."""
    return gamma > 0 and step % every == 0


def r1_penalty(scores: Callable[[Tensor], Any], real: Tensor, gamma: float, every: int = 1) -> Tensor:
    """``every * gamma / 2 * mean over the batch of ||d sum(scores(real)) / d real||^2``.

    ``scores`` maps a real image batch to D's output (the condition already bound, so only the
    image is differentiated); its gradient flows into D's parameters only (``real`` is data).
    Computed in fp32 (outside autocast), as a double backward in half precision underflows.
    """
    x = real.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        total = sum(s.float().sum() for s in _score_maps(scores(x)))
        (grad,) = torch.autograd.grad(total, x, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean() * (0.5 * gamma * every)
