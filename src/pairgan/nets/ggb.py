"""Networks of GGB (Park, Kim, Ro, ICIP 2019): a U-Net generator with multi-level to-RGB heads,
an image discriminator of stride-2 convolutions, and the generative guiding block (feature
encoder E_n + RAPD_n + NVTD_n).

Levels are named by their downscale factor relative to the output: with ``num_downs`` N the
decoder layer j (1..N) works at H / 2^(N-j), so level 2 is the paper's 6th layer (128x128 for a
256 input), level 4 the 5th (64x64) and level 8 the 4th (32x32).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from pairgan.nets.blocks import norm_layer, uses_bias
from pairgan.registry import register


def valid_levels(num_downs: int) -> list[int]:
    """Downscale factors that have a decoder layer: 2, 4, ..., 2^(N-1)."""
    return [2**k for k in range(1, num_downs)]


def check_levels(levels: Sequence[int], num_downs: int, key: str = "levels") -> None:
    ok = valid_levels(num_downs)
    bad = [f for f in levels if f not in ok]
    if bad:
        raise ValueError(f"{key}: {bad} not decoder levels of a {num_downs}-level U-Net; expected downscale "
                         f"factors among {ok} (2 = half the output size)")
    if len(set(levels)) != len(levels):
        raise ValueError(f"{key}: {list(levels)} names a level twice")


@register("generator", "ggb_unet")
class GGBGenerator(nn.Module):
    """U-Net: N conv (4x4, stride 2) encoder and N deconv decoder with skips, plus to-RGB heads.

    Encoder widths ``ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ...``; LeakyReLU(0.2) before every conv but
    the first, norm after every conv but the first and the innermost. Decoder layer j: ReLU,
    ConvTranspose 4x4 stride 2, norm (and Dropout(0.5) on the three innermost when ``dropout``),
    then concatenation with the encoder feature of the same size; the last layer ends in Tanh.
    The head of level f reads the decoder feature at H/f (after its skip concatenation):
    ReLU, conv 3x3, Tanh -> an ``output_nc`` image at H/f (the multi-level outputs x^n).

    ``forward(x)`` returns the output image; ``forward(x, levels=True)`` returns
    ``(image, {f: image at H/f})``. Input height and width must be multiples of
    :attr:`size_multiple` (2^N).
    """

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, num_downs: int = 7, norm: str = "batch",
                 dropout: bool = False, levels: Sequence[int] = (8, 4, 2)) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2, got {num_downs}")
        check_levels(levels, num_downs, "levels")
        self.num_downs = num_downs
        self.size_multiple: int = 2**num_downs
        self.levels = tuple(sorted(levels, reverse=True))
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        ch = [ngf * min(2**k, 8) for k in range(num_downs)]  # channels of e_1 .. e_N
        self.encoder = nn.ModuleList()
        for k in range(num_downs):
            if k == 0:
                self.encoder.append(nn.Conv2d(input_nc, ch[0], 4, 2, 1))
                continue
            layers: list[nn.Module] = [nn.LeakyReLU(0.2), nn.Conv2d(ch[k - 1], ch[k], 4, 2, 1, bias=bias)]
            if k < num_downs - 1:
                layers.append(make_norm(ch[k]))
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList()
        for j in range(1, num_downs + 1):
            in_nc = ch[num_downs - 1] if j == 1 else 2 * ch[num_downs - j]
            if j == num_downs:
                self.decoder.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(in_nc, output_nc, 4, 2, 1), nn.Tanh()))
                continue
            out_nc = ch[num_downs - j - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_nc, out_nc, 4, 2, 1, bias=bias), make_norm(out_nc)]
            if dropout and j <= 3:
                layers.append(nn.Dropout(0.5))
            self.decoder.append(nn.Sequential(*layers))
        self.heads = nn.ModuleDict()
        for f in self.levels:
            j = num_downs - int(math.log2(f))
            feat_nc = 2 * ch[num_downs - j - 1]
            self.heads[str(f)] = nn.Sequential(nn.ReLU(), nn.Conv2d(feat_nc, output_nc, 3, 1, 1), nn.Tanh())

    def level_channels(self, f: int) -> int:
        """Channels of the decoder feature at level ``f`` (what its head reads)."""
        return self.heads[str(f)][1].in_channels

    def forward(self, x: Tensor, levels: bool = False) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        skips = []
        h = x
        for enc in self.encoder:
            h = enc(h)
            skips.append(h)
        outs: dict[int, Tensor] = {}
        n = self.num_downs
        h = skips[-1]
        for j, dec in enumerate(self.decoder, 1):
            h = dec(h)
            if j < n:
                h = torch.cat([h, skips[n - j - 1]], dim=1)
                f = 2 ** (n - j)
                if levels and str(f) in self.heads:
                    outs[f] = self.heads[str(f)](h)
        return (h, outs) if levels else h


class PoseConditionedGenerator(nn.Module):
    """``forward(source, target_pose) = G(cat(source, target_pose))``: G with its two inputs apart
    (the inference graph that export and serving see)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.net = generator

    def forward(self, source: Tensor, target_pose: Tensor) -> Tensor:
        return self.net(torch.cat([source, target_pose], 1))


@register("discriminator", "ggb_image")
class ImageDiscriminator(nn.Module):
    """GGB's D: ``n_layers`` conv 4x4 stride 2 (``ndf``, ``2 ndf``, ... capped at ``8 ndf``, the
    last to 1 channel); LeakyReLU(0.2) between, norm on all but the first and the last.
    Returns a map of logits (8x8 for a 256 input with 5 layers). Extra keyword arguments are
    ignored so that presets can switch discriminators."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 5, norm: str = "batch", **ignored) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"n_layers must be >= 2, got {n_layers}")
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = ndf
        for k in range(1, n_layers - 1):
            nxt = ndf * min(2**k, 8)
            layers += [nn.Conv2d(width, nxt, 4, 2, 1, bias=bias), make_norm(nxt), nn.LeakyReLU(0.2)]
            width = nxt
        layers.append(nn.Conv2d(width, 1, 4, 2, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def _critic(in_nc: int, ndf: int, kernel: int, norm: str) -> nn.Sequential:
    """3 convolutions (stride 1, 'same' padding): in -> ndf -> 2 ndf -> 1 logit map."""
    pad = kernel // 2
    bias = uses_bias(norm)
    return nn.Sequential(
        nn.Conv2d(in_nc, ndf, kernel, 1, pad), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, kernel, 1, pad, bias=bias), norm_layer(norm)(ndf * 2), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, 1, kernel, 1, pad),
    )


class GuidingBlock(nn.Module):
    """The n-th generative guiding block: feature encoder E_n, RAPD_n and NVTD_n.

    * E_n: 2 conv 4x4 stride 2 (``nef``, then ``2 nef``; LeakyReLU between, linear output, no
      norm, so that feature differences stay meaningful) on an image at the level's size.
    * RAPD_n (``rapd``): 3 conv on E_n(image) -> logits "real target" vs "generated"; with
      ``rapd_condition="source"`` on cat(E_n(source), E_n(image)).
    * NVTD_n (``nvtd``): 3 conv on the residual E_n(image) - E_n(source) -> logits "the real
      target's variation" vs "the generated one's".

    Switched-off parts are not built: no parameters, no losses.
    """

    def __init__(self, input_nc: int = 3, nef: int = 64, ndf: int = 64, *, rapd: bool = True, nvtd: bool = True,
                 kernel: int = 3, norm: str = "none", rapd_condition: str = "none") -> None:
        super().__init__()
        if not (rapd or nvtd):
            raise ValueError("a guiding block needs RAPD, NVTD or both")
        if rapd_condition not in ("none", "source"):
            raise ValueError(f"rapd_condition {rapd_condition!r}, expected 'none' or 'source'")
        self.rapd_condition = rapd_condition
        self.encoder = nn.Sequential(nn.Conv2d(input_nc, nef, 4, 2, 1), nn.LeakyReLU(0.2),
                                     nn.Conv2d(nef, nef * 2, 4, 2, 1))
        feat = nef * 2
        self.rapd = _critic(feat * (2 if rapd_condition == "source" else 1), ndf, kernel, norm) if rapd else None
        self.nvtd = _critic(feat, ndf, kernel, norm) if nvtd else None

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def rapd_logits(self, feat: Tensor, feat_source: Tensor) -> Tensor:
        assert self.rapd is not None
        return self.rapd(torch.cat([feat_source, feat], 1) if self.rapd_condition == "source" else feat)

    def nvtd_input(self, feat: Tensor, feat_source: Tensor) -> Tensor:
        """The residual NVTD judges: E_n(image) - E_n(source)."""
        return feat - feat_source

    def nvtd_logits(self, feat: Tensor, feat_source: Tensor) -> Tensor:
        assert self.nvtd is not None
        return self.nvtd(self.nvtd_input(feat, feat_source))


__all__ = ["GGBGenerator", "GuidingBlock", "ImageDiscriminator", "PoseConditionedGenerator", "check_levels",
           "valid_levels"]
