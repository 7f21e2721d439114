"""The cascaded refinement network (Chen & Koltun, ICCV 2017): label maps -> k images.

A cascade of ``m`` refinement modules. Module 0 works at the target size / 2^(m-1) (4x8 for a
256x512 target with the reference's 7 modules); module ``i`` works at twice the size of module
``i - 1``. Each module takes the concatenation of

* module ``i - 1``'s features, upsampled 2x bilinearly (``align_corners=True``, as the reference's
  ``tf.image.resize_bilinear(..., align_corners=True)``; module 0 has none), and
* the conditioning map (one-hot labels [+ instance edges]) downsampled to its size by area
  averaging (the reference's ``tf.image.resize_area``, applied recursively by factors of 2, which
  for exact halvings equals one area resize from full resolution; one-hot maps become soft),

and applies twice ``conv 3x3 (zero padding, no bias) -> layer norm -> LeakyReLU(0.2)``. The layer
norm is ``slim.layer_norm`` as the reference uses it: statistics over (C, H, W) of each sample,
a learned scale and offset per channel, epsilon 1e-12; that is ``nn.GroupNorm(1, C)``. A final
1x1 convolution (with bias, no activation) gives ``3 k`` channels.

Output range: the reference maps the raw 1x1 output ``y`` to pixels as ``(y + 1) / 2 * 255``, so
``y`` itself is the image on pairgan's [-1, 1] scale. This network returns ``y`` unclamped (the
Translator clamps to [-1, 1], as the reference clips to [0, 255] when it saves). The ``3 k``
channels are variant-major: variant ``u`` is channels ``3u .. 3u + 2`` (the reference's 1x1 conv
orders them colour-major, R0..R8 G0..G8 B0..B8; a converted reference checkpoint permutes them).

Weights: convolutions Xavier-uniform (slim's default initialiser), biases zero, norm scale 1 and
offset 0. Widths follow the reference's table by module height (:data:`REFERENCE_WIDTHS`).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pairgan.registry import register

__all__ = [
    "REFERENCE_WIDTHS",
    "CascadedRefinementNetwork",
    "RefinementModule",
    "module_sizes",
    "reference_widths",
]

#: The reference's module width by module height (demo_256p/512p/1024p.py: 1024 below 128,
#: 512 at 128 and 256, 128 at 512, 32 at 1024).
REFERENCE_WIDTHS: dict[int, int] = {4: 1024, 8: 1024, 16: 1024, 32: 1024, 64: 1024, 128: 512, 256: 512,
                                    512: 128, 1024: 32}


def reference_widths(height: int, base: int = 4) -> list[int]:
    """The reference's widths for a cascade from height ``base`` (4) up to ``height``, one per
    module, coarse to fine: ``reference_widths(256)`` -> 5 x 1024 + 2 x 512 (7 modules)."""
    if height < base or height % base or (height // base) & (height // base - 1):
        raise ValueError(f"height {height}: expected {base} x a power of two")
    out, h = [], base
    while h <= height:
        if h not in REFERENCE_WIDTHS:
            raise ValueError(f"no reference width for module height {h} (the table covers "
                             f"{min(REFERENCE_WIDTHS)}..{max(REFERENCE_WIDTHS)}); give the widths explicitly")
        out.append(REFERENCE_WIDTHS[h])
        h *= 2
    return out


def _ceil_div(n: int, f: int) -> int:
    """``ceil(n / f)``, at least 1 (``n`` itself for ``f`` 1), in integer arithmetic so that a
    symbolic size (a ``SymInt`` under ``torch.export``) stays symbolic. The exact case is plain
    ``n // f``: for a dynamic size declared as a multiple of the size multiple, ``n % f == 0`` and
    ``n >= f`` are decided from that declaration alone, so nothing is specialised to the sample."""
    if f == 1:
        return n
    if n % f == 0 and n >= f:
        return n // f
    return max(1, -(-n // f))


def module_sizes(height: int, width: int, n_modules: int) -> list[tuple[int, int]]:
    """(height, width) of each module, coarse to fine, for a ``height`` x ``width`` target:
    module ``i`` of ``m`` works at the target size / 2^(m-1-i) (rounded up when not exact; halving
    and rounding up ``m-1-i`` times is the same as one division by 2^(m-1-i) rounded up).

    Integer arithmetic only (no ``int()``, ``math.ceil`` or float division): with ``height`` and
    ``width`` symbolic (``torch.export`` with dynamic sizes) the sizes stay symbolic, so a
    dynamic-size export is correct at every size, not just the traced one."""
    return [(_ceil_div(height, 2 ** (n_modules - 1 - i)), _ceil_div(width, 2 ** (n_modules - 1 - i)))
            for i in range(n_modules)]


class RefinementModule(nn.Module):
    """Twice ``conv 3x3 (no bias) -> layer norm over (C, H, W) -> LeakyReLU(0.2)``."""

    def __init__(self, input_nc: int, width: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.input_nc, self.width = int(input_nc), int(width)
        self.block = nn.Sequential(
            nn.Conv2d(input_nc, width, 3, padding=1, bias=False),
            nn.GroupNorm(1, width, eps=eps),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.GroupNorm(1, width, eps=eps),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


@register("generator", "crn")
class CascadedRefinementNetwork(nn.Module):
    """The CRN generator: ``forward(cond)`` -> ``[N, k * output_nc, H, W]`` (variant-major).

    ``input_nc``: channels of the conditioning map (label_nc [+ 1 for instance edges]);
    ``widths``: one width per module, coarse to fine (their number is the number of modules);
    ``k``: outputs per input (the diversity loss's variants). Inputs must be multiples of
    :attr:`size_multiple` (2^(m-1)) for the reference's exact halvings; other sizes work, with
    the module sizes rounded up.
    """

    def __init__(self, input_nc: int, output_nc: int = 3, widths: Sequence[int] = (1024,) * 5 + (512, 512),
                 k: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths {widths}: expected at least one module width >= 1")
        if k < 1:
            raise ValueError(f"k {k}: expected >= 1")
        if input_nc < 1:
            raise ValueError(f"input_nc {input_nc}: expected >= 1")
        self.input_nc, self.output_nc, self.k = int(input_nc), int(output_nc), int(k)
        self.widths = widths
        self.stages = nn.ModuleList()
        prev = 0
        for w in widths:
            self.stages.append(RefinementModule(prev + input_nc, w, eps))
            prev = w
        self.to_rgb = nn.Conv2d(widths[-1], self.output_nc * self.k, 1)
        self.reset_parameters()

    @property
    def n_modules(self) -> int:
        return len(self.stages)

    @property
    def size_multiple(self) -> int:
        return 2 ** (self.n_modules - 1)

    def reset_parameters(self) -> None:
        """The reference's initialisation (slim): Xavier-uniform convolutions, zero biases,
        layer-norm scale 1 and offset 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def module_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        return module_sizes(height, width, self.n_modules)

    def pyramid(self, cond: Tensor) -> list[Tensor]:
        """The conditioning map at every module's size (area-downsampled), coarse to fine."""
        sizes = self.module_sizes(*cond.shape[-2:])
        return [cond if s == tuple(cond.shape[-2:]) else F.interpolate(cond, size=s, mode="area") for s in sizes]

    def features(self, cond: Tensor) -> Tensor:
        """The last module's features ``[N, widths[-1], H, W]``."""
        if cond.dim() != 4 or cond.shape[1] != self.input_nc:
            raise ValueError(f"CRN input of shape {tuple(cond.shape)}, expected N x {self.input_nc} x H x W")
        levels = self.pyramid(cond)
        x = self.stages[0](levels[0])
        for stage, level in zip(self.stages[1:], levels[1:]):
            up = F.interpolate(x, size=tuple(level.shape[-2:]), mode="bilinear", align_corners=True)
            x = stage(torch.cat([up, level.to(up.dtype)], 1))
        return x

    def forward(self, cond: Tensor) -> Tensor:
        return self.to_rgb(self.features(cond))

    def split(self, out: Tensor) -> Tensor:
        """``[N, k * output_nc, H, W]`` -> ``[N, k, output_nc, H, W]``."""
        n, _, h, w = out.shape
        return out.reshape(n, self.k, self.output_nc, h, w)

    def last_parameters(self, n: int) -> Iterator[nn.Parameter]:
        """Parameters of the last ``n`` modules and of the final 1x1 convolution."""
        for stage in self.stages[max(0, self.n_modules - n):]:
            yield from stage.parameters()
        yield from self.to_rgb.parameters()

    def extra_repr(self) -> str:
        return f"input_nc={self.input_nc}, output_nc={self.output_nc}, k={self.k}, widths={self.widths}"
