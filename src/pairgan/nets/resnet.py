"""ResNet generator (Johnson et al. 2016) as configured in the pix2pix/CycleGAN reference."""

from __future__ import annotations

from torch import Tensor, nn

from collections.abc import Callable

from pairgan.nets.blocks import norm_layer, run_sequential, uses_bias
from pairgan.registry import register

PADDING_KINDS = ("reflect", "replicate", "zero")


def _padded_conv(in_nc: int, out_nc: int, kernel: int, padding: str, bias: bool) -> list[nn.Module]:
    """A stride-1 ``kernel x kernel`` convolution that keeps the size, padded as ``padding`` says."""
    half = kernel // 2
    if padding == "reflect":
        return [nn.ReflectionPad2d(half), nn.Conv2d(in_nc, out_nc, kernel, bias=bias)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(half), nn.Conv2d(in_nc, out_nc, kernel, bias=bias)]
    return [nn.Conv2d(in_nc, out_nc, kernel, padding=half, bias=bias)]


def _check_padding(padding: str) -> None:
    if padding not in PADDING_KINDS:
        raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDING_KINDS)}")


def resnet_norm(norm: str, affine: bool = False) -> Callable[[int], nn.Module]:
    """:func:`~pairgan.nets.blocks.norm_layer`, with ``affine`` giving instance norm a learned
    per-channel scale and shift (the DRPAN reference's ``InstanceNorm2d(affine=True)``). Batch
    norm always has them; ``none`` has nothing to learn."""
    if affine and norm == "instance":
        return lambda channels: nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)
    return norm_layer(norm)


class ResnetBlock(nn.Module):
    """``x + (conv3x3, norm, ReLU, [Dropout 0.5], conv3x3, norm)(x)`` at constant width."""

    def __init__(self, channels: int, norm: str = "batch", dropout: bool = False,
                 padding: str = "reflect", norm_affine: bool = False) -> None:
        super().__init__()
        _check_padding(padding)
        bias = uses_bias(norm)
        make_norm = resnet_norm(norm, norm_affine)
        layers = [*_padded_conv(channels, channels, 3, padding, bias), make_norm(channels), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_padded_conv(channels, channels, 3, padding, bias), make_norm(channels)]
        self.residual = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x)


@register("generator", "resnet")
class ResnetGenerator(nn.Module):
    """Encoder, ``n_blocks`` residual blocks, decoder: c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks,
    u2ngf, ungf, c7s1-output_nc, Tanh (9 blocks: ``resnet_9blocks``, 6: ``resnet_6blocks``).

    ``padding`` applies to every size-keeping convolution (the two 7x7 ones and the residual
    blocks' 3x3 ones): ``reflect`` is the pix2pix/CycleGAN reference, ``zero`` the DRPAN
    reference's (godisboy/DRPAN pads all of them with zeros). ``norm_affine`` gives instance norm
    a learned scale and shift (the DRPAN reference's ``affine=True``; pix2pix's has none).
    Input height and width must be multiples of
    :attr:`size_multiple` for the output to match the input size. Weights keep PyTorch's
    defaults; apply :func:`pairgan.nets.blocks.init_weights` for pix2pix's initialisation.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "batch",
        dropout: bool = False,
        padding: str = "reflect",
        norm_affine: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        _check_padding(padding)
        self.size_multiple: int = 4
        bias = uses_bias(norm)
        make_norm = resnet_norm(norm, norm_affine)

        layers: list[nn.Module] = [
            *_padded_conv(input_nc, ngf, 7, padding, bias),
            make_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout, padding=padding, norm_affine=norm_affine)
                   for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                # output_padding=1 makes each up step exactly double the size.
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                   output_padding=1, bias=bias),
                make_norm(ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [*_padded_conv(ngf, output_nc, 7, padding, True), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        return run_sequential(self.model, x, self.grad_checkpointing)
