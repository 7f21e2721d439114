"""Building methods: the one place a config becomes a method with its networks."""

from __future__ import annotations

from torch import nn

from pairgan.config import Config
from pairgan.errors import ConfigError
from pairgan.methods.base import Method
from pairgan.nets.blocks import set_grad_checkpointing
from pairgan.registry import lookup

__all__ = ["build_method"]


def build_method(cfg: Config, *, training: bool) -> Method:
    """The registered method of ``cfg.method`` with its networks built (for training: with
    ``train.grad_checkpoint`` applied)."""
    method = lookup("method", cfg.method)(cfg.model, cfg.data, training=training)
    if training and cfg.train.grad_checkpoint:
        try:
            # Every module the method owns: its networks and loss networks (pix2pixHD's VGG).
            owned = [m for m in vars(method).values() if isinstance(m, nn.Module)]
            switched = sum(set_grad_checkpointing(m) for m in owned)
        except ValueError as exc:
            raise ConfigError(f"train.grad_checkpoint: {exc}") from exc
        if not switched:
            raise ConfigError(f"train.grad_checkpoint: none of {cfg.method}'s networks "
                              f"({', '.join(type(n).__name__ for n in method.nets.values())}) offers activation "
                              "checkpointing (pix2pixHD's generators and the ResNet generator do)")
    return method
