"""DRPAN's networks and region tools: the discriminative region proposal and the reviser.

DRPAN (Wang et al., ECCV 2018, "Discriminative Region Proposal Adversarial Networks for
High-Quality Image-to-Image Translation") searches the PatchGAN score map of a generated image
with a sliding window of ``k x k`` score cells, takes the window whose mean realness is the
lowest (the most artificial region), maps it to an image box through the discriminator's
receptive-field geometry, and pastes the generated pixels of that box into the real image
("fake-mask real"). A reviser R then learns to tell real from fake-mask real.

Box mapping. With the discriminator's ``(size, jump, start)`` from
:func:`pairgan.nets.patchgan.receptive_field` (computed from its layers' kernels, strides and
paddings), score cell ``i`` sees image rows ``[start + i*jump, start + i*jump + size - 1]``.
A window covering cells ``iy .. iy+kh-1`` (and ``ix .. ix+kw-1``) becomes the union of those
fields::

    y0 = start + iy * jump                      x0 = start + ix * jump
    y1 = start + (iy + kh - 1) * jump + size    x1 = start + (ix + kw - 1) * jump + size

(``y1``/``x1`` exclusive), which is centred on the covered cells by construction, then clipped
to ``[0, H] x [0, W]``. For pix2pix's 70x70 PatchGAN (``size`` 70, ``jump`` 8, ``start`` -23)
one cell gives a 70 px box; pix2pixHD's finest-scale D (padding 2: ``size`` 70, ``jump`` 8,
``start`` -46) with a 9x9 window gives 70 + 8 * 8 = 134 px.

Differences from the ECCV reference code (godisboy/DRPAN), on purpose:

* it keeps the window with the *highest* mean score (``select="max"`` here; the paper and the
  default here take the lowest, the most fake one; its pix2pixHD variant takes the lowest);
* it maps a cell to the image as ``cell * ((H - 70) // h) + 70`` with a fixed 70 px offset and
  a fixed 70 px region, so the top-left 70 px are never proposed and boxes near the far edge
  run off the image; here the mapping is the discriminator's real geometry, clipped
  (``box="reference"`` in :func:`propose_regions` gives the ECCV mapping, for a faithful rerun:
  the box starts at ``cell * ((H - 70) // h) + 70`` per axis, spans 70 px and is clipped to the
  image, which is what its mask assignment does to a box that runs off the far edge; the code
  takes the stride from the height for both axes, here each axis has its own: the same on its
  square 256x256 images);
* its window mean reads a ``stride x stride`` (1 x 1) block whatever the window size;
* it handles batch size 1 with Python loops; here everything is vectorised over the batch.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pairgan.nets.blocks import norm_layer
from pairgan.nets.patchgan import receptive_field
from pairgan.registry import register

SELECT_MODES = ("min", "max")
#: How a chosen window becomes an image box (``model.box``): ``receptive`` (the discriminator's
#: receptive-field geometry, the default) or ``reference`` (the ECCV code's fixed mapping).
BOX_MODES = ("receptive", "reference")
#: The ECCV code's fixed receptive field (its 70x70 PatchGAN): box offset and side, in pixels.
REFERENCE_FIELD = 70


# --------------------------------------------------------------------------- geometry


def conv_geometry(net: nn.Module) -> list[tuple[int, int, int]]:
    """``(kernel, stride, padding)`` of every Conv2d of ``net`` in registration (= forward) order.

    Uses ``net.conv_geometry()`` when the network provides it. Only plain stacks of square
    convolutions are understood: pooling, transposed convolutions, dilation or string padding
    raise ``ValueError`` rather than giving a wrong receptive field.
    """
    if hasattr(net, "conv_geometry"):
        return list(net.conv_geometry())
    layers: list[tuple[int, int, int]] = []
    for module in net.modules():
        if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                               nn.modules.conv._ConvTransposeNd)):
            raise ValueError(f"cannot compute a receptive field through {type(module).__name__}")
        if isinstance(module, nn.Conv2d):
            k, s, p, d = module.kernel_size, module.stride, module.padding, module.dilation
            if isinstance(p, str) or k[0] != k[1] or s[0] != s[1] or p[0] != p[1] or d != (1, 1):
                raise ValueError("only square, undilated convolutions with numeric padding are supported, "
                                 f"got {module}")
            layers.append((k[0], s[0], p[0]))
    if not layers:
        raise ValueError(f"{type(net).__name__} has no Conv2d layers")
    return layers


def discriminator_geometry(D: nn.Module) -> list[tuple[int, int, int]]:
    """The layer geometry behind the score map the proposal reads.

    A multi-scale discriminator (one with ``scales``, the finest-resolution one last, as
    :class:`pairgan.nets.pix2pixhd.MultiscaleDiscriminator`) contributes its full-resolution
    scale: the map :func:`finest_score_map` picks.
    """
    scales = getattr(D, "scales", None)
    if isinstance(scales, nn.ModuleList) and len(scales) > 0:
        return conv_geometry(scales[len(scales) - 1])
    return conv_geometry(D)


def finest_score_map(pred: Any) -> Tensor:
    """The score map of a discriminator output, read as :class:`pairgan.losses.GANLoss` reads it:
    a tensor is the map; a list has one entry per scale, finest first, and an entry that is
    itself a list holds that scale's layer outputs with the map last. Returns the finest map."""
    if isinstance(pred, Tensor):
        return pred
    if len(pred) == 0:
        raise ValueError("empty discriminator output")
    finest = pred[0]
    if isinstance(finest, Tensor):
        return finest
    if len(finest) == 0:
        raise ValueError("empty discriminator output")
    return finest[-1]


def score_map_size(geometry: Sequence[tuple[int, int, int]], size: int) -> int:
    """Output length of the convolution stack ``geometry`` on an input of length ``size``."""
    for k, s, p in geometry:
        size = (size + 2 * p - k) // s + 1
    return size


# --------------------------------------------------------------------------- proposal


def propose_regions(
    score_map: Tensor,
    window: int,
    geometry: Sequence[tuple[int, int, int]],
    image_size: tuple[int, int],
    select: str = "min",
    box: str = "receptive",
) -> Tensor:
    """One image box per sample around the most fake (``min``) or most real (``max``) window.

    ``score_map``: ``[N, C, h, w]`` discriminator scores (higher = more real; channels are
    averaged); ``window``: the window side in score cells (clamped to the map); ``geometry``:
    the discriminator's ``(kernel, stride, padding)`` per layer; ``image_size``: ``(H, W)``.
    The window means are ``avg_pool2d(score_map, window, stride=1)``; ties go to the first
    window in row-major order. ``box``: ``receptive`` maps the window through the receptive
    field of ``geometry``; ``reference`` uses the ECCV code's fixed mapping (the window's first
    cell at ``cell * ((H - 70) // h) + 70`` per axis, a ``70 x 70`` box whatever the window).
    Returns a ``LongTensor [N, 4]`` of ``(y0, x0, y1, x1)``, ends exclusive, clipped to the
    image (see the module docstring for the mapping).
    """
    if select not in SELECT_MODES:
        raise ValueError(f"select must be one of {SELECT_MODES}, got {select!r}")
    if box not in BOX_MODES:
        raise ValueError(f"box must be one of {BOX_MODES}, got {box!r}")
    if score_map.dim() != 4:
        raise ValueError(f"score_map must be [N, C, h, w], got shape {tuple(score_map.shape)}")
    if window < 1:
        raise ValueError(f"window must be >= 1 score cells, got {window}")
    H, W = int(image_size[0]), int(image_size[1])
    n, _, h, w = score_map.shape
    expected = (score_map_size(geometry, H), score_map_size(geometry, W))
    if (h, w) != expected:
        raise ValueError(f"a {h}x{w} score map does not come from a {H}x{W} image through layers {list(geometry)} "
                         f"(they give {expected[0]}x{expected[1]}): wrong geometry or image size")
    scores = score_map.detach().float().mean(1, keepdim=True)
    kh, kw = min(window, h), min(window, w)
    means = F.avg_pool2d(scores, (kh, kw), stride=1).flatten(1)  # [N, (h-kh+1) * (w-kw+1)]
    index = means.argmin(1) if select == "min" else means.argmax(1)
    cols = w - kw + 1
    iy, ix = index // cols, index % cols
    if box == "reference":
        # The ECCV code: an integer image stride (H - 70) // h per axis, a fixed 70 px offset and side.
        y0 = iy * ((H - REFERENCE_FIELD) // h) + REFERENCE_FIELD
        x0 = ix * ((W - REFERENCE_FIELD) // w) + REFERENCE_FIELD
        y1, x1 = y0 + REFERENCE_FIELD, x0 + REFERENCE_FIELD
        return torch.stack([y0.clamp(0, H), x0.clamp(0, W), y1.clamp(0, H), x1.clamp(0, W)], 1).long()
    size, jump, start = receptive_field(geometry)
    y0 = start + iy * jump
    x0 = start + ix * jump
    y1 = start + (iy + kh - 1) * jump + size
    x1 = start + (ix + kw - 1) * jump + size
    boxes = torch.stack([y0.clamp(0, H), x0.clamp(0, W), y1.clamp(0, H), x1.clamp(0, W)], 1)
    return boxes.long()


def box_mask(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """``[N, 1, H, W]`` boolean mask, true inside each sample's box ``(y0, x0, y1, x1)`` (ends exclusive)."""
    H, W = int(image_size[0]), int(image_size[1])
    boxes = boxes.long()
    ys = torch.arange(H, device=boxes.device).view(1, H, 1)
    xs = torch.arange(W, device=boxes.device).view(1, 1, W)
    y0, x0, y1, x1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    inside = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)
    return inside.unsqueeze(1)


def fake_mask_real(real: Tensor, fake: Tensor, boxes: Tensor) -> Tensor:
    """The real images with each sample's box replaced by the generated pixels.

    Gradients flow into ``fake`` through the box only.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    mask = box_mask(boxes.to(real.device), real.shape[-2:])
    return torch.where(mask, fake, real.to(fake.dtype))


def region_l1(fake: Tensor, real: Tensor, boxes: Tensor) -> Tensor:
    """Mean absolute difference over each sample's box pixels (all channels), averaged over samples."""
    mask = box_mask(boxes.to(real.device), real.shape[-2:]).to(torch.float32)
    diff = (fake.float() - real.float()).abs() * mask
    count = mask.sum((1, 2, 3)) * real.shape[1]
    return (diff.sum((1, 2, 3)) / count.clamp(min=1)).mean()


# --------------------------------------------------------------------------- reviser


@register("discriminator", "reviser")
class ImageReviser(nn.Module):
    """The ECCV reference's image-level reviser (``Discriminator_r`` of godisboy/DRPAN).

    ``n_layers`` 4x4 stride-2 convolutions (padding 1) of widths ``ndf``, ``2 ndf``, ``4 ndf``,
    ``8 ndf``, ``8 ndf``, ... (capped at ``8 ndf``), norm on all but the first, LeakyReLU(0.2);
    then one 4x4 convolution without padding to one score. Every convolution has a bias, as in
    the reference. At 256x256 with ``n_layers`` 6 (the reference) the map before the last
    convolution is 4x4 and the output one score per image; larger inputs give a small map.
    Returns logits (the reference ends with a sigmoid and BCE, the same as logits with BCE-with-logits).
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 6, norm: str = "batch", **ignored: Any) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        width = ndf
        for n in range(1, n_layers):
            nxt = ndf * min(2**n, 8)
            layers += [nn.Conv2d(width, nxt, 4, stride=2, padding=1), make_norm(nxt), nn.LeakyReLU(0.2, inplace=True)]
            width = nxt
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=0))
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers

    def min_input_size(self) -> int:
        """The smallest input side that still leaves 4x4 for the last (unpadded) convolution."""
        return 4 * 2**self.n_layers

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < self.min_input_size():
            raise ValueError(f"the reviser with {self.n_layers} stride-2 layers needs inputs of at least "
                             f"{self.min_input_size()} px, got {tuple(x.shape[-2:])}; lower model.n_layers_R")
        return self.model(x)

    def conv_geometry(self) -> list[tuple[int, int, int]]:
        return [(m.kernel_size[0], m.stride[0], m.padding[0]) for m in self.model if isinstance(m, nn.Conv2d)]
