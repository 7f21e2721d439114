"""Adversarial losses on discriminator logits, for single- and multi-scale discriminators."""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAN_MODES = ("vanilla", "lsgan", "hinge")

# One discriminator output, or one per scale; a scale may also be a list of intermediate
# features that ends with the score map.
DiscriminatorOutput = Union[Tensor, Sequence[Union[Tensor, Sequence[Tensor]]]]


class GANLoss(nn.Module):
    """Adversarial loss on raw discriminator scores.

    * ``"vanilla"``: binary cross-entropy on logits against 1 (real) or 0 (fake), as pix2pix.
    * ``"lsgan"``: mean squared error against 1 or 0 (Mao et al.), as pix2pixHD.
    * ``"hinge"``: for the discriminator ``mean(relu(1 - pred))`` on real and
      ``mean(relu(1 + pred))`` on fake; for the generator ``-mean(pred)``.

    ``pred`` may be a list with one entry per discriminator scale; an entry that is itself a
    list holds intermediate features and the score map last, and only the score map is used.
    Scales are averaged, so the loss keeps the same magnitude whatever their number.
    """

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN mode {mode!r}; expected one of: {', '.join(GAN_MODES)}")
        self.mode = mode

    def forward(self, pred: DiscriminatorOutput, target_is_real: bool,
                for_discriminator: bool = True) -> Tensor:
        """Loss of ``pred`` against the real (``True``) or fake label.

        ``for_discriminator`` only matters for hinge, whose generator loss differs from the
        discriminator's real term; the generator loss is defined for ``target_is_real`` only.
        """
        if isinstance(pred, Tensor):
            return self._single(pred, target_is_real, for_discriminator)
        if len(pred) == 0:
            raise ValueError("pred is an empty list of discriminator outputs")
        losses = []
        for scale in pred:
            score_map = scale if isinstance(scale, Tensor) else scale[-1]
            losses.append(self._single(score_map, target_is_real, for_discriminator))
        return torch.stack(losses).mean()

    def _single(self, pred: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        if self.mode == "hinge":
            if for_discriminator:
                margin = 1.0 - pred if target_is_real else 1.0 + pred
                return F.relu(margin).mean()
            if not target_is_real:
                raise ValueError("hinge generator loss is defined for target_is_real=True only")
            return -pred.mean()
        target = torch.full_like(pred, 1.0 if target_is_real else 0.0)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
