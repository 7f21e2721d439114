"""U-Net generator of pix2pix (Isola et al. 2017), built to match the reference layer for layer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pairgan.nets.blocks import norm_layer, uses_bias
from pairgan.registry import register

#: How the U-Net's up path doubles the resolution: ``transpose`` (the reference's 4x4 stride-2
#: transposed convolution) or a resize followed by a 3x3 convolution (``nearest``, ``bilinear``).
UPSAMPLE_MODES = ("transpose", "nearest", "bilinear")


def up_convolution(in_nc: int, out_nc: int, mode: str, bias: bool = True) -> list[nn.Module]:
    """The layers that double the resolution and map ``in_nc`` to ``out_nc`` channels.

    A 4x4 stride-2 transposed convolution paints overlapping kernels unevenly, a checkerboard that
    training must learn to cancel (Odena et al. 2016, "Deconvolution and Checkerboard Artifacts");
    resizing first and then convolving cannot produce it, for about twice the up path's arithmetic.
    """
    if mode == "transpose":
        return [nn.ConvTranspose2d(in_nc, out_nc, 4, stride=2, padding=1, bias=bias)]
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample: {mode!r} is not one of {', '.join(UPSAMPLE_MODES)}")
    resize = nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return [resize, nn.Conv2d(in_nc, out_nc, 3, padding=1, bias=bias)]


class UnetLevel(nn.Module):
    """One resolution level of the U-Net: downsample, the deeper levels, upsample, skip concat.

    ``outer_nc`` is the channel count this level hands back up (before the skip concat),
    ``inner_nc`` the channel count after its 4x4 stride-2 down convolution. ``inner`` holds the
    deeper levels; ``None`` makes this the innermost (bottleneck) level. The outermost level reads
    ``in_nc`` image channels, has no activation or norm on its way down, has a biased up
    convolution and ends in Tanh instead of a skip concat.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        *,
        inner: nn.Module | None,
        in_nc: int | None = None,
        outermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.outermost = outermost
        innermost = inner is None
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        in_nc = outer_nc if in_nc is None else in_nc
        # Deeper levels return their input concatenated with their output, hence twice the width.
        up_in_nc = inner_nc if innermost else inner_nc * 2

        down: list[nn.Module] = [nn.Conv2d(in_nc, inner_nc, 4, stride=2, padding=1, bias=bias)]
        up: list[nn.Module] = [nn.ReLU(inplace=True)]
        if outermost:
            self.pre_activation: nn.Module = nn.Identity()
            up += [*up_convolution(up_in_nc, outer_nc, upsample), nn.Tanh()]
        else:
            # The reference applies an in-place LeakyReLU to this level's input, which also
            # rewrites the tensor that the skip concat reads: the skip carries activated
            # features. Activating up front (not in place) keeps that behaviour explicit.
            self.pre_activation = nn.LeakyReLU(0.2)
            if not innermost:
                down.append(make_norm(inner_nc))
            up += [*up_convolution(up_in_nc, outer_nc, upsample, bias), make_norm(outer_nc)]
            if dropout:
                up.append(nn.Dropout(0.5))

        self.down = nn.Sequential(*down)
        self.inner = inner if inner is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_activation(x)
        y = self.up(self.inner(self.down(x)))
        return y if self.outermost else torch.cat([x, y], dim=1)


@register("generator", "unet")
class UnetGenerator(nn.Module):
    """pix2pix U-Net generator with ``num_downs`` stride-2 levels (8: ``unet_256``, 7: ``unet_128``).

    From the outside in, the levels have ``ngf``, ``2 ngf``, ``4 ngf`` and then ``8 ngf``
    channels; the ``num_downs - 5`` levels between the ``4 ngf`` level and the innermost one
    carry Dropout(0.5) after their up path when ``dropout`` is set (pix2pix's noise source).
    Input height and width must be multiples of :attr:`size_multiple`. Output is in [-1, 1].
    Weights keep PyTorch's defaults; apply :func:`pairgan.nets.blocks.init_weights` for
    pix2pix's initialisation (the methods do). ``upsample``: see :func:`up_convolution`
    (``transpose`` is the reference's).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        num_downs: int = 8,
        norm: str = "batch",
        dropout: bool = True,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5 (the fixed outer levels), got {num_downs}")
        self.size_multiple: int = 2**num_downs

        level = UnetLevel(ngf * 8, ngf * 8, inner=None, norm=norm, upsample=upsample)
        for _ in range(num_downs - 5):
            level = UnetLevel(ngf * 8, ngf * 8, inner=level, norm=norm, dropout=dropout, upsample=upsample)
        for mult in (4, 2, 1):
            level = UnetLevel(ngf * mult, ngf * mult * 2, inner=level, norm=norm, upsample=upsample)
        self.model = UnetLevel(output_nc, ngf, inner=level, in_nc=input_nc, outermost=True, norm=norm,
                               upsample=upsample)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
