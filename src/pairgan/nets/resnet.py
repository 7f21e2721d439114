"""ResNet generator (Johnson et al. 2016) as configured in the pix2pix/CycleGAN reference."""

from __future__ import annotations

from torch import Tensor, nn

from pairgan.nets.blocks import norm_layer, run_sequential, uses_bias
from pairgan.registry import register

PADDING_KINDS = ("reflect", "replicate", "zero")


def _padded_conv3x3(channels: int, padding: str, bias: bool) -> list[nn.Module]:
    if padding == "reflect":
        return [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
    if padding == "replicate":
        return [nn.ReplicationPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias)]
    return [nn.Conv2d(channels, channels, 3, padding=1, bias=bias)]


class ResnetBlock(nn.Module):
    """``x + (conv3x3, norm, ReLU, [Dropout 0.5], conv3x3, norm)(x)`` at constant width."""

    def __init__(self, channels: int, norm: str = "batch", dropout: bool = False,
                 padding: str = "reflect") -> None:
        super().__init__()
        if padding not in PADDING_KINDS:
            raise ValueError(f"unknown padding {padding!r}; expected one of: {', '.join(PADDING_KINDS)}")
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        layers = [*_padded_conv3x3(channels, padding, bias), make_norm(channels), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_padded_conv3x3(channels, padding, bias), make_norm(channels)]
        self.residual = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x)


@register("generator", "resnet")
class ResnetGenerator(nn.Module):
    """Encoder, ``n_blocks`` residual blocks, decoder: c7s1-ngf, d2ngf, d4ngf, R4ngf x n_blocks,
    u2ngf, ungf, c7s1-output_nc, Tanh (9 blocks: ``resnet_9blocks``, 6: ``resnet_6blocks``).

    ``padding`` applies to the residual blocks; the two 7x7 convolutions always use reflection
    padding, as in the reference. Input height and width must be multiples of
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
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.size_multiple: int = 4
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, 7, bias=bias),
            make_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(inplace=True),
            ]
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout, padding=padding) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [
                # output_padding=1 makes each up step exactly double the size.
                nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                   output_padding=1, bias=bias),
                make_norm(ngf * mult // 2),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        return run_sequential(self.model, x, self.grad_checkpointing)
