"""PatchGAN and PixelGAN discriminators of pix2pix, plus receptive-field geometry and spectral
normalisation of a discriminator's convolutions.

The discriminators return raw scores (logits); the GAN loss decides how to squash them.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from pairgan.nets.blocks import norm_layer, uses_bias
from pairgan.registry import register


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Geometry of a stack of convolutions given as ``(kernel, stride, padding)`` per layer.

    Returns ``(size, jump, start)``: output cell ``(i, j)`` sees the input square of side
    ``size`` whose top-left pixel is at ``(start + i * jump, start + j * jump)``. ``start`` is
    negative when the first cells reach into the zero padding. Dilation is assumed to be 1.
    """
    size, jump, start = 1, 1, 0
    for kernel, stride, padding in layers:
        # Each layer widens the field by (kernel - 1) steps of the current input spacing, shifts
        # the first window left by its padding, and multiplies the spacing by its stride.
        size += (kernel - 1) * jump
        start -= padding * jump
        jump *= stride
    return size, jump, start


def apply_spectral_norm(net: nn.Module) -> int:
    """Spectral normalisation (Miyato et al. 2018) on every convolution and linear layer of
    ``net`` (``model.spectral_norm``); returns how many layers it wraps. Call it after weight
    initialisation: the parametrised weight is ``original / sigma``, with ``sigma`` estimated by
    one power iteration per training forward (its vectors are buffers, saved with the weights)."""
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for m in layers:
        spectral_norm(m)
    return len(layers)


@register("discriminator", "patch")
class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN (the reference ``NLayerDiscriminator``): a map of real/fake logits.

    ``n_layers`` 4x4 stride-2 convolutions (``ndf``, ``2 ndf``, ... capped at ``8 ndf``;
    no norm on the first), one 4x4 stride-1 convolution with norm, then a 4x4 stride-1
    convolution to one channel; LeakyReLU(0.2) between, padding 1 throughout, no sigmoid.
    ``n_layers`` = 1, 3, 5 give 16x16, 70x70 and 286x286 patches; at 256x256 input the 70x70
    one returns a 30x30 map. For pix2pix ``input_nc`` is the channel sum of A and B. Other
    keyword arguments (another discriminator's options, such as ``image_nc``) are ignored.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 **ignored: Any) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)

        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            next_width = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(width, next_width, 4, stride=stride, padding=1, bias=bias),
                make_norm(next_width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def conv_geometry(self) -> list[tuple[int, int, int]]:
        """``(kernel, stride, padding)`` of each Conv2d in forward order, read from the modules.

        Feed it to :func:`receptive_field` to map score-map cells to image boxes.
        """
        return [
            (module.kernel_size[0], module.stride[0], module.padding[0])
            for module in self.model
            if isinstance(module, nn.Conv2d)
        ]


@register("discriminator", "pixel")
class PixelDiscriminator(nn.Module):
    """pix2pix PixelGAN: 1x1 convolutions only, so each output logit judges a single pixel.

    Layout as the reference: conv(``ndf``), LeakyReLU, conv(``2 ndf``), norm, LeakyReLU,
    conv(1); the last two convolutions carry a bias only without batch norm (the reference
    applies that rule to the final one too). Extra keyword arguments such as ``n_layers`` are
    accepted and ignored so that presets can switch discriminators without editing options.
    """

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch", **ignored: Any) -> None:
        super().__init__()
        bias = uses_bias(norm)
        self.model = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm)(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
