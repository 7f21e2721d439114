"""pix2pixHD (Wang et al., CVPR 2018): semantic label maps (+ instance maps) -> photos.

G: the global generator or the coarse-to-fine local enhancer on one_hot(label) [+ the instance
boundary map] [+ the instance-wise features of the encoder E]. D: ``num_D`` PatchGANs at
successive scales on cat(G's input without features, image). Losses as the NVIDIA reference:
LSGAN (summed over the scales), D's loss halved, discriminator feature matching x lambda_feat,
VGG perceptual x lambda_vgg.

One step, exactly as the reference's: G's fake, D's outputs on the detached fake and on the
real image, and D's output on the fake for G's loss are all computed with the same D; then G
(with E, which has no loss of its own) takes its step, then D.

``niter_fix_global`` (local enhancer only): for the first ``niter_fix_global`` epochs only the
finest enhancer (and E) is trained. G's optimiser always holds two parameter groups, [finest
enhancer + E] and [the rest of G]; during the fixed phase the second group's parameters do not
require gradients, so Adam skips them and holds no state for them. At the first step after the
phase the reference builds a fresh Adam over all parameters: here the optimiser state is cleared
once, detected as "fixed phase over and no state yet for the global parameters", which is a pure
function of (config, epoch, optimiser state) and therefore exact across a resume.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence

import torch
from torch import Tensor, nn

from pairgan.checkpoint import read_weights, resolve_checkpoint
from pairgan.config import DataConfig, TrainConfig
from pairgan.data.io import match_channels, read_image, to_unit_float
from pairgan.data.labels import partner_photo_path, read_label_input
from pairgan.data.transforms import resize, to_tensor
from pairgan.errors import CheckpointError, ConfigError, ExportError
from pairgan.losses import FeatureMatchingLoss, GANLoss
from pairgan.methods.d_options import DiscriminatorOptions
from pairgan.methods.base import ExportGraph, StepContext, set_requires_grad
from pairgan.methods.labelmaps import LabelMapMethod
from pairgan.methods.optim import adam
from pairgan.methods.regularizers import r1_due, r1_penalty
from pairgan.methods.pix2pixhd_features import apply_cluster_edits, find_clusters_file, load_clusters
from pairgan.nets.blocks import init_weights
from pairgan.nets.diffaug import build_augment, d_pair
from pairgan.nets.patchgan import apply_spectral_norm
from pairgan.nets.pix2pixhd import (
    FeatureEncoder,
    LocalEnhancer,
    init_reference,
    instance_segments,
)
from pairgan.nets.vgg import VGGLoss
from pairgan.registry import create, register

log = logging.getLogger(__name__)


@dataclass
class Pix2PixHDConfig(DiscriminatorOptions):
    """``model:`` options of pix2pixHD (defaults = the reference's 512p Cityscapes model)."""

    #: ``global`` (G1 alone, 1024x512 in the paper) or ``local`` (G1 inside local enhancers, 2048x1024).
    netG: Literal["global", "local"] = "global"
    #: Width of G's first layer (the local enhancer's; its global generator has ngf * 2**n_local_enhancers).
    ngf: int = 64
    n_downsample_global: int = 4
    n_blocks_global: int = 9
    n_local_enhancers: int = 1
    n_blocks_local: int = 3
    ndf: int = 64
    n_layers_D: int = 3
    num_D: int = 2
    #: Discriminator: ``multiscale`` (the reference's num_D PatchGANs; ``patch`` names it too) or
    #: ``features`` (heads on frozen VGG16 features, :mod:`pairgan.nets.feature_d`).
    discriminator: str = "multiscale"
    norm: Literal["instance", "batch", "none"] = "instance"
    #: ``reference``: conv weights N(0, init_gain), biases at PyTorch's default (as NVIDIA's code);
    #: the others as pix2pix's ``init_weights``.
    init_type: Literal["reference", "normal", "xavier", "kaiming", "orthogonal"] = "reference"
    init_gain: float = 0.02
    gan_mode: Literal["lsgan", "vanilla", "hinge"] = "lsgan"
    #: Discriminator feature matching (the reference's default; ``false`` = its --no_ganFeat_loss).
    gan_feat_loss: bool = True
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    #: Perceptual loss network: ``vgg19`` (the paper), ``vgg16`` (available offline) or ``none``.
    perceptual: Literal["vgg19", "vgg16", "none"] = "vgg19"
    #: ImageNet mean/std normalisation before VGG (``false``: the reference's quirk of feeding [-1, 1]).
    vgg_normalize: bool = True
    #: VGG weights: a file or a name from ``pairgan weights list`` (empty: the arch's default).
    vgg_weights: str = ""
    #: The instance-level feature encoder E (its features join G's input).
    use_features: bool = False
    nef: int = 16
    feat_num: int = 3
    n_downsample_E: int = 4
    #: Local enhancer: train only the finest enhancer (and E) for this many epochs, then everything.
    niter_fix_global: int = 0
    #: A checkpoint or run folder (e.g. a pix2pixhd-512 run) whose weights initialise this model
    #: before the first step: every tensor whose name and shape match (G's global generator, D's
    #: scales, E), as the reference's --load_pretrain.
    init_from: str = ""


def _feature_mode(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"features option {value!r}: expected 'encode', 'encode:IMAGE', 'random' or 'cluster:K'")
    return value


class _ConcatInputs2(nn.Module):
    """G on the channel concatenation of two graph inputs (the export graph of
    :meth:`Pix2PixHD.export_module`: one-hot labels and instance edges or the feature map)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.net(torch.cat([a, b], 1))


class _ConcatInputs3(_ConcatInputs2):
    """G on [one-hot labels | instance edges | instance feature map], three graph inputs."""

    def forward(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:  # type: ignore[override]
        return self.net(torch.cat([a, b, c], 1))


@register("method", "pix2pixhd")
class Pix2PixHD(LabelMapMethod):
    """pix2pixHD: coarse-to-fine G, multi-scale D, feature matching, VGG loss, instance features."""

    paper = ('Wang, Liu, Zhu, Tao, Kautz, Catanzaro: '
             '"High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs", CVPR 2018, https://arxiv.org/abs/1711.11585')

    Config = Pix2PixHDConfig
    inference_nets = ("G",)
    input_keys = ("label", "inst")
    target_key = "image"

    def __init__(self, cfg: Pix2PixHDConfig, data: DataConfig, *, training: bool = True) -> None:
        super().__init__(cfg, data, training=training)
        self.label_nc = data.label_nc
        if data.label_nc <= 0:
            # Image inputs (the reference's label_nc 0): A -> B of the aligned/folders layouts.
            if data.instance or cfg.use_features:
                raise ConfigError("pix2pixhd with image inputs (data.label_nc 0) cannot use data.instance or "
                                  "model.use_features: those need label and instance maps (set data.label_nc)")
            self.input_keys = ("A",)
            self.target_key = "B"
            cond_nc = data.input_nc
        else:
            cond_nc = data.label_nc + (1 if data.instance else 0)
        if cfg.niter_fix_global > 0 and cfg.netG != "local":
            raise ConfigError("model.niter_fix_global only applies to model.netG=local (it trains the local "
                              "enhancer alone first)")
        self.cond_nc = cond_nc
        g_in = cond_nc + (cfg.feat_num if cfg.use_features else 0)
        if cfg.netG == "global":
            G = create("generator", "pix2pixhd_global", input_nc=g_in, output_nc=data.output_nc, ngf=cfg.ngf,
                       n_downsampling=cfg.n_downsample_global, n_blocks=cfg.n_blocks_global, norm=cfg.norm)
        else:
            G = create("generator", "pix2pixhd_local", input_nc=g_in, output_nc=data.output_nc, ngf=cfg.ngf,
                       n_downsample_global=cfg.n_downsample_global, n_blocks_global=cfg.n_blocks_global,
                       n_local_enhancers=cfg.n_local_enhancers, n_blocks_local=cfg.n_blocks_local, norm=cfg.norm)
        self.nets["G"] = G
        if cfg.use_features:
            self.nets["E"] = FeatureEncoder(data.output_nc, cfg.feat_num, cfg.nef, cfg.n_downsample_E, cfg.norm)
            self.inference_nets = ("G", "E")
        self.vgg_loss: nn.Module | None = None
        if training:
            if cfg.discriminator not in ("multiscale", "patch", "features"):
                raise ConfigError(f"model.discriminator: {cfg.discriminator!r} does not fit pix2pixHD (its losses "
                                  "read every layer of every scale); expected multiscale or features")
            features_d = cfg.discriminator == "features"
            self.nets["D"] = create("discriminator", "features" if features_d else "multiscale",
                                    input_nc=cond_nc + data.output_nc, ndf=cfg.ndf, n_layers=cfg.n_layers_D,
                                    norm=cfg.norm, num_D=cfg.num_D, image_nc=data.output_nc,
                                    backbone_weights=cfg.d_backbone_weights or None)
            self.gan_loss = GANLoss(cfg.gan_mode)
            # The feature D's heads have one hidden layer each: the weights follow its outputs.
            self.fm_loss = FeatureMatchingLoss() if features_d else FeatureMatchingLoss(cfg.n_layers_D, cfg.num_D)
            augment = build_augment(cfg)
            if augment is not None:
                self.nets["D_augment"] = augment  # a net: its adaptive p is saved and resumed with the weights
            if cfg.perceptual != "none" and cfg.lambda_vgg > 0:
                self.vgg_loss = VGGLoss(arch=cfg.perceptual, weights=cfg.vgg_weights or None,
                                        normalize=cfg.vgg_normalize)
        for net in self.nets.values():
            if cfg.init_type == "reference":
                init_reference(net, cfg.init_gain)
            else:
                init_weights(net, cfg.init_type, cfg.init_gain)
        cfg.check_discriminator_options()
        if training and cfg.spectral_norm:
            apply_spectral_norm(self.nets["D"])
        #: Per-class cluster centres of E's features ``{class_id: [K, feat_num]}`` (see
        #: :mod:`pairgan.methods.pix2pixhd_features`); found next to :attr:`checkpoint` when not set.
        self.clusters: dict[int, Tensor] | None = None
        self._init_done = False

    # ----------------------------------------------------------------- inputs
    def pooling_map(self, batch: dict[str, Any]) -> Tensor:
        """The ids E's features are averaged over: instance ids, or class ids without instance maps."""
        return batch["inst"] if "inst" in batch else batch["label"]

    # ----------------------------------------------------------------- training
    def _g_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(parameters always trained, parameters fixed during ``niter_fix_global``)."""
        G = self.nets["G"]
        e_params = list(self.nets["E"].parameters()) if "E" in self.nets else []
        if self.cfg.niter_fix_global > 0 and isinstance(G, LocalEnhancer):
            return list(G.finest_parameters()) + e_params, list(G.fixed_parameters())
        return list(G.parameters()) + e_params, []

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        trained, fixed = self._g_groups()
        groups = [{"params": trained}] + ([{"params": fixed}] if fixed else [])
        return {"G": adam(groups, train), "D": adam(self.nets["D"].parameters(), train, discriminator=True)}

    def global_fixed(self, epoch: int) -> bool:
        """Whether G's global part is fixed at ``epoch`` (0-based; the reference's epochs
        1..niter_fix_global)."""
        return self.cfg.niter_fix_global > 0 and epoch < self.cfg.niter_fix_global

    def _fixed_phase(self, ctx: StepContext) -> None:
        _, fixed = self._g_groups()
        if not fixed:
            return
        frozen = self.global_fixed(ctx.epoch)
        for p in fixed:
            p.requires_grad_(not frozen)
        opt = ctx.optimizers["G"]
        if not frozen and opt.state and not any(p in opt.state for p in fixed):
            # The first step after the fixed phase: the reference starts a fresh Adam over all of
            # G (and E) here. Clearing the state is the same thing and survives a resume.
            opt.state.clear()
            log.info("pix2pixhd: epoch %d: niter_fix_global over, now training the whole generator", ctx.epoch)

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        cfg = self.cfg
        if cfg.init_from and not self._init_done and ctx.step == 0:
            self.initialize_from(cfg.init_from)
        self._init_done = True
        self._fixed_phase(ctx)
        G, D = self.nets["G"], self.nets["D"]
        real = batch[self.target_key]
        cond = self.condition(batch)
        num_d = cfg.num_D if cfg.discriminator != "features" else len(D.heads)
        augment = self.nets["D_augment"] if "D_augment" in self.nets else None
        labels = self.label_nc > 0
        with ctx.autocast():
            g_in = cond
            if "E" in self.nets:
                g_in = torch.cat([cond, self.nets["E"](real, self.pooling_map(batch)).to(cond.dtype)], 1)
            fake = G(g_in)

            # D's losses (the fake detached: no gradient reaches G), summed over scales as the reference.
            set_requires_grad(D, True)
            pred_fake_d = D(d_pair(augment, cond, fake.detach(), condition_is_label=labels))
            pred_real = D(d_pair(augment, cond, real, condition_is_label=labels))
            loss_d_fake = self.gan_loss(pred_fake_d, False, for_discriminator=True) * num_d
            loss_d_real = self.gan_loss(pred_real, True, for_discriminator=True) * num_d
            loss_d = 0.5 * (loss_d_fake + loss_d_real)

            # G's losses against the same D (its parameters need no gradient here).
            set_requires_grad(D, False)
            # One draw for the fake and its real: feature matching compares them position by position.
            draw = augment.draw(*real.shape[:1], *real.shape[-2:], real.device) if augment is not None else None
            pred_fake = D(d_pair(augment, cond, fake, draw, condition_is_label=labels))
            loss_g_gan = self.gan_loss(pred_fake, True, for_discriminator=False) * num_d
            loss_g = loss_g_gan
            losses: dict[str, Tensor] = {"G_GAN": loss_g_gan}
            if cfg.gan_feat_loss and cfg.lambda_feat > 0:
                pred_real_fm = pred_real if augment is None else D(d_pair(augment, cond, real, draw,
                                                                          condition_is_label=labels))
                losses["G_GAN_Feat"] = self.fm_loss(pred_fake, pred_real_fm) * cfg.lambda_feat
                loss_g = loss_g + losses["G_GAN_Feat"]
            if self.vgg_loss is not None:
                losses["G_VGG"] = self.vgg_loss(fake.float(), real.float()) * cfg.lambda_vgg
                loss_g = loss_g + losses["G_VGG"]
        set_requires_grad(D, True)
        # G first, then D, as the reference (D's step would invalidate G's graph through D).
        ctx.optimize("G", loss_g)
        if r1_due(cfg.r1_gamma, cfg.r1_every, ctx.step):
            losses["D_R1"] = r1_penalty(lambda x: D(torch.cat([cond, x.to(cond.dtype)], 1)), real,
                                        cfg.r1_gamma, cfg.r1_every)
            loss_d = loss_d + losses["D_R1"]
        ctx.optimize("D", loss_d)
        if augment is not None:
            augment.observe(pred_real)
        out = {k: float(v.item()) for k, v in losses.items()}
        if augment is not None:
            out["D_augment_p"] = augment.probability
        out["D_real"] = float(loss_d_real.item())
        out["D_fake"] = float(loss_d_fake.item())
        return out

    def initialize_from(self, path: str | Path) -> dict[str, int]:
        """Copy every tensor of a checkpoint whose name and shape match into G, D and E (the
        reference's --load_pretrain): a global-generator checkpoint fills a local enhancer's
        coarse branch, a 2-scale D fills the 3-scale D's two coarser scales. Returns the number
        of tensors copied per network; raises when nothing of G matched."""
        folder = resolve_checkpoint(path)
        copied: dict[str, int] = {}
        for name, net in self.nets.items():
            try:
                theirs = read_weights(folder, name)
            except CheckpointError:  # a network the other checkpoint does not have
                continue
            mine = net.state_dict()
            take = {k: v for k, v in theirs.items() if k in mine and tuple(mine[k].shape) == tuple(v.shape)}
            net.load_state_dict(take, strict=False)
            copied[name] = len(take)
        if not copied.get("G"):
            raise ConfigError(f"model.init_from {path}: no generator tensor of {folder} fits this model "
                              "(expected a pix2pixhd checkpoint whose global generator has this model's width: "
                              "a local model with ngf N takes a global one with ngf 2N)")
        log.info("pix2pixhd: initialised from %s: %s", folder,
                 ", ".join(f"{k} {v} tensors" for k, v in copied.items()))
        return copied

    def to(self, device: torch.device) -> "Pix2PixHD":
        super().to(device)
        if self.vgg_loss is not None:
            self.vgg_loss.to(device)
        return self

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        m = int(getattr(self.nets["G"], "size_multiple", 1))
        if "E" in self.nets:
            m = max(m, int(self.nets["E"].size_multiple))
        return m

    @property
    def per_image_inference(self) -> bool:
        # With E, ``random`` features are drawn per instance: running each image alone keeps its
        # draws (and so its output) independent of the other images in a batch.
        return "E" in self.nets

    @contextlib.contextmanager
    def _eval(self, *names: str) -> Iterator[None]:
        nets = [self.nets[n] for n in names if n in self.nets]
        modes = [n.training for n in nets]
        for n in nets:
            n.eval()
        try:
            yield
        finally:
            for n, m in zip(nets, modes):
                n.train(m)

    def find_clusters(self, batch: dict[str, Any] | None = None) -> dict[int, Tensor] | None:
        """Cluster centres: ``batch["clusters"]`` (a file), else :attr:`clusters`, else the file
        next to :attr:`checkpoint` (loaded once). None when there are none."""
        if batch is not None and batch.get("clusters"):
            return load_clusters(batch["clusters"])
        if self.clusters is None and self.checkpoint is not None:
            found = find_clusters_file(self.checkpoint)
            if found is not None:
                self.clusters = load_clusters(found)
        return self.clusters

    def instance_features(self, batch: dict[str, Any], mode: str | None = None) -> Tensor:
        """E's features for G's input ``[N, feat_num, H, W]``, one vector per instance.

        ``mode``: ``encode`` (E on ``batch["image"]``), ``encode:IMAGE`` (E on that image,
        ``batch["encode_image"]`` when :meth:`load_inference_input` read it), ``random`` (a
        random cluster centre of its class per instance, uniform in [-1, 1] without clusters),
        ``cluster:K`` (centre K of its class, K modulo the class's centres; 0 for classes without),
        or None: ``encode`` when the batch holds the real image, else ``random``.
        A ``batch["feat_map"]`` tensor is used as it is.
        """
        if "feat_map" in batch and torch.is_tensor(batch["feat_map"]):
            return batch["feat_map"]
        ids = self.pooling_map(batch)
        mode = _feature_mode(mode)
        if mode is None:
            mode = "encode" if torch.is_tensor(batch.get(self.target_key)) else "random"
        E = self.nets["E"]
        if mode == "encode" or mode.startswith("encode:"):
            if mode == "encode":
                image = batch.get(self.target_key)
                if not torch.is_tensor(image):
                    raise ValueError("features 'encode' needs the real image in the batch; use encode:IMAGE_PATH")
            else:
                image = batch.get("encode_image")
                if not torch.is_tensor(image):
                    image = self._read_encode_image(mode[len("encode:"):], tuple(ids.shape[-2:]))
                    image = image.unsqueeze(0).expand(ids.shape[0], -1, -1, -1).to(ids.device)
            if tuple(image.shape[-2:]) != tuple(ids.shape[-2:]):
                raise ValueError(f"the image to encode is {tuple(image.shape[-2:])}, the label map "
                                 f"{tuple(ids.shape[-2:])}; expected the same size")
            with self._eval("E"):
                return E(image.float(), ids)
        if mode == "random":
            return self.sample_features(ids, None, self.find_clusters(batch))
        if mode.startswith("cluster:"):
            try:
                k = int(mode[len("cluster:"):])
            except ValueError:
                raise ValueError(f"features {mode!r}: expected cluster:K with an integer K") from None
            clusters = self.find_clusters(batch)
            if not clusters:
                raise ValueError(f"features {mode!r}: this model has no feature clusters; make them with "
                                 "`pairgan features cluster RUN` (or pass -O clusters=FILE)")
            return self.sample_features(ids, k, clusters)
        raise ValueError(f"features option {mode!r}: expected 'encode', 'encode:IMAGE', 'random' or 'cluster:K'")

    def sample_features(self, ids: Tensor, k: int | None, clusters: dict[int, Tensor] | None) -> Tensor:
        """A feature map with one vector per instance of ``ids`` ``[N, 1, H, W]``: centre ``k`` of
        the instance's class (``k`` modulo its number of centres), a random centre (``k`` None),
        or, without any clusters, a uniform random vector in [-1, 1]. Draws use torch's RNG."""
        n, _, h, w = ids.shape
        f = self.cfg.feat_num
        batch_index, inst_ids, segment = instance_segments(ids)
        s = inst_ids.numel()
        device = ids.device
        if not clusters:
            vectors = torch.rand(s, f, device=device) * 2 - 1
        else:
            classes = torch.where(inst_ids >= 1000, inst_ids // 1000, inst_ids)
            top = max(max(clusters) + 1, int(classes.max()) + 1)
            kmax = max(c.shape[0] for c in clusters.values())
            table = torch.zeros(top, kmax, f, device=device)
            counts = torch.zeros(top, dtype=torch.long, device=device)
            for c, centres in clusters.items():  # one entry per class, not per instance
                table[c, : centres.shape[0]] = centres.to(device, torch.float32)
                counts[c] = centres.shape[0]
            have = counts[classes]
            if k is None:
                choice = (torch.rand(s, device=device) * have.clamp(min=1)).long()
            else:
                choice = torch.full((s,), int(k), dtype=torch.long, device=device) % have.clamp(min=1)
            vectors = table[classes, choice] * (have > 0).unsqueeze(1)
        return vectors[segment].reshape(n, h, w, f).permute(0, 3, 1, 2).contiguous()

    def _read_encode_image(self, path: str, size: tuple[int, int]) -> Tensor:
        arr = to_unit_float(read_image(path))
        arr = match_channels(arr, self.data.output_nc, path, key="data.output_nc")
        if arr.shape[:2] != size:
            arr = resize(arr, (size[1], size[0]))
        return to_tensor(arr)

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> Tensor:
        cond = self.condition(batch)
        g_in = cond
        if "E" in self.nets:
            g_in = torch.cat([cond, self.instance_features(batch, batch.get("features")).to(cond.dtype)], 1)
        with self._eval("G"):
            return self.nets["G"](g_in).float()

    def export_module(self, batch: dict[str, Any] | None = None) -> Any:
        """G with its input's parts as separate graph inputs: ``label`` (one-hot), ``edges``
        (instance boundaries, with ``data.instance``) and ``features`` (the instance feature map,
        with ``model.use_features``), concatenated inside the graph; image inputs (``label_nc``
        0): G on ``A``. The feature map is made before the graph (``features`` ``random`` or
        ``cluster:K`` from the run's clusters, which travel in the file); ``encode`` runs E, which
        an exported file does not hold."""
        if self.label_nc <= 0:
            return super().export_module(batch)
        if batch is None:
            m = max(int(self.size_multiple), 16)
            batch = self.example_batch(2, m, m)
        cond = self.condition(batch).float()
        nc = int(self.label_nc)
        inputs = {"label": cond[:, :nc]}
        if cond.shape[1] > nc:
            inputs["edges"] = cond[:, nc:]
        if "E" in self.nets:
            mode = _feature_mode(batch.get("features"))
            if mode is None:  # as instance_features decides
                mode = "encode" if torch.is_tensor(batch.get(self.target_key)) else "random"
            if "feat_map" not in batch and mode.startswith("encode") and next(self.nets["E"].parameters()).is_meta:
                raise ExportError("features 'encode' runs the encoder E, which an exported file does not contain: "
                                  "use features random or cluster:K (the run's clusters travel in the file)")
            inputs["features"] = self.instance_features(batch, mode).float()
        G = self.nets["G"]
        module = G if len(inputs) == 1 else (_ConcatInputs2 if len(inputs) == 2 else _ConcatInputs3)(G)
        return ExportGraph(module, inputs)

    def load_inference_input(
        self, path: Path, *, aligned: bool = False, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], Tensor | None]:
        """A label map file (+ its instance map, found by :func:`pairgan.data.labels.find_partner`
        when ``data.instance``); ``aligned``: its photo too, as the target (and, with E, the image
        that ``features`` ``encode`` — the default — encodes). ``options["features"] =
        "encode:IMAGE"`` reads that image for E."""
        if self.label_nc <= 0:
            return super().load_inference_input(path, aligned=aligned, options=options)
        item = read_label_input(path, self.label_nc, self.data)
        size = tuple(item["label"].shape[-2:])
        target = None
        if aligned:
            target = self._read_encode_image(str(partner_photo_path(path)), size)
        mode = _feature_mode((options or {}).get("features"))
        if "E" in self.nets:
            if mode is not None and mode.startswith("encode:"):
                item["encode_image"] = self._read_encode_image(mode[len("encode:"):], size)
            elif target is not None and mode in (None, "encode"):
                item[self.target_key] = target
        return item, target

    # ----------------------------------------------------------------- state and serving
    def extra_state(self) -> dict[str, Any]:
        """The classes and the feature clusters (``{"class id": [[...], ...]}`` or None), which
        an exported file carries: its ``random`` and ``cluster:K`` features need them."""
        state = super().extra_state()
        clusters = self.find_clusters()
        state["clusters"] = {str(int(c)): v.tolist() for c, v in clusters.items()} if clusters else None
        return state

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        super().load_extra_state(state)
        if state.get("clusters"):
            self.clusters = {int(c): torch.tensor(v, dtype=torch.float32) for c, v in state["clusters"].items()}

    def request_schema(self) -> dict[str, Any]:
        """Label maps; with the feature encoder also the ``features`` modes that need no photo,
        ``edits`` and the number of cluster centres per class."""
        schema = super().request_schema()
        if "E" in self.nets:
            schema["options"].update(features=["random", "cluster:K"], edits=True, clusters=self._cluster_counts())
        return schema

    def _cluster_counts(self) -> dict[str, int] | None:
        try:
            clusters = self.find_clusters()
        except Exception:  # an unreadable clusters file: offered without clusters, as without a file
            return None
        return {str(int(c)): int(v.shape[0]) for c, v in clusters.items()} if clusters else None

    def apply_edits(self, batch: dict[str, Any], edits: Sequence[tuple[str, Any, int]]) -> dict[str, Any]:
        """See :func:`pairgan.methods.pix2pixhd_features.apply_cluster_edits`."""
        if "E" not in self.nets:
            return super().apply_edits(batch, edits)
        return apply_cluster_edits(self, batch, edits)
