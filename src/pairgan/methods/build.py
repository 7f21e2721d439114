"""Building methods: the one place a config becomes a method with its networks, and the one place
a saved model (a checkpoint, or an exported file's metadata) becomes a method ready for inference."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from pairgan.checkpoint import (
    ema_names,
    load_checkpoint_config,
    load_extra_state,
    load_package_info,
    load_weights,
    resolve_checkpoint,
)
from pairgan.config import Config
from pairgan.errors import CheckpointError, ConfigError
from pairgan.methods.base import Method
from pairgan.nets.blocks import set_grad_checkpointing
from pairgan.registry import lookup
from pairgan.runtime import resolve_device

__all__ = ["WEIGHT_CHOICES", "build_method", "load_method", "restore_method"]

log = logging.getLogger(__name__)

#: Which weights inference loads: ``auto`` (the moving average when the checkpoint has one, else
#: the trained weights), ``ema`` (the moving average; an error without one) or ``raw``.
WEIGHT_CHOICES: tuple[str, ...] = ("auto", "ema", "raw")


def build_method(cfg: Config, *, training: bool) -> Method:
    """The registered method of ``cfg.method`` with its networks built (for training: with
    ``train.grad_checkpoint`` applied)."""
    method = lookup("method", cfg.method)(cfg.model, cfg.data, training=training)
    method.run_config = cfg
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


def load_method(path: str | os.PathLike, device: str | torch.device = "cpu", mode: str | None = None, *,
                weights: str = "auto") -> Method:
    """The model saved at ``path`` (a run folder, its ``checkpoints/`` folder or one checkpoint
    folder) ready for inference: built from the checkpoint's config without its training networks,
    the inference networks' weights loaded (``weights``: see :data:`WEIGHT_CHOICES`; by default
    the moving average when the run kept one), on ``device`` (``auto`` picks one), in inference
    ``mode`` (None: the method's default). The method remembers its checkpoint folder
    (:attr:`Method.checkpoint`), next to which it finds its run's extra files, and which weights
    it holds (:attr:`Method.weights_source`)."""
    folder = resolve_checkpoint(path)
    cfg = load_checkpoint_config(folder)
    package = load_package_info(folder)
    if package is not None and package.get("palette"):  # a package carries its palette file
        cfg.data.palette = str(folder / package["palette"])
    return restore_method(cfg, checkpoint=folder, extra_state=load_extra_state(folder), device=device, mode=mode,
                          weights=weights, packaged_weights=package["weights"] if package is not None else None)


def _load_inference_weights(method: Method, checkpoint: Path, weights: str, packaged: str | None = None) -> str:
    """Load the inference networks' weights of ``checkpoint`` into ``method`` (``packaged``: the one set
    a packaged model holds, see :func:`restore_method`); returns which
    (``ema`` or ``raw``). The networks with a moving average take it (unless ``weights`` is
    ``raw``); the others take their trained weights."""
    if weights not in WEIGHT_CHOICES:
        raise ConfigError(f"weights {weights!r}: expected one of {', '.join(WEIGHT_CHOICES)}")
    names = tuple(method.inference_nets)
    if packaged is not None:  # a packaged model holds one set of weights, named in its package.json
        if weights not in ("auto", packaged):
            raise CheckpointError(f"{checkpoint}: a packaged model with the {packaged} weights only; load it with "
                                  f"weights auto or {packaged} (package the run again with --weights {weights})")
        load_weights(checkpoint, dict(method.nets), names)
        return packaged
    averaged = tuple(n for n in names if n in ema_names(checkpoint)) if weights != "raw" else ()
    if weights == "ema" and not averaged:
        raise CheckpointError(f"{checkpoint}: no EMA weights (ema/*.safetensors): the run was trained without "
                              "train.ema; load its trained weights instead (weights raw)")
    load_weights(checkpoint, dict(method.nets), tuple(n for n in names if n not in averaged))
    if not averaged:
        return "raw"
    load_weights(checkpoint, dict(method.nets), averaged, ema=True)
    log.info("%s: using the EMA weights of %s (train.ema %s)", checkpoint, ", ".join(averaged),
             method.run_config.train.ema if method.run_config is not None else "?")
    return "ema"


def restore_method(
    cfg: Config,
    *,
    checkpoint: Path | None = None,
    extra_state: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    mode: str | None = None,
    weights: str = "auto",
    packaged_weights: str | None = None,
) -> Method:
    """``cfg``'s method for inference: its inference networks with the weights of ``checkpoint``
    (a resolved checkpoint folder; ``weights``: which of them, :data:`WEIGHT_CHOICES`), the
    ``extra_state`` that :meth:`Method.extra_state` gave (an exported file's metadata or a packaged
    model's ``extra_state.json``), on ``device``, in inference ``mode`` (None: the method's default).
    ``packaged_weights``: a packaged model's one set of weights (``ema`` or ``raw``, its
    ``package.json``); ``weights`` may then ask only for that set.

    ``device="meta"`` builds the networks without allocating them and loads no weights: an
    exported file's backend runs only the method's pre- and post-processing in PyTorch.
    """
    dev = resolve_device(device)
    if dev.type == "meta":
        if checkpoint is not None:
            raise ValueError("restore_method: weights cannot be loaded onto the meta device")
        with dev:
            method = build_method(cfg, training=False)
    else:
        method = build_method(cfg, training=False)
        if checkpoint is not None:
            method.weights_source = _load_inference_weights(method, checkpoint, weights, packaged_weights)
        method.to(dev)
    method.checkpoint = checkpoint
    if extra_state is not None:
        method.load_extra_state(extra_state)
    method.set_inference_mode(mode or method.inference_mode)
    return method
