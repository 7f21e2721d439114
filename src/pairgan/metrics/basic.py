"""Full-reference metrics between generated and target images: L1, PSNR, SSIM.

Convention (documented in the README): images are compared in [0, 1] (the [-1, 1] tensors are
mapped by (x + 1) / 2), per image, then averaged over the set. PSNR uses data range 1. SSIM is
Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), K1 0.01, K2 0.03, computed per
channel on the full image without padding, averaged over channels.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: name -> function(fake, real) returning one value per image (N,), inputs NCHW in [0, 1].
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    def deco(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return deco


@register_metric("l1")
def l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, in [0, 1] units."""
    return (fake - real).abs().flatten(1).mean(1)


@register_metric("psnr")
def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB (data range 1); identical images give inf."""
    mse = (fake - real).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g


def ssim_maps(
    fake: torch.Tensor, real: torch.Tensor, window: int = 11, sigma: float = 1.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps (float64, valid region, per channel) of NCHW images in
    [0, 1]; the window shrinks to the image on tiny inputs rather than fail. Shared by SSIM and
    MS-SSIM."""
    c = fake.shape[1]
    x, y = fake.double(), real.double()
    win = min(window, x.shape[-1], x.shape[-2])
    g = _gaussian_window(win, sigma).to(fake.device, torch.float64)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = F.conv2d(t, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return F.conv2d(t, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs, cs


@register_metric("ssim")
def ssim(fake: torch.Tensor, real: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (mean over pixels and channels)."""
    s, _ = ssim_maps(fake, real, window, sigma)
    return s.flatten(1).mean(1).float()


def compute_metrics(
    fakes: list[torch.Tensor], reals: list[torch.Tensor], names: tuple[str, ...] = ("l1", "psnr", "ssim")
) -> dict[str, float]:
    """Average each metric over pairs of CHW/NCHW tensors in [-1, 1] (sizes may differ between pairs)."""
    totals = {n: 0.0 for n in names}
    count = 0
    for f, r in zip(fakes, reals):
        f = ((f.unsqueeze(0) if f.dim() == 3 else f).float() + 1) / 2
        r = ((r.unsqueeze(0) if r.dim() == 3 else r).float() + 1) / 2
        if f.shape != r.shape:
            raise ValueError(f"generated {tuple(f.shape)} and target {tuple(r.shape)} differ in shape")
        for n in names:
            totals[n] += float(METRICS[n](f.clamp(0, 1), r.clamp(0, 1)).sum())
        count += f.shape[0]
    return {n: totals[n] / max(count, 1) for n in names} | {"count": count}
