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


class FeatureMatchingLoss(nn.Module):
    """pix2pixHD's discriminator feature-matching loss (without its lambda_feat factor).

    ``pred_fake`` and ``pred_real`` are multi-scale discriminator outputs: a list over scales of
    lists of layer outputs, the score map last (which is excluded). The loss is

        sum_k sum_i (4 / (n_layers + 1)) * (1 / num_D) * L1(D_k^i(fake), D_k^i(real).detach())

    as the reference computes it. ``n_layers`` and ``num_D`` default to what the outputs show
    (``len(scale) - 2`` and ``len(pred_fake)``).
    """

    def __init__(self, n_layers: int | None = None, num_D: int | None = None) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.num_D = num_D

    def forward(self, pred_fake: Sequence[Sequence[Tensor]], pred_real: Sequence[Sequence[Tensor]]) -> Tensor:
        if len(pred_fake) != len(pred_real) or not pred_fake:
            raise ValueError(f"expected equal, non-empty lists of scales, got {len(pred_fake)} and {len(pred_real)}")
        num_d = self.num_D or len(pred_fake)
        total: Tensor | None = None
        for fake_scale, real_scale in zip(pred_fake, pred_real):
            if isinstance(fake_scale, Tensor) or len(fake_scale) < 2:
                raise ValueError("feature matching needs each scale's intermediate features (a list, score map last)")
            n_layers = self.n_layers if self.n_layers is not None else len(fake_scale) - 2
            weight = 4.0 / (n_layers + 1) / num_d
            for f, r in zip(fake_scale[:-1], real_scale[:-1]):
                term = weight * F.l1_loss(f.float(), r.detach().float())
                total = term if total is None else total + term
        assert total is not None
        return total
