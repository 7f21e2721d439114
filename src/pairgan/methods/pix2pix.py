"""pix2pix (Isola et al., CVPR 2017): the whole recipe in one file.

G: U-Net (or ResNet) on A. D: conditional PatchGAN on cat(A, B). One step, as the PyTorch
reference: update D on (A, B) real vs (A, G(A)) fake with the loss halved, then G with
GAN + lambda_L1 * L1(G(A), B), D frozen during the G step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal

import torch
from torch import nn

from pairgan.config import DataConfig, TrainConfig
from pairgan.losses import GANLoss
from pairgan.methods.d_options import DiscriminatorOptions
from pairgan.methods.base import Method, StepContext, set_requires_grad
from pairgan.methods.optim import adam
from pairgan.methods.regularizers import r1_due, r1_penalty
from pairgan.nets.blocks import init_weights
from pairgan.nets.diffaug import build_augment, d_pair
from pairgan.nets.patchgan import apply_spectral_norm
from pairgan.registry import create, register


@dataclass
class Pix2PixConfig(DiscriminatorOptions):
    """``model:`` options of pix2pix (defaults = the PyTorch reference's)."""

    #: Registered generator name: ``unet`` or ``resnet``.
    generator: str = "unet"
    #: U-Net depth: 8 for 256x256 (unet_256), 7 for 128x128 (unet_128).
    num_downs: int = 8
    #: U-Net: how its up path doubles the resolution: ``transpose`` (the reference's 4x4 stride-2
    #: transposed convolution), or ``nearest`` / ``bilinear`` resize + 3x3 convolution (no
    #: checkerboard artefacts; about twice the up path's arithmetic).
    upsample: Literal["transpose", "nearest", "bilinear"] = "transpose"
    #: ResNet generator: residual blocks (6 or 9).
    n_blocks: int = 9
    ngf: int = 64
    #: Registered discriminator name: ``patch`` (PatchGAN), ``pixel`` (1x1 PixelGAN) or
    #: ``features`` (heads on frozen VGG16 features, :mod:`pairgan.nets.feature_d`).
    discriminator: str = "patch"
    ndf: int = 64
    #: PatchGAN depth: 3 = 70x70 receptive field (30x30 score map at 256x256).
    n_layers_D: int = 3
    norm: Literal["batch", "instance", "none"] = "batch"
    #: ResNet generator: padding of its size-keeping convolutions, ``reflect`` (the pix2pix
    #: reference) or ``zero`` (the DRPAN reference's).
    padding: Literal["reflect", "zero"] = "reflect"
    #: ResNet generator: instance norm with a learned scale and shift (the DRPAN reference's).
    norm_affine: bool = False
    dropout: bool = True
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = 0.02
    gan_mode: Literal["vanilla", "lsgan", "hinge"] = "vanilla"
    lambda_L1: float = 100.0
    #: Default ``translate --mode``: ``paper`` keeps dropout and batch statistics on at test
    #: time, as pix2pix does; ``eval`` uses running statistics and no dropout.
    inference_mode: Literal["paper", "eval"] = "paper"


@register("method", "pix2pix")
class Pix2Pix(Method):
    """Conditional GAN with U-Net generator, PatchGAN discriminator and an L1 term."""

    paper = ('Isola, Zhu, Zhou, Efros: '
             '"Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017, https://arxiv.org/abs/1611.07004')

    Config = Pix2PixConfig
    inference_nets = ("G",)

    def __init__(self, cfg: Pix2PixConfig, data: DataConfig, *, training: bool = True) -> None:
        super().__init__(cfg, data, training=training)
        g_kwargs: dict[str, Any] = dict(
            input_nc=data.input_nc, output_nc=data.output_nc, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout
        )
        if cfg.generator == "unet":
            g_kwargs.update(num_downs=cfg.num_downs, upsample=cfg.upsample)
        elif cfg.generator == "resnet":
            g_kwargs.update(n_blocks=cfg.n_blocks, padding=cfg.padding, norm_affine=cfg.norm_affine)
        self.nets["G"] = create("generator", cfg.generator, **g_kwargs)
        if training:
            self.nets["D"] = create(
                "discriminator",
                cfg.discriminator,
                input_nc=data.input_nc + data.output_nc,
                ndf=cfg.ndf,
                n_layers=cfg.n_layers_D,
                norm=cfg.norm,
                image_nc=data.output_nc,
                backbone_weights=cfg.d_backbone_weights or None,
            )
            self.gan_loss = GANLoss(cfg.gan_mode)
            augment = build_augment(cfg)
            if augment is not None:
                self.nets["D_augment"] = augment  # a net: its adaptive p is saved and resumed with the weights
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        cfg.check_discriminator_options()
        if training and cfg.spectral_norm:
            apply_spectral_norm(self.nets["D"])
        self.inference_mode = cfg.inference_mode

    # ----------------------------------------------------------------- training
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"G": adam(self.nets["G"].parameters(), train), "D": adam(self.nets["D"].parameters(), train, discriminator=True)}

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        real_a, real_b = batch["A"], batch["B"]
        with ctx.autocast():
            fake_b = G(real_a)

        augment = self.nets["D_augment"] if "D_augment" in self.nets else None

        # D: real pairs vs fake pairs; the fake is detached so no gradient reaches G.
        set_requires_grad(D, True)
        with ctx.autocast():
            pred_fake = D(d_pair(augment, real_a, fake_b.detach()))
            pred_real = D(d_pair(augment, real_a, real_b))
            loss_d_fake = self.gan_loss(pred_fake, False, for_discriminator=True)
            loss_d_real = self.gan_loss(pred_real, True, for_discriminator=True)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
        extra: dict[str, float] = {}
        if r1_due(self.cfg.r1_gamma, self.cfg.r1_every, ctx.step):
            r1 = r1_penalty(lambda b: D(torch.cat([real_a, b], 1)), real_b, self.cfg.r1_gamma, self.cfg.r1_every)
            loss_d = loss_d + r1
            extra["D_R1"] = r1.item()
        ctx.optimize("D", loss_d)
        if augment is not None:
            augment.observe(pred_real)

        # G: fool the (now frozen) D and stay close to the target in L1.
        set_requires_grad(D, False)
        with ctx.autocast():
            pred_fake = D(d_pair(augment, real_a, fake_b))
            loss_g_gan = self.gan_loss(pred_fake, True, for_discriminator=False)
            loss_g_l1 = nn.functional.l1_loss(fake_b.float(), real_b.float()) * self.cfg.lambda_L1
            loss_g = loss_g_gan + loss_g_l1
        ctx.optimize("G", loss_g)
        set_requires_grad(D, True)

        losses = {
            "G_GAN": loss_g_gan.item(),
            "G_L1": loss_g_l1.item(),
            "D_real": loss_d_real.item(),
            "D_fake": loss_d_fake.item(),
            **extra,
        }
        if augment is not None:
            losses["D_augment_p"] = augment.probability
        return losses

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        return int(getattr(self.nets["G"], "size_multiple", 1))

    def set_inference_mode(self, mode: str) -> None:
        if mode not in ("paper", "eval"):
            raise ValueError(f"pix2pix inference mode must be 'paper' or 'eval', got {mode!r}")
        self.inference_mode = mode

    @property
    def per_image_inference(self) -> bool:
        return self.inference_mode == "paper"

    @contextlib.contextmanager
    def _inference_state(self) -> Iterator[None]:
        """Put G in the inference mode's state and restore its mode and buffers afterwards.

        ``paper`` runs G in train mode (dropout on, batch statistics of the images themselves).
        Train-mode batch norm would also update the running statistics: those buffers are
        restored, so sampling during training never changes the model being trained.
        """
        G = self.nets["G"]
        was_training = G.training
        saved = {k: v.clone() for k, v in G.named_buffers()} if self.inference_mode == "paper" else {}
        G.train(self.inference_mode == "paper")
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in G.named_buffers():
                    if k in saved:
                        v.copy_(saved[k])
            G.train(was_training)

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> torch.Tensor:
        with self._inference_state():
            return self.nets["G"](batch["A"]).float()
