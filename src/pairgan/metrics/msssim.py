"""MS-SSIM (Wang, Simoncelli & Bovik 2003), per image, registered as ``ms_ssim``.

Images in [0, 1] (data range 1), each RGB channel separately, then the mean over channels (no
conversion to luma). Five scales with the weights ``(0.0448, 0.2856, 0.3001, 0.2363, 0.1333)``;
at each scale the SSIM terms use the same 11x11 Gaussian window (sigma 1.5, K1 0.01, K2 0.03,
valid region) as :func:`pairgan.metrics.basic.ssim`; the contrast-structure term of scales 1-4
and the full SSIM of scale 5 are clamped at 0 (as pytorch-msssim) and combined as a weighted
geometric product per channel (as pytorch-msssim; torchmetrics averages the channels first,
which is the same for grey images); between scales a 2x2 average pool (an odd last row or
column is dropped, as torchmetrics).
Standard MS-SSIM needs images of at least 161 px on the short side (the window must fit the
fifth scale); smaller images get a window shrunk to the scale's size, and
:func:`ms_ssim_is_standard` says whether that happened (reported in ``metrics.json``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pairgan.metrics.basic import register_metric, ssim_maps

__all__ = ["MS_SSIM_WEIGHTS", "ms_ssim", "ms_ssim_is_standard"]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11


def _ssim_cs(x: torch.Tensor, y: torch.Tensor, window: int = WINDOW, sigma: float = 1.5) -> tuple[
        torch.Tensor, torch.Tensor]:
    """Per-image-and-channel SSIM and contrast-structure means, ``[N, C]`` each (float64)."""
    s, cs = ssim_maps(x, y, window, sigma)
    return s.flatten(2).mean(2), cs.flatten(2).mean(2)


def ms_ssim_is_standard(height: int, width: int) -> bool:
    """Whether images of this size get the standard five-scale MS-SSIM with the full window."""
    return min(height, width) > (WINDOW - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1)


@register_metric("ms_ssim")
def ms_ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image (``[N]``), inputs NCHW in [0, 1]."""
    x, y = fake.double(), real.double()
    w = torch.tensor(MS_SSIM_WEIGHTS, dtype=torch.float64, device=x.device)
    levels = []
    for i in range(len(MS_SSIM_WEIGHTS)):
        s, cs = _ssim_cs(x, y)
        if i < len(MS_SSIM_WEIGHTS) - 1:
            levels.append(cs.clamp_min(0))
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:
            levels.append(s.clamp_min(0))
    stack = torch.stack(levels, 0)  # [scales, N, C]
    val = torch.prod(stack ** w.view(-1, 1, 1), 0)
    return val.mean(1).float()
