"""pix2pixHD networks (Wang et al., CVPR 2018): coarse-to-fine generator, multi-scale
discriminator with intermediate features, and the instance-wise feature encoder.

Layouts follow the NVIDIA reference so that, at the default settings, every network has the
reference's parameter count (``tests/test_pix2pixhd_nets.py`` asserts them):

* :class:`GlobalGenerator` (G1): c7s1-ngf, ``n_downsampling`` x (3x3 stride-2 conv doubling the
  width), ``n_blocks`` residual blocks, ``n_downsampling`` x (3x3 stride-2 transposed conv,
  output_padding 1, halving the width), c7s1-output_nc, Tanh; reflection padding, instance norm.
* :class:`LocalEnhancer` (G2 around G1): the global generator of width ``ngf * 2**n_local``
  without its last three layers runs on the input average-pooled ``n_local`` times; each
  enhancer's front end (c7s1, one stride-2 conv) runs on its own scale and its output is
  summed element-wise with the coarser branch's features before the enhancer's residual blocks
  and transposed conv. State-dict keys ``model.*`` are those of a :class:`GlobalGenerator`, so a
  trained global generator initialises the coarse branch key for key.
* :class:`MultiscaleDiscriminator`: ``num_D`` PatchGANs (4x4 kernels, padding 2) on the input
  and its successive 2x average-pooled versions; each returns the output of every layer, the
  score map last, for the feature-matching loss.
* :class:`FeatureEncoder`: an encoder-decoder whose output is averaged over every instance
  (vectorised segment mean, :func:`instance_pool`), so each object gets one feature vector.

Label inputs are encoded by :mod:`pairgan.nets.labels` (:func:`one_hot`, :func:`instance_edges`).
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor, nn

from pairgan.nets.blocks import norm_layer, run_checkpointed, run_sequential, uses_bias
from pairgan.nets.labels import as_nchw_ids
from pairgan.nets.resnet import ResnetBlock
from pairgan.registry import register

__all__ = [
    "FeatureEncoder",
    "GlobalGenerator",
    "LocalEnhancer",
    "MultiscaleDiscriminator",
    "NLayerFeatureDiscriminator",
    "init_reference",
    "instance_pool",
    "instance_segments",
]


# --------------------------------------------------------------------------- input helpers


def instance_segments(inst: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Number the (image, instance id) segments of ``inst`` ``[N, 1, H, W]``.

    Returns ``(batch_index [S], instance_id [S], segment [N*H*W])``: the image and id of each of
    the ``S`` segments, sorted by image then id, and the segment of every pixel (NHW order).
    """
    inst = as_nchw_ids(inst, "inst")
    n, _, h, w = inst.shape
    ids = inst.reshape(n, h * w).long()
    lo = ids.min()
    span = ids.max() - lo + 1
    key = torch.arange(n, device=ids.device).unsqueeze(1) * span + (ids - lo)
    uniq, segment = torch.unique(key.reshape(-1), return_inverse=True)
    return uniq // span, uniq % span + lo, segment


def _segment_means(features: Tensor, segment: Tensor, n_segments: int) -> tuple[Tensor, Tensor]:
    """Per-segment mean ``[C, S]`` (float32) of ``features`` ``[N, C, H, W]`` and pixel counts ``[S]``."""
    c = features.shape[1]
    flat = features.float().transpose(0, 1).reshape(c, -1)  # [C, N*H*W], NHW order like ``segment``
    sums = flat.new_zeros(c, n_segments).index_add_(1, segment, flat)
    counts = torch.bincount(segment, minlength=n_segments)
    return sums / counts.to(flat.dtype), counts


def instance_pool(features: Tensor, inst: Tensor) -> Tensor:
    """Instance-wise average pooling: every pixel gets the mean of ``features`` over its instance
    (same image, same id in ``inst``). Vectorised: one ``index_add_`` over all segments, no loop
    over instances; differentiable. ``features`` ``[N, C, H, W]``, ``inst`` ``[N, 1, H, W]``."""
    n, c, h, w = features.shape
    if tuple(inst.shape[-2:]) != (h, w) or inst.shape[0] != n:
        raise ValueError(f"inst {tuple(inst.shape)} does not match features {tuple(features.shape)}")
    batch_index, _, segment = instance_segments(inst)
    means, _ = _segment_means(features, segment, batch_index.numel())
    pooled = means[:, segment].reshape(c, n, h, w).transpose(0, 1)
    return pooled.to(features.dtype)


def instance_means(features: Tensor, inst: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-instance mean features: ``(batch_index [S], instance_id [S], mean [S, C], pixels [S])``."""
    batch_index, ids, segment = instance_segments(inst)
    means, counts = _segment_means(features, segment, batch_index.numel())
    return batch_index, ids, means.t(), counts


# --------------------------------------------------------------------------- initialisation


def init_reference(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The reference's initialisation: conv and transposed-conv weights from N(0, ``gain``), their
    biases left at PyTorch's default; batch-norm scales N(1, ``gain``), shifts 0."""

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(init)
    return net


# --------------------------------------------------------------------------- generators


def _c7s1(in_nc: int, out_nc: int, norm: str) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, out_nc, 7, bias=uses_bias(norm)), norm_layer(norm)(out_nc),
            nn.ReLU(inplace=True)]


def _down(in_nc: int, out_nc: int, norm: str) -> list[nn.Module]:
    return [nn.Conv2d(in_nc, out_nc, 3, stride=2, padding=1, bias=uses_bias(norm)), norm_layer(norm)(out_nc),
            nn.ReLU(inplace=True)]


def _up(in_nc: int, out_nc: int, norm: str) -> list[nn.Module]:
    return [nn.ConvTranspose2d(in_nc, out_nc, 3, stride=2, padding=1, output_padding=1, bias=uses_bias(norm)),
            norm_layer(norm)(out_nc), nn.ReLU(inplace=True)]


def _to_image(in_nc: int, out_nc: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, out_nc, 7), nn.Tanh()]


@register("generator", "pix2pixhd_global")
class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator G1 (defaults = the reference's: ngf 64, 4 downsamplings,
    9 residual blocks at 1024 channels). The last three modules of :attr:`model` (reflection pad,
    c7s1-output_nc, Tanh) turn features into the image; :class:`LocalEnhancer` drops them.

    Input height and width must be multiples of :attr:`size_multiple` (``2**n_downsampling``).
    ``dropout`` (in the residual blocks) is off in pix2pixHD; it is accepted so that pix2pix can
    use this generator too (``model.generator: pix2pixhd_global``).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_downsampling: int = 4,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        padding: str = "reflect",
        **ignored: Any,
    ) -> None:
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError(f"n_blocks and n_downsampling must be >= 0, got {n_blocks}, {n_downsampling}")
        self.size_multiple: int = 2**n_downsampling
        layers: list[nn.Module] = _c7s1(input_nc, ngf, norm)
        for i in range(n_downsampling):
            layers += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm)
        width = ngf * 2**n_downsampling
        layers += [ResnetBlock(width, norm=norm, dropout=dropout, padding=padding) for _ in range(n_blocks)]
        for i in range(n_downsampling, 0, -1):
            layers += _up(ngf * 2**i, ngf * 2 ** (i - 1), norm)
        layers += _to_image(ngf, output_nc)
        self.model = nn.Sequential(*layers)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> Tensor:
        return run_sequential(self.model, x, self.grad_checkpointing)


class _Enhancer(nn.Module):
    """One local enhancer: ``front`` (c7s1 + one stride-2 conv) on its own scale; ``back``
    (residual blocks, transposed conv, and on the finest enhancer the c7s1 to the image) on the
    sum of ``front``'s output and the coarser branch's features."""

    def __init__(self, input_nc: int, width: int, output_nc: int | None, n_blocks: int, norm: str,
                 padding: str) -> None:
        super().__init__()
        self.front = nn.Sequential(*_c7s1(input_nc, width, norm), *_down(width, 2 * width, norm))
        back: list[nn.Module] = [ResnetBlock(2 * width, norm=norm, padding=padding) for _ in range(n_blocks)]
        back += _up(2 * width, width, norm)
        if output_nc is not None:
            back += _to_image(width, output_nc)
        self.back = nn.Sequential(*back)

    def forward(self, x: Tensor, coarse: Tensor, checkpoint: bool = False) -> Tensor:
        return run_sequential(self.back, run_sequential(self.front, x, checkpoint) + coarse, checkpoint)


@register("generator", "pix2pixhd_local")
class LocalEnhancer(nn.Module):
    """pix2pixHD's coarse-to-fine generator: the global generator (width ``ngf * 2**n_local``)
    on the input downsampled ``n_local_enhancers`` times, then ``n_local_enhancers`` local
    enhancers (``n_blocks_local`` residual blocks each), each doubling the resolution.

    The input pyramid uses AvgPool(3, stride 2, pad 1, count_include_pad=False). ``model`` is
    the truncated global generator (keys as in :class:`GlobalGenerator`); ``enhancers[0]`` is
    the coarsest enhancer, ``enhancers[-1]`` the finest one (which outputs the image). The
    reference's ``niter_fix_global`` phase trains ``enhancers[-1]`` only
    (:meth:`finest_parameters`) and keeps the rest fixed (:meth:`fixed_parameters`).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsample_global: int = 4,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm: str = "instance",
        padding: str = "reflect",
        **ignored: Any,
    ) -> None:
        super().__init__()
        if n_local_enhancers < 1:
            raise ValueError(f"n_local_enhancers must be >= 1, got {n_local_enhancers}")
        self.n_local_enhancers = n_local_enhancers
        self.size_multiple: int = 2 ** (n_downsample_global + n_local_enhancers)
        global_net = GlobalGenerator(input_nc, output_nc, ngf * 2**n_local_enhancers, n_downsample_global,
                                     n_blocks_global, norm, padding=padding)
        self.model = nn.Sequential(*list(global_net.model)[:-3])
        self.enhancers = nn.ModuleList(
            _Enhancer(
                input_nc,
                ngf * 2 ** (n_local_enhancers - n),
                output_nc if n == n_local_enhancers else None,
                n_blocks_local,
                norm,
                padding,
            )
            for n in range(1, n_local_enhancers + 1)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def pyramid(self, x: Tensor) -> list[Tensor]:
        """``[x, x/2, x/4, ...]``: the input and its ``n_local_enhancers`` downsamplings."""
        levels = [x]
        for _ in range(self.n_local_enhancers):
            levels.append(self.downsample(levels[-1]))
        return levels

    def forward(self, x: Tensor) -> Tensor:
        levels = self.pyramid(x)
        features = run_sequential(self.model, levels[-1], self.grad_checkpointing)
        for i, enhancer in enumerate(self.enhancers):
            features = enhancer(levels[-2 - i], features, self.grad_checkpointing)
        return features

    def finest_parameters(self) -> Iterator[nn.Parameter]:
        """The outermost enhancer's parameters (trained alone during ``niter_fix_global``)."""
        return self.enhancers[-1].parameters()

    def fixed_parameters(self) -> Iterator[nn.Parameter]:
        """Everything but the outermost enhancer: the global generator and inner enhancers."""
        yield from self.model.parameters()
        for enhancer in self.enhancers[:-1]:
            yield from enhancer.parameters()


# --------------------------------------------------------------------------- encoder


@register("encoder", "pix2pixhd")
class FeatureEncoder(nn.Module):
    """Instance-level feature encoder E: c7s1-nef, ``n_downsampling`` stride-2 convs,
    ``n_downsampling`` transposed convs, c7s1-feat_num, Tanh; the output is averaged over each
    instance of ``inst`` (:func:`instance_pool`). Defaults = the reference's (nef 16, feat_num 3,
    4 down / 4 up)."""

    def __init__(self, input_nc: int = 3, feat_num: int = 3, nef: int = 16, n_downsampling: int = 4,
                 norm: str = "instance") -> None:
        super().__init__()
        self.feat_num = feat_num
        self.size_multiple: int = 2**n_downsampling
        layers: list[nn.Module] = _c7s1(input_nc, nef, norm)
        for i in range(n_downsampling):
            layers += _down(nef * 2**i, nef * 2 ** (i + 1), norm)
        for i in range(n_downsampling, 0, -1):
            layers += _up(nef * 2**i, nef * 2 ** (i - 1), norm)
        layers += _to_image(nef, feat_num)
        self.model = nn.Sequential(*layers)

    def forward(self, image: Tensor, inst: Tensor) -> Tensor:
        return instance_pool(self.model(image), inst)


# --------------------------------------------------------------------------- discriminators


class NLayerFeatureDiscriminator(nn.Module):
    """The reference's PatchGAN of pix2pixHD, returning every layer's output.

    ``n_layers`` 4x4 convs (the first without norm, all but the last of them stride 2; widths
    ``ndf``, doubling, capped at 512), one more 4x4 stride-1 conv with norm, then a 4x4 conv to
    one channel; LeakyReLU(0.2) between, padding 2 = ceil((4 - 1) / 2) throughout, no sigmoid.
    ``forward`` returns ``n_layers + 2`` tensors, the score map last.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        pad = 2
        blocks: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(input_nc, ndf, 4, stride=2, padding=pad), nn.LeakyReLU(0.2, inplace=True))
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            nxt = min(width * 2, 512)
            stride = 2 if n < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(width, nxt, 4, stride=stride, padding=pad, bias=bias),
                                        make_norm(nxt), nn.LeakyReLU(0.2, inplace=True)))
            width = nxt
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=pad)))
        self.layers = nn.ModuleList(blocks)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`):
        #: each block keeps only its output (feature matching reads it anyway).
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for layer in self.layers:
            # A lone conv (the last block) keeps nothing a recomputation would save.
            x = run_checkpointed(layer, x, self.grad_checkpointing and len(layer) > 1)
            outputs.append(x)
        return outputs


@register("discriminator", "multiscale")
class MultiscaleDiscriminator(nn.Module):
    """``num_D`` :class:`NLayerFeatureDiscriminator` on the input and its successive 2x average-
    pooled versions (AvgPool(3, stride 2, pad 1, count_include_pad=False)).

    ``forward`` returns a list over scales, finest first, of lists of layer outputs (score map
    last): what :class:`pairgan.losses.GANLoss` (score maps) and
    :class:`pairgan.losses.FeatureMatchingLoss` (the other layers) take. As in the reference,
    ``scales[k]`` sees the input downsampled ``num_D - 1 - k`` times, so ``scales[k]`` works at
    the same absolute resolution in a 1024x512 model with 2 scales and a 2048x1024 one with 3:
    a lower-resolution checkpoint initialises a higher-resolution one key for key.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 num_D: int = 2, **ignored: Any) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"num_D must be >= 1, got {num_D}")
        self.num_D = num_D
        self.n_layers = n_layers
        self.scales = nn.ModuleList(NLayerFeatureDiscriminator(input_nc, ndf, n_layers, norm) for _ in range(num_D))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        #: Activation checkpointing in training (:func:`pairgan.nets.blocks.set_grad_checkpointing`).
        self.grad_checkpointing = False

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i in range(self.num_D):
            results.append(self.scales[self.num_D - 1 - i](x))
            if i != self.num_D - 1:
                x = self.downsample(x)
        return results
