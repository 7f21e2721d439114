"""Shared building blocks for the networks: normalisation choice, conv-bias rule, weight init.

The conventions follow the pix2pix reference implementation so that parameter counts and
initial statistics match the published models.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

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
