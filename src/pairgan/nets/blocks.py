"""Shared building blocks for the networks: normalisation choice, conv-bias rule, weight init.

The conventions follow the pix2pix reference implementation so that parameter counts and
initial statistics match the published models.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

NORM_KINDS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def _check_norm(kind: str) -> None:
    if kind not in NORM_KINDS:
        raise ValueError(f"unknown norm {kind!r}; expected one of: {', '.join(NORM_KINDS)}")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """Return a factory ``channels -> normalisation module`` for ``kind``.

    * ``"batch"``: :class:`~torch.nn.BatchNorm2d` with a learned affine and running statistics.
    * ``"instance"``: :class:`~torch.nn.InstanceNorm2d` without affine and without running
      statistics, so it normalises with per-image statistics in eval mode too (as pix2pix does).
    * ``"none"``: :class:`~torch.nn.Identity`.
    """
    _check_norm(kind)
    if kind == "batch":
        return lambda channels: nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return lambda channels: nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return lambda channels: nn.Identity()


def uses_bias(kind: str) -> bool:
    """Whether a convolution followed by a ``kind`` norm should carry its own bias.

    Batch norm subtracts the per-channel mean and adds its own learned shift, so a conv bias
    before it is redundant; every other choice keeps the bias.
    """
    _check_norm(kind)
    return kind != "batch"


_CONV_OR_LINEAR = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                   nn.ConvTranspose3d, nn.Linear)
_BATCH_NORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place the way pix2pix does, and return it.

    Conv and linear weights: ``"normal"`` draws from N(0, init_gain); ``"xavier"`` and
    ``"orthogonal"`` use ``init_gain`` as their gain; ``"kaiming"`` is He-normal (fan-in) and
    ignores the gain. Their biases become 0. Batch-norm scales draw from N(1, init_gain) and
    their shifts become 0. Other modules keep PyTorch's defaults.
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; expected one of: {', '.join(INIT_TYPES)}")

    def init_module(module: nn.Module) -> None:
        if isinstance(module, _CONV_OR_LINEAR):
            weight = module.weight
            if init_type == "normal":
                nn.init.normal_(weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(weight, gain=init_gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _BATCH_NORMS) and module.affine:
            nn.init.normal_(module.weight, 1.0, init_gain)
            nn.init.zeros_(module.bias)

    net.apply(init_module)
    return net


# --------------------------------------------------------------------------- activation checkpointing
def run_sequential(seq: nn.Sequential, x: Tensor, checkpoint: bool) -> Tensor:
    """``seq(x)``, or with ``checkpoint`` (and gradients being recorded) the same computation
    keeping only about sqrt(len(seq)) segment boundaries and recomputing the rest in backward.

    Outputs and gradients are the same; the cost is one more forward of the checkpointed layers.
    Random layers (dropout) replay their draws, because the RNG state is saved per segment.
    """
    if not (checkpoint and torch.is_grad_enabled()) or len(seq) < 4:
        return seq(x)
    from torch.utils.checkpoint import checkpoint_sequential

    return checkpoint_sequential(seq, max(2, round(math.sqrt(len(seq)))), x, use_reentrant=False)


def run_checkpointed(module: nn.Module, x: Tensor, checkpoint: bool) -> Tensor:
    """``module(x)``, or with ``checkpoint`` (and gradients being recorded) keeping only ``x``
    for backward and recomputing the module's inside there. Same outputs and gradients."""
    if not (checkpoint and torch.is_grad_enabled()):
        return module(x)
    from torch.utils.checkpoint import checkpoint as checkpoint_fn

    return checkpoint_fn(module, x, use_reentrant=False)


def set_grad_checkpointing(net: nn.Module, enabled: bool = True) -> int:
    """Switch activation checkpointing on the modules of ``net`` that offer it (those with a
    ``grad_checkpointing`` attribute: pix2pixHD's global and local generators and its
    multi-scale discriminator, the ResNet generator, the VGG feature extractor of the perceptual
    loss); returns how many it switched.

    Raises ``ValueError`` when such a module holds batch norm with running statistics: its
    recomputation in backward would update those statistics a second time.
    """
    count = 0
    for module in net.modules():
        if not hasattr(module, "grad_checkpointing"):
            continue
        if enabled:
            for sub in module.modules():
                if isinstance(sub, nn.modules.batchnorm._BatchNorm) and sub.track_running_stats:
                    raise ValueError(f"{type(module).__name__} uses batch norm with running statistics, which "
                                     "activation checkpointing would update twice per step: use "
                                     "model.norm=instance or train.grad_checkpoint=false")
        module.grad_checkpointing = enabled
        count += 1
    return count
