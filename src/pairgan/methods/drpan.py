"""DRPAN (Wang et al., ECCV 2018): discriminative region proposal + a reviser, on top of pix2pix
or pix2pixHD.

:class:`DRPAN` holds a base method (``model.base``: the registered ``pix2pix`` or ``pix2pixhd``,
built with its own Config) and adds the region step. One step:

1. the base method's own step: pix2pix's D-then-G cGAN step (GAN + L1), or pix2pixHD's
   (multi-scale LSGAN + feature matching [+ VGG]);
2. region proposal: G(A) again (after that update, as the reference), D's score map of
   (A, G(A)) (a multi-scale D: the finest scale's map) searched with a ``window x window``
   sliding window of score cells for the lowest (``select: min``, the paper) or highest
   (``max``, the ECCV reference code) mean realness;
3. the window -> an image box through D's real receptive-field geometry (``box: receptive``) or
   the ECCV code's fixed 70 px mapping (``box: reference``)
   (:func:`pairgan.nets.drpan.propose_regions`) -> fake-mask real: B with the box replaced by G(A);
4. the reviser R is updated on (A, B) real vs (A, fake-mask real) fake (loss halved);
5. G takes a second step: R's adversarial loss on (A, fake-mask real) + ``lambda_region`` x
   L1 between the generated and the real box contents (mean over the box pixels).

Three Adam optimisers: G, D and R. Any batch size, one box per sample, no per-sample loop.
Inference is the base method's: only G (and pix2pixHD's E) is loaded, with pix2pix's
``paper``/``eval`` modes when ``base: pix2pix``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from pairgan.config import DataConfig, TrainConfig
from pairgan.errors import ConfigError
from pairgan.methods.base import ExportGraph, Method, StepContext, set_requires_grad
from pairgan.methods.optim import adam
from pairgan.methods.pix2pix import Pix2Pix, Pix2PixConfig
from pairgan.methods.pix2pixhd import Pix2PixHD
from pairgan.nets.blocks import init_weights
from pairgan.nets.drpan import (
    box_mask,
    discriminator_geometry,
    fake_mask_real,
    finest_score_map,
    propose_regions,
    region_l1,
)
from pairgan.nets.patchgan import receptive_field
from pairgan.nets.pix2pixhd import init_reference
from pairgan.registry import create, lookup, register

#: The registered methods DRPAN runs on (``model.base``).
BASES: tuple[str, ...] = ("pix2pix", "pix2pixhd")


@dataclass
class DRPANConfig(Pix2PixConfig):
    """``model:`` options of DRPAN, one flat section: pix2pix's (inherited, with pix2pix's
    defaults whatever the base), pix2pixHD's that pix2pix lacks (read with ``base: pix2pixhd``),
    then DRPAN's own.

    Every key is accepted with either base, as a saved run's config holds them all. The base
    method gets its own Config, filled from this section (:func:`base_config`).
    """

    #: pix2pix's option, widened: ``reference`` (NVIDIA's, pix2pixHD only) is accepted with
    #: ``base: pix2pixhd``. (Redeclared here, it keeps its place among pix2pix's keys.)
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal", "reference"] = "normal"

    # pix2pixHD's options that pix2pix lacks, with Pix2PixHDConfig's types and defaults (described
    # there; tests/unit/test_drpan.py checks that the two stay the same).
    netG: Literal["global", "local"] = "global"
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 1
    n_blocks_local: int = 3
    num_D: int = 2
    gan_feat_loss: bool = True
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    perceptual: Literal["vgg19", "vgg16", "none"] = "vgg19"
    vgg_normalize: bool = True
    vgg_weights: str = ""
    use_features: bool = False
    nef: int = 16
    feat_num: int = 3
    n_downsample_E: int = 4
    niter_fix_global: int = 0
    init_from: str = ""

    # DRPAN's own.
    #: The method that builds G and D and runs the first step: ``pix2pix`` or ``pix2pixhd``.
    base: Literal["pix2pix", "pix2pixhd"] = "pix2pix"
    #: Sliding-window side in discriminator score cells (1 = one PatchGAN cell, a 70 px box with
    #: the 70x70 PatchGAN; 9 with pix2pixHD's finest scale gives 134 px).
    window: int = 1
    #: ``min``: the most fake window (the paper). ``max``: the most real one (the ECCV reference code).
    select: Literal["min", "max"] = "min"
    #: How the window becomes an image box: ``receptive`` (D's true receptive-field geometry,
    #: clipped) or ``reference`` (the ECCV code's fixed mapping: ``cell * ((H - 70) // h) + 70``,
    #: a 70 px box whatever D and the window; see :func:`pairgan.nets.drpan.propose_regions`).
    box: Literal["receptive", "reference"] = "receptive"
    #: Reviser network: ``reviser`` (the reference's image-level R) or ``patch`` (a PatchGAN R).
    reviser: str = "reviser"
    #: Reviser depth: stride-2 layers of ``reviser`` (6 at 256 px, the reference) or ``patch``'s
    #: n_layers; 0 = those defaults (6, and model.n_layers_D for ``patch``).
    n_layers_R: int = 0
    #: Reviser width (0 = model.ndf) and normalisation (the reference's image reviser: batch).
    ndf_R: int = 0
    norm_R: Literal["batch", "instance", "none"] = "batch"
    #: Weight of the L1 between the generated and real box contents in G's reviser step.
    lambda_region: float = 10.0


def base_config(cfg: DRPANConfig) -> Any:
    """The Config of the base method ``cfg.base``, each of its options taken from ``cfg``."""
    config_class = lookup("method", cfg.base).Config
    return config_class(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(config_class)})


@register("method", "drpan")
class DRPAN(Method):
    """A base method (``model.base``) plus the region proposal and the reviser R.

    The base builds G and D (and pix2pixHD's E), runs step 1 and does all of inference; DRPAN
    adds R, steps 2-5 and the extra sample columns.
    """

    paper = ('Wang et al.: '
             '"Discriminative Region Proposal Adversarial Networks for High-Quality Image-to-Image Translation", ECCV 2018, https://arxiv.org/abs/1711.09554')

    Config = DRPANConfig

    def __init__(self, cfg: DRPANConfig, data: DataConfig, *, training: bool = True) -> None:
        if cfg.base not in BASES:
            raise ConfigError(f"model.base: {cfg.base!r} is not one of {', '.join(map(repr, BASES))}")
        if cfg.base == "pix2pix" and cfg.init_type == "reference":
            raise ConfigError("model.init_type 'reference' is pix2pixHD's; with model.base pix2pix use "
                              "normal, xavier, kaiming or orthogonal")
        if getattr(cfg, "discriminator", "patch") == "features":
            raise ConfigError("model.discriminator: 'features' has no receptive-field geometry for DRPAN's region "
                              "proposal; expected patch")
        if cfg.window < 1:
            raise ConfigError(f"model.window must be >= 1 score cells, got {cfg.window}")
        if cfg.lambda_region < 0:
            raise ConfigError(f"model.lambda_region must be >= 0, got {cfg.lambda_region}")
        # Method.__init__ is not called: the networks and the inference mode it sets up are the base's.
        self.cfg = cfg
        self.data = data
        #: The base method: G, D (and E), step 1 and all of inference.
        self.base: Pix2Pix | Pix2PixHD = lookup("method", cfg.base)(base_config(cfg), data, training=training)
        #: The base's dict, so the two never disagree (the Trainer may replace entries): G, D (E)
        #: are the base's, R joins them; checkpoints name the networks as before.
        self.nets = self.base.nets
        #: pix2pixHD's perceptual loss network, here too so that ``build_method`` finds it for
        #: ``train.grad_checkpoint`` (it looks at the method's own modules).
        self.vgg_loss: nn.Module | None = self.base.vgg_loss if cfg.base == "pix2pixhd" else None
        if not training:
            return
        n_layers = cfg.n_layers_R or (6 if cfg.reviser == "reviser" else cfg.n_layers_D)
        try:
            R = create("discriminator", cfg.reviser, input_nc=self.condition_channels() + data.output_nc,
                       ndf=cfg.ndf_R or cfg.ndf, n_layers=n_layers, norm=cfg.norm_R)
        except KeyError as exc:
            raise ConfigError(f"model.reviser: {exc.args[0]}") from None
        min_size = getattr(R, "min_input_size", lambda: 0)()
        if data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and data.crop_size < min_size:
            raise ConfigError(f"model.reviser {cfg.reviser!r} with {n_layers} stride-2 layers needs training crops of "
                              f"at least {min_size} px, data.crop_size is {data.crop_size}; lower model.n_layers_R")
        self._init_as_base(R)
        self.nets["R"] = R
        #: (kernel, stride, padding) of the layers behind the score map the proposal reads.
        self.geometry = discriminator_geometry(self.nets["D"])

    # ----------------------------------------------------------------- the base's inputs
    def condition(self, batch: dict[str, Any]) -> Tensor:
        """G's, D's and R's conditioning input: A (pix2pix), one_hot(label) [+ instance edges]
        (pix2pixHD)."""
        return self.base.condition(batch) if self.cfg.base == "pix2pixhd" else batch["A"]

    def condition_channels(self) -> int:
        return self.base.cond_nc if self.cfg.base == "pix2pixhd" else self.data.input_nc

    def generate(self, batch: dict[str, Any], cond: Tensor) -> Tensor:
        """G's output for ``batch`` in training mode (with gradients); with pix2pixHD's E, the
        real image's instance features join G's input, as in the base's step."""
        g_in = cond
        if "E" in self.nets:
            feats = self.nets["E"](batch[self.target_key], self.base.pooling_map(batch))
            g_in = torch.cat([cond, feats.to(cond.dtype)], 1)
        return self.nets["G"](g_in)

    def _init_as_base(self, net: nn.Module) -> None:
        """Initialise a network DRPAN adds (R) as the base initialises its own."""
        if self.cfg.init_type == "reference":  # pix2pixHD's scheme (refused with base pix2pix)
            init_reference(net, self.cfg.init_gain)
        else:
            init_weights(net, self.cfg.init_type, self.cfg.init_gain)

    # ----------------------------------------------------------------- training
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        if train.accumulate > 1:
            # StepContext accumulates one gradient per optimiser per micro-batch; G's two steps
            # per batch (the base step, then the reviser step) cannot be split that way.
            raise ConfigError("drpan updates G twice per batch (the cGAN step, then the reviser step), which "
                              "gradient accumulation cannot split: use train.accumulate=1 (raise "
                              "train.batch_size instead)")
        opts = self.base.configure_optimizers(train)
        opts["R"] = adam(self.nets["R"].parameters(), train, discriminator=True)
        return opts

    def propose(self, score_map: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Boxes ``[N, 4]`` (y0, x0, y1, x1) for a D score map (see :func:`propose_regions`)."""
        return propose_regions(score_map, self.cfg.window, self.geometry, image_size, self.cfg.select,
                               self.cfg.box)

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        losses = self.base.train_step(batch, ctx)  # (1) the base method's cGAN step
        losses.update(self.revise_step(batch, ctx))
        return losses

    def revise_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        """Steps 2-5: proposal, fake-mask real, R's update, G's reviser update."""
        cfg = self.cfg
        D, R = self.nets["D"], self.nets["R"]
        gan_loss = self.base.gan_loss
        real = batch[self.target_key]
        with ctx.autocast():
            cond = self.condition(batch)
            fake = self.generate(batch, cond)
            with torch.no_grad():
                score = finest_score_map(D(torch.cat([cond, fake.detach()], 1)))
        boxes = self.propose(score, tuple(real.shape[-2:]))
        composite = fake_mask_real(real, fake, boxes)

        set_requires_grad(R, True)
        with ctx.autocast():
            pred_real = R(torch.cat([cond, real.to(composite.dtype)], 1))
            pred_fake = R(torch.cat([cond, composite.detach()], 1))
            loss_r_real = gan_loss(pred_real, True, for_discriminator=True)
            loss_r_fake = gan_loss(pred_fake, False, for_discriminator=True)
            loss_r = 0.5 * (loss_r_real + loss_r_fake)
        ctx.optimize("R", loss_r)

        set_requires_grad(R, False)
        with ctx.autocast():
            loss_g_r = gan_loss(R(torch.cat([cond, composite], 1)), True, for_discriminator=False)
            loss_region = region_l1(fake, real, boxes) * cfg.lambda_region
        if ctx.scaler is not None and ctx.scaler.is_enabled() and ctx.last_micro:
            # fp16: a GradScaler steps each optimiser once per update(), and G steps twice in
            # this train_step; close the first round here (the Trainer's update() closes the second).
            ctx.scaler.update()
        ctx.optimize("G", loss_g_r + loss_region)
        set_requires_grad(R, True)
        return {
            "G_R": float(loss_g_r.item()),
            "G_region": float(loss_region.item()),
            "R_real": float(loss_r_real.item()),
            "R_fake": float(loss_r_fake.item()),
        }

    # ----------------------------------------------------------------- pictures
    @torch.no_grad()
    def visuals(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The base columns plus, while training: D's score map of the output as a heat map
        (dark = fake, bright = real; the box in cyan), the proposed box on the output (red),
        and the fake-mask real built from it."""
        cols = self.base.visuals(batch)
        if "D" not in self.nets:
            return cols
        out = cols["output"]
        cond = self.condition(batch)
        D = self.nets["D"]
        with _buffers_restored(D):
            score = finest_score_map(D(torch.cat([cond, out.to(cond.dtype)], 1))).float()
        size = tuple(out.shape[-2:])
        boxes = self.propose(score, size)
        real = batch[self.target_key].float()
        target = cols.pop("target")
        cols["D score map"] = render_score_map(score, self.geometry, size, boxes)
        cols["proposal"] = draw_boxes(out, boxes, (1.0, 0.0, 0.0))
        cols["fake-mask real"] = fake_mask_real(real, out, boxes)
        cols["target"] = target
        return cols

    # ----------------------------------------------------------------- delegated to the base
    # Inference is the base method's: every inference-side member of Method, one line each.
    # A hook added to Method gets its line here.
    @property
    def inference_mode(self) -> str:
        return self.base.inference_mode

    @property
    def inference_nets(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base.inference_nets

    @property
    def input_keys(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.base.input_keys

    @property
    def target_key(self) -> str:  # type: ignore[override]
        return self.base.target_key

    @property
    def size_multiple(self) -> int:
        return self.base.size_multiple

    @property
    def per_image_inference(self) -> bool:
        return self.base.per_image_inference

    def set_inference_mode(self, mode: str) -> None:
        self.base.set_inference_mode(mode)

    def translate(self, batch: dict[str, Any]) -> Tensor:
        return self.base.translate(batch)

    def load_inference_input(
        self, path: Path, *, aligned: bool = False, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], Tensor | None]:
        return self.base.load_inference_input(path, aligned=aligned, options=options)

    def example_batch(self, batch_size: int, height: int, width: int) -> dict[str, Any]:
        return self.base.example_batch(batch_size, height, width)

    def export_module(self, batch: dict[str, Any] | None = None) -> ExportGraph:
        return self.base.export_module(batch)

    def display_input(self, batch: dict[str, Any]) -> Tensor:
        return self.base.display_input(batch)

    @property
    def num_variants(self) -> int:
        return self.base.num_variants

    def split_outputs(self, out: Tensor) -> dict[str, Tensor]:
        return self.base.split_outputs(out)

    def class_info(self) -> dict[str, Any]:
        return self.base.class_info()

    def extra_state(self) -> dict[str, Any]:
        return self.base.extra_state()

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.base.load_extra_state(state)

    def request_schema(self) -> dict[str, Any]:
        return self.base.request_schema()

    def item_from_upload(self, files: Mapping[str, Path], options: Mapping[str, Any]) -> dict[str, Any]:
        return self.base.item_from_upload(files, options)

    def apply_edits(self, batch: dict[str, Any], edits: Sequence[tuple[str, Any, int]]) -> dict[str, Any]:
        return self.base.apply_edits(batch, edits)

    # The loader records where the weights came from and the whole config on the method; the
    # base needs them (pix2pixHD finds its feature clusters next to its checkpoint).
    @property
    def checkpoint(self) -> Path | None:
        return self.base.checkpoint

    @checkpoint.setter
    def checkpoint(self, value: Path | None) -> None:
        self.base.checkpoint = value

    @property
    def run_config(self) -> Any:
        return self.base.run_config

    @run_config.setter
    def run_config(self, value: Any) -> None:
        self.base.run_config = value

    def to(self, device: torch.device) -> DRPAN:
        self.base.to(device)  # R is in the shared nets; pix2pixHD also moves its VGG loss
        return self

    # ----------------------------------------------------------------- pix2pixHD's feature tools
    # With base: pix2pixhd, methods.pix2pixhd_features (clustering, encoding, editing) works on
    # the method through these members. They return the base's members, so with base: pix2pix
    # they are missing (AttributeError) exactly as on pix2pix itself.
    @property
    def find_clusters(self) -> Any:
        return self.base.find_clusters

    @property
    def instance_features(self) -> Any:
        return self.base.instance_features

    @property
    def sample_features(self) -> Any:
        return self.base.sample_features

    @property
    def pooling_map(self) -> Any:
        return self.base.pooling_map

    @property
    def _eval(self) -> Any:
        return self.base._eval

    @property
    def clusters(self) -> Any:
        return self.base.clusters

    @clusters.setter
    def clusters(self, value: Any) -> None:
        self.base.clusters = value


# --------------------------------------------------------------------------- drawing

# Inferno-like colour ramp (0 = lowest realness, 1 = highest), RGB in [0, 1].
_RAMP = torch.tensor([
    [0.00, 0.00, 0.02],
    [0.34, 0.06, 0.43],
    [0.73, 0.21, 0.33],
    [0.98, 0.55, 0.04],
    [0.99, 1.00, 0.64],
])


@contextlib.contextmanager
def _buffers_restored(net: nn.Module) -> Iterator[None]:
    """Run ``net`` as in training (batch statistics) without changing its running buffers."""
    saved = {k: v.clone() for k, v in net.named_buffers()}
    try:
        yield
    finally:
        for k, v in net.named_buffers():
            v.copy_(saved[k])


def _rgb(images: Tensor) -> Tensor:
    """NCHW in [-1, 1], any channel count -> 3 channels (as :func:`pairgan.visual.to_display`)."""
    c = images.shape[1]
    if c in (1, 2):
        return images[:, :1].expand(-1, 3, -1, -1).float()
    return images[:, :3].float()


def draw_boxes(images: Tensor, boxes: Tensor, color: tuple[float, float, float], thickness: int = 0) -> Tensor:
    """``images`` (NCHW in [-1, 1]) as RGB with each sample's box outlined in ``color`` (RGB in [0, 1])."""
    rgb = _rgb(images)
    size = tuple(rgb.shape[-2:])
    t = thickness or max(1, min(size) // 128)
    boxes = boxes.to(rgb.device).long()
    inner = boxes + torch.tensor([t, t, -t, -t], device=boxes.device)
    edge = box_mask(boxes, size) & ~box_mask(inner, size)
    paint = (torch.tensor(color, device=rgb.device, dtype=rgb.dtype) * 2 - 1).view(1, 3, 1, 1)
    return torch.where(edge, paint, rgb)


def render_score_map(score: Tensor, geometry: list[tuple[int, int, int]], image_size: tuple[int, int],
                     boxes: Tensor | None = None) -> Tensor:
    """A score map ``[N, C, h, w]`` as an RGB heat map at image size (NCHW in [-1, 1]).

    Each pixel shows the cell whose receptive field is centred nearest to it (D's real
    geometry, not a plain resize); scores are stretched per image from its lowest (dark, the
    most fake) to its highest (bright). ``boxes`` are outlined in cyan.
    """
    s = score.detach().float().mean(1)  # [N, h, w]
    n, h, w = s.shape
    lo = s.amin((1, 2), keepdim=True)
    hi = s.amax((1, 2), keepdim=True)
    v = (s - lo) / (hi - lo).clamp(min=1e-8)
    size, jump, start = receptive_field(geometry)
    centre = start + (size - 1) / 2

    def cells(length: int, count: int) -> Tensor:
        pos = torch.arange(length, device=s.device, dtype=torch.float32)
        return ((pos - centre) / jump).round().clamp(0, count - 1).long()

    H, W = int(image_size[0]), int(image_size[1])
    v = v[:, cells(H, h)][:, :, cells(W, w)]  # [N, H, W]
    ramp = _RAMP.to(s.device)
    x = v * (len(ramp) - 1)
    i0 = x.floor().long().clamp(max=len(ramp) - 2)
    frac = (x - i0).unsqueeze(-1)
    rgb = (ramp[i0] * (1 - frac) + ramp[i0 + 1] * frac).permute(0, 3, 1, 2) * 2 - 1
    if boxes is not None:
        rgb = draw_boxes(rgb, boxes, (0.0, 1.0, 1.0))
    return rgb
