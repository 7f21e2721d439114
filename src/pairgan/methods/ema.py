"""An exponential moving average of a method's generator-side networks (``train.ema``).

The Trainer keeps one :class:`GeneratorEMA` beside the method: after every optimisation step
each averaged parameter becomes ``decay * ema + (1 - decay) * weight`` (from step
``train.ema_start`` on; before it the copy equals the network). With ``train.ema_rampup`` the decay
is lowered early in a run so that the average's half-life never exceeds that share of the steps
done (StyleGAN2-ADA's ramp-up): a short run is not averaged over weights from its first minutes,
and a long one reaches the full ``decay``. Buffers (batch-norm running
statistics, spectral-norm vectors) are copied, not averaged: they are statistics of the current
weights, and an average of them would describe no network. The copies are saved in every
checkpoint (``ema/NAME.safetensors``, :mod:`pairgan.checkpoint`) and inference loads them by
default (:func:`pairgan.methods.build.restore_method`).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator, Mapping

import torch
from torch import nn

__all__ = ["GeneratorEMA"]


def _unwrap(net: nn.Module) -> nn.Module:
    # torch.compile keeps the real module inside (the names of its tensors are the module's).
    while hasattr(net, "_orig_mod"):
        net = net._orig_mod
    return net


class GeneratorEMA:
    """Averaged copies of the networks ``nets`` (name -> network), updated by :meth:`update`.

    ``decay`` in [0, 1): the weight of the old average; ``start``: the number of optimisation
    steps after which averaging begins (until then every update copies the weights);
    ``rampup`` > 0: at step t the half-life of the average is at most ``rampup * t`` steps
    (:meth:`decay_at`).
    """

    def __init__(self, nets: Mapping[str, nn.Module], decay: float, start: int = 0, rampup: float = 0.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"GeneratorEMA: decay must be in [0, 1), got {decay}")
        if rampup < 0:
            raise ValueError(f"GeneratorEMA: rampup must be >= 0, got {rampup}")
        self.decay = float(decay)
        self.start = int(start)
        self.rampup = float(rampup)
        #: The averaged copies, one per network name, never trained (no gradients).
        self.nets: dict[str, nn.Module] = {}
        for name, net in nets.items():
            twin = copy.deepcopy(_unwrap(net))
            for p in twin.parameters():
                p.requires_grad_(False)
            self.nets[name] = twin

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.nets)

    def decay_at(self, step: int) -> float:
        """The decay used after optimisation step ``step``: ``decay``, or with ``rampup`` the decay
        whose half-life is ``rampup * step`` steps when that is shorter (a function of the step
        alone, so a resumed run averages exactly as an uninterrupted one)."""
        if self.rampup <= 0 or self.decay == 0:
            return self.decay
        return min(self.decay, 0.5 ** (1.0 / max(self.rampup * step, 1e-8)))

    @torch.no_grad()
    def update(self, nets: Mapping[str, nn.Module], step: int) -> None:
        """Fold the networks' weights after optimisation step ``step`` (1 = the first) into the average."""
        averaging = step > self.start
        weight = 1.0 - self.decay_at(step)
        for name, twin in self.nets.items():
            live = _unwrap(nets[name])
            params = dict(live.named_parameters())
            own = twin.state_dict()
            for key, value in live.state_dict().items():
                target = own[key]
                if averaging and key in params and target.is_floating_point():
                    target.lerp_(value.to(target.dtype), weight)
                else:
                    target.copy_(value)

    @torch.no_grad()
    def reset(self, nets: Mapping[str, nn.Module]) -> None:
        """Make every copy equal to its network again (a resumed run whose checkpoint had no EMA)."""
        for name, twin in self.nets.items():
            twin.load_state_dict(_unwrap(nets[name]).state_dict())

    @contextlib.contextmanager
    def applied(self, nets: Mapping[str, nn.Module]) -> Iterator[None]:
        """Within the block the networks hold the averaged weights (samples, validation); their own
        weights and buffers are put back bit for bit afterwards."""
        saved: dict[str, dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            for name, twin in self.nets.items():
                live = _unwrap(nets[name]).state_dict()
                saved[name] = {k: v.clone() for k, v in live.items()}
                ema_state = twin.state_dict()
                for k, v in live.items():
                    v.copy_(ema_state[k])
        try:
            yield
        finally:
            with torch.no_grad():
                for name, state in saved.items():
                    for k, v in _unwrap(nets[name]).state_dict().items():
                        v.copy_(state[k])
