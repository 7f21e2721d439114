"""A plain eager pix2pix, written the way the PyTorch reference code runs it: the baseline.

The speed comparison (``benchmarks/speed_vs_reference.py``) needs "the reference" measured in the
same run on the same machine. Running junyanz/pytorch-CycleGAN-and-pix2pix itself would pull in
torchvision (which does not load here) and its data and visualisation code, so this module
rebuilds what matters for speed, structured as the reference builds it:

* the U-Net as nested ``Sequential`` skip blocks with in-place LeakyReLU/ReLU and the skip
  concatenation in ``forward`` (``unet_256``: 54,413,955 parameters);
* the 70x70 PatchGAN (2,768,705 parameters) with in-place LeakyReLU;
* BCE-with-logits against a label tensor expanded to the prediction's shape;
* the reference's ``optimize_parameters``: G forward, D step (``zero_grad``, both halves,
  ``backward``, ``step``) with the fake detached, then G step with D's ``requires_grad`` off;
  PyTorch's default ``torch.optim.Adam`` (lr 2e-4, betas (0.5, 0.999)).

Weights are copied from pairgan's networks (:func:`copy_weights`), so both sides start equal and
the comparison can check numerics as well as speed. Nothing here is imported by pairgan.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SkipBlock(nn.Module):
    """One U-Net level as the reference nests them: ``Sequential(down, submodule, up)``."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=False)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=False)
            layers = [downrelu, downconv, uprelu, upconv, nn.BatchNorm2d(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False)
            layers = [downrelu, downconv, nn.BatchNorm2d(inner_nc), submodule,
                      uprelu, upconv, nn.BatchNorm2d(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        # The in-place LeakyReLU at the front of self.model has already rewritten x, so the
        # skip carries the activated input, as in the reference.
        return torch.cat([x, self.model(x)], 1)


def reference_unet(input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64) -> nn.Module:
    """``unet_256`` (num_downs 8) with batch norm and dropout, built from the inside out."""
    block = SkipBlock(ngf * 8, ngf * 8, innermost=True)
    for _ in range(num_downs - 5):
        block = SkipBlock(ngf * 8, ngf * 8, submodule=block, dropout=True)
    block = SkipBlock(ngf * 4, ngf * 8, submodule=block)
    block = SkipBlock(ngf * 2, ngf * 4, submodule=block)
    block = SkipBlock(ngf, ngf * 2, submodule=block)
    return SkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)


def reference_patchgan(input_nc: int = 6, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    """The 70x70 PatchGAN with batch norm (convs before a norm carry no bias)."""
    layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False),
                   nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst``, in registration order.

    pairgan's networks register their tensors in the reference's order; the shapes are checked
    one by one, so a layout difference fails loudly instead of mixing weights.
    """
    s, d = list(src.state_dict().values()), dst.state_dict()
    if len(s) != len(d):
        raise ValueError(f"{len(s)} tensors in the source, {len(d)} in the reference network")
    with torch.no_grad():
        for (name, t), v in zip(d.items(), s):
            if t.shape != v.shape:
                raise ValueError(f"{name}: reference shape {tuple(t.shape)}, source {tuple(v.shape)}")
            t.copy_(v)


class ReferencePix2Pix:
    """The reference's training step and test-time forward on a (G, D) pair."""

    def __init__(self, G: nn.Module, D: nn.Module, lr: float = 2e-4, lambda_L1: float = 100.0) -> None:
        self.G, self.D, self.lambda_L1 = G, D, lambda_L1
        self.opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
        self.bce = nn.BCEWithLogitsLoss()
        self.l1 = nn.L1Loss()
        # On G's device: expanded to the prediction's shape, a CPU label would meet a CUDA
        # prediction in the loss (the reference registers them as buffers and moves them along).
        device = next(G.parameters()).device
        self.real_label = torch.tensor(1.0, device=device)
        self.fake_label = torch.tensor(0.0, device=device)

    def _gan(self, pred: Tensor, real: bool) -> Tensor:
        return self.bce(pred, (self.real_label if real else self.fake_label).expand_as(pred))

    @staticmethod
    def _requires_grad(net: nn.Module, flag: bool) -> None:
        for p in net.parameters():
            p.requires_grad = flag

    def optimize_parameters(self, real_a: Tensor, real_b: Tensor) -> dict[str, float]:
        fake_b = self.G(real_a)
        self._requires_grad(self.D, True)
        self.opt_D.zero_grad()
        pred_fake = self.D(torch.cat((real_a, fake_b), 1).detach())
        loss_d_fake = self._gan(pred_fake, False)
        pred_real = self.D(torch.cat((real_a, real_b), 1))
        loss_d_real = self._gan(pred_real, True)
        ((loss_d_fake + loss_d_real) * 0.5).backward()
        self.opt_D.step()

        self._requires_grad(self.D, False)
        self.opt_G.zero_grad()
        pred_fake = self.D(torch.cat((real_a, fake_b), 1))
        loss_g_gan = self._gan(pred_fake, True)
        loss_g_l1 = self.l1(fake_b, real_b) * self.lambda_L1
        (loss_g_gan + loss_g_l1).backward()
        self.opt_G.step()
        return {"G_GAN": loss_g_gan.item(), "G_L1": loss_g_l1.item(),
                "D_real": loss_d_real.item(), "D_fake": loss_d_fake.item()}
