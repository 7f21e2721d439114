"""GGB (Park, Kim, Ro, ICIP 2019): pose-guided person image generation with generative guiding blocks.

G (U-Net, N conv / N deconv, skips) maps cat(source image, target-pose heat maps) to the person
in the target pose, and its decoder also gives images at H/8, H/4, H/2 through to-RGB heads.
D (5 conv, stride 2) judges the output (realism loss, lambda_real = 0.02). A guiding block at a
decoder level n encodes the source, the real target and the generated image at that level with
E_n; RAPD_n tells E_n(real target) from E_n(generated) (appearance), NVTD_n tells the residual
E_n(target) - E_n(source) from E_n(generated) - E_n(source) (variation); G learns to fool both
(lambda_GGB = 0.01). The paper's equations were lost from its text and there is no public code:
this is our reading, every assumption an option of :class:`GGBConfig`; docs/ggb.md explains each.

One iteration (paper section 2.3, ``g_update: two_step``):

1. G forward: x_hat and the level images x_hat^n.
2. D step on L_D (real target vs x_hat, detached).
3. For each guiding block: one step of its discriminators (and its encoder) on
   L_RAPD^n + L_NVTD^n (optimiser ``GGB{f}``).
4. The GGB-attached part of G: one step on Eq. 9, sum over levels of
   lambda_rec_levels * L1(x_hat^n, y^n) + lambda_GGB * (l_RAPD^n + l_NVTD^n) (optimiser ``G_GGB``;
   gradients reach only the layers up to each level and its head).
5. G as a whole, after a fresh forward: Eq. 4, lambda_real * l_real + lambda_rec * L1(x_hat, y)
   (optimiser ``G``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pairgan.config import DataConfig, TrainConfig
from pairgan.data.io import IMAGE_EXTENSIONS, image_size
from pairgan.data.poses import (
    ANNOTATIONS_FILE,
    IMAGES_DIR,
    KEYPOINT_NAMES,
    LIMBS,
    N_KEYPOINTS,
    PoseGeometry,
    image_path,
    load_rgb,
    overlay_pose,
    parse_annotations,
    pose_maps,
    read_annotations,
    render_pose,
)
from pairgan.data.transforms import PairedTransform, resize, to_tensor
from pairgan.errors import ConfigError, DataError
from pairgan.losses import GANLoss
from pairgan.methods.base import ExportGraph, Method, StepContext, set_requires_grad
from pairgan.methods.optim import adam
from pairgan.nets.blocks import init_weights
from pairgan.nets.ggb import GGBGenerator, GuidingBlock, ImageDiscriminator, PoseConditionedGenerator, valid_levels
from pairgan.registry import register


@dataclass
class GGBConfig:
    """``model:`` options of GGB (defaults: the paper's setting for 256x256 DeepFashion)."""

    # --- generator
    ngf: int = 64
    #: U-Net depth N (the paper: 7 conv + 7 deconv); inputs must be multiples of 2^N.
    num_downs: int = 7
    norm: Literal["batch", "instance", "none"] = "batch"
    #: Dropout(0.5) in the three innermost decoder layers (the paper does not say; off).
    dropout: bool = False
    #: Decoder levels (downscale factors: 2 = H/2) with a to-RGB head and an L1 term in Eq. 9.
    rec_levels: list[int] = field(default_factory=lambda: [8, 4, 2])
    #: Weight of the full-resolution L1 (Eq. 4).
    lambda_rec: float = 1.0
    #: Weight of each level's L1 against the target downsized to that level (Eq. 3 in Eq. 9).
    lambda_rec_levels: float = 1.0
    # --- image discriminator
    ndf: int = 64
    #: Stride-2 convolutions of D (the paper: 5).
    n_layers_D: int = 5
    #: D's normalisation (the paper does not say). Real and generated batches pass D separately,
    #: so batch norm lets D tell them apart by batch statistics and feeds G colour noise. Measured
    #: (ggb-demo, 250 steps, held-out SSIM): batch 0.60 (GGB terms off), instance 0.51, none 0.76.
    norm_D: Literal["batch", "instance", "none"] = "none"
    #: What D sees besides the image: nothing (the paper's L_D), the target pose, or the source.
    d_condition: Literal["none", "pose", "source"] = "none"
    lambda_real: float = 0.02
    #: The paper's log losses are ``vanilla`` (binary cross-entropy on logits).
    gan_mode: Literal["vanilla", "lsgan", "hinge"] = "vanilla"
    # --- generative guiding blocks
    #: Levels with a guiding block (the paper: 32, 64, 128 for 256 = factors 8, 4, 2; "1 GGB" = [2],
    #: "2 GGBs" = [4, 2]); [] = no GGBs.
    ggb_levels: list[int] = field(default_factory=lambda: [8, 4, 2])
    rapd: bool = True
    nvtd: bool = True
    #: Weight of every level's RAPD and NVTD generator terms (the paper's lambda = 0.01).
    lambda_GGB: float = 0.01
    #: E_n widths (nef, then 2 nef) and the RAPD/NVTD widths (ndf, 2 ndf, 1).
    ggb_nef: int = 64
    ggb_ndf: int = 64
    #: Kernel of the 3 RAPD/NVTD convolutions (stride 1, 'same' padding: works on any feature size).
    ggb_kernel: int = 3
    ggb_norm: Literal["batch", "instance", "none"] = "none"
    #: RAPD judges E_n(image) alone (``none``) or together with E_n(source) (``source``).
    rapd_condition: Literal["none", "source"] = "none"
    #: Who trains E_n: the block's discriminators (they minimise L_RAPD + L_NVTD through it) or
    #: nobody (a fixed random encoder). G never updates E_n; its gradients pass through.
    encoder_training: Literal["discriminators", "frozen"] = "discriminators"
    #: ``two_step``: Eq. 9 step with its own Adam (``G_GGB``), fresh forward, Eq. 4 step (``G``);
    #: ``two_step_shared``: the same with one Adam for both steps; ``joint``: one step on Eq. 4 + Eq. 9.
    g_update: Literal["two_step", "two_step_shared", "joint"] = "two_step"
    init_type: Literal["normal", "xavier", "kaiming", "orthogonal"] = "normal"
    init_gain: float = 0.02
    inference_mode: Literal["eval"] = "eval"


def _check(cfg: GGBConfig) -> None:
    ok = valid_levels(cfg.num_downs)
    for key in ("rec_levels", "ggb_levels"):
        levels = getattr(cfg, key)
        bad = [f for f in levels if f not in ok]
        if bad or len(set(levels)) != len(levels):
            raise ConfigError(f"model.{key}: {levels}; expected distinct decoder levels among {ok} "
                              f"(downscale factors for model.num_downs={cfg.num_downs}; 2 = half the output size)")
    if cfg.ggb_levels and not (cfg.rapd or cfg.nvtd):
        raise ConfigError("model.rapd and model.nvtd are both false but model.ggb_levels is "
                          f"{cfg.ggb_levels}: a guiding block needs one of them (or set model.ggb_levels=[])")
    if cfg.ggb_kernel < 1 or cfg.ggb_kernel % 2 == 0:
        raise ConfigError(f"model.ggb_kernel must be odd and >= 1, got {cfg.ggb_kernel}")


def _downsize(x: torch.Tensor, f: int) -> torch.Tensor:
    """An image at 1/f of its size (mean of f x f blocks: exact anti-aliasing for power-of-2 sizes)."""
    return F.avg_pool2d(x, f) if f > 1 else x


@register("method", "ggb")
class GGB(Method):
    """Pose-guided person generation with generative guiding blocks (RAPD + NVTD)."""

    paper = ('Park, Kim, Ro: '
             '"Generative Guiding Block: Synthesizing Realistic Looking Variants Capable of Even Large Change Demands", ICIP 2019')

    Config = GGBConfig
    inference_nets = ("G",)
    input_keys = ("source", "target_pose")
    target_key = "target"

    def __init__(self, cfg: GGBConfig, data: DataConfig, *, training: bool = True) -> None:
        super().__init__(cfg, data, training=training)
        _check(cfg)
        self.pose_nc = N_KEYPOINTS
        self.ggb_levels = sorted(cfg.ggb_levels, reverse=True)
        self.rec_levels = sorted(cfg.rec_levels, reverse=True)
        self.head_levels = sorted(set(self.ggb_levels) | set(self.rec_levels), reverse=True)
        self.nets["G"] = GGBGenerator(data.input_nc + self.pose_nc, data.output_nc, ngf=cfg.ngf,
                                      num_downs=cfg.num_downs, norm=cfg.norm, dropout=cfg.dropout,
                                      levels=self.head_levels)
        if training:
            d_extra = {"none": 0, "pose": self.pose_nc, "source": data.input_nc}[cfg.d_condition]
            self.nets["D"] = ImageDiscriminator(data.output_nc + d_extra, cfg.ndf, cfg.n_layers_D, cfg.norm_D)
            for f in self.ggb_levels:
                self.nets[f"GGB{f}"] = GuidingBlock(data.output_nc, cfg.ggb_nef, cfg.ggb_ndf, rapd=cfg.rapd,
                                                    nvtd=cfg.nvtd, kernel=cfg.ggb_kernel, norm=cfg.ggb_norm,
                                                    rapd_condition=cfg.rapd_condition)
            self.gan_loss = GANLoss(cfg.gan_mode)
        for net in self.nets.values():
            init_weights(net, cfg.init_type, cfg.init_gain)
        if training and cfg.encoder_training == "frozen":
            for f in self.ggb_levels:
                set_requires_grad(self.nets[f"GGB{f}"].encoder, False)
        self.inference_mode = cfg.inference_mode

    # ----------------------------------------------------------------- training
    @property
    def guided_step(self) -> bool:
        """Whether Eq. 9 has any term (level L1s or guiding blocks)."""
        return bool(self.rec_levels or self.ggb_levels)

    def _block_params(self, f: int) -> list[nn.Parameter]:
        blk = self.nets[f"GGB{f}"]
        params = [p for n, p in blk.named_parameters() if not n.startswith("encoder.")]
        if self.cfg.encoder_training == "discriminators":
            params += list(blk.encoder.parameters())
        return params

    def _set_blocks_trainable(self, flag: bool) -> None:
        for f in self.ggb_levels:
            for p in self._block_params(f):
                p.requires_grad_(flag)

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        opts = {"G": adam(self.nets["G"].parameters(), train), "D": adam(self.nets["D"].parameters(), train, discriminator=True)}
        if self.cfg.g_update == "two_step" and self.guided_step:
            # Its own moments: the Eq. 9 step reaches only the layers up to each level.
            opts["G_GGB"] = adam(self.nets["G"].parameters(), train)
        for f in self.ggb_levels:
            opts[f"GGB{f}"] = adam(self._block_params(f), train, discriminator=True)
        return opts

    def _d_input(self, image: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        cond = self.cfg.d_condition
        if cond == "pose":
            return torch.cat([image, batch["target_pose"]], 1)
        if cond == "source":
            return torch.cat([image, batch["source"]], 1)
        return image

    def generator_input(self, batch: dict[str, Any]) -> torch.Tensor:
        if "source" not in batch or "target_pose" not in batch:
            raise ValueError("GGB needs a source image and a target pose: translate_batch({'source': NCHW "
                             "image, 'target_pose': N x 18 x H x W heat maps}) or translate_files(..., "
                             "options={'pose': ...}) (the CLI's --pose)")
        return torch.cat([batch["source"], batch["target_pose"]], 1)

    def train_step(self, batch: dict[str, Any], ctx: StepContext) -> dict[str, float]:
        cfg = self.cfg
        G, D = self.nets["G"], self.nets["D"]
        gan = self.gan_loss
        x, y = batch["source"], batch["target"]
        g_in = self.generator_input(batch)
        logs: dict[str, float] = {}
        with ctx.autocast():
            fake, fakes = G(g_in, levels=True)
        ys = {f: _downsize(y, f) for f in self.head_levels}
        xs = {f: _downsize(x, f) for f in self.ggb_levels}

        # 1. D: real target vs generated (detached).
        set_requires_grad(D, True)
        with ctx.autocast():
            d_real = gan(D(self._d_input(y, batch)), True, for_discriminator=True)
            d_fake = gan(D(self._d_input(fake.detach(), batch)), False, for_discriminator=True)
            loss_d = 0.5 * (d_real + d_fake)
        ctx.optimize("D", loss_d)
        logs["D_real"], logs["D_fake"] = d_real.item(), d_fake.item()

        # 2. Each guiding block's discriminators (and encoder) on their own losses.
        self._set_blocks_trainable(True)
        for f in self.ggb_levels:
            blk = self.nets[f"GGB{f}"]
            with ctx.autocast():
                e_src, e_real, e_fake = blk.encode(xs[f]), blk.encode(ys[f]), blk.encode(fakes[f].detach())
                terms = []
                if blk.rapd is not None:
                    r_real = gan(blk.rapd_logits(e_real, e_src), True, for_discriminator=True)
                    r_fake = gan(blk.rapd_logits(e_fake, e_src), False, for_discriminator=True)
                    terms.append(0.5 * (r_real + r_fake))
                    logs[f"RAPD{f}_real"], logs[f"RAPD{f}_fake"] = r_real.item(), r_fake.item()
                if blk.nvtd is not None:
                    n_real = gan(blk.nvtd_logits(e_real, e_src), True, for_discriminator=True)
                    n_fake = gan(blk.nvtd_logits(e_fake, e_src), False, for_discriminator=True)
                    terms.append(0.5 * (n_real + n_fake))
                    logs[f"NVTD{f}_real"], logs[f"NVTD{f}_fake"] = n_real.item(), n_fake.item()
            ctx.optimize(f"GGB{f}", sum(terms))

        # 3. The GGB-attached part of G (Eq. 9): level L1s and fooling RAPD_n / NVTD_n.
        set_requires_grad(D, False)
        self._set_blocks_trainable(False)
        loss_9 = None
        if self.guided_step:
            with ctx.autocast():
                parts = []
                for f in self.rec_levels:
                    l1 = F.l1_loss(fakes[f].float(), ys[f].float())
                    logs[f"G_L1_x{f}"] = l1.item()
                    parts.append(cfg.lambda_rec_levels * l1)
                for f in self.ggb_levels:
                    blk = self.nets[f"GGB{f}"]
                    with torch.no_grad():
                        e_src = blk.encode(xs[f])
                    e_fake = blk.encode(fakes[f])
                    if blk.rapd is not None:
                        g_rapd = gan(blk.rapd_logits(e_fake, e_src), True, for_discriminator=False)
                        logs[f"G_RAPD{f}"] = g_rapd.item()
                        parts.append(cfg.lambda_GGB * g_rapd)
                    if blk.nvtd is not None:
                        g_nvtd = gan(blk.nvtd_logits(e_fake, e_src), True, for_discriminator=False)
                        logs[f"G_NVTD{f}"] = g_nvtd.item()
                        parts.append(cfg.lambda_GGB * g_nvtd)
                loss_9 = sum(parts)
            if cfg.g_update != "joint":
                ctx.optimize("G_GGB" if cfg.g_update == "two_step" else "G", loss_9)
                with ctx.autocast():  # G changed: a fresh forward for the whole-G step
                    fake = G(g_in)

        # 4. G as a whole (Eq. 4): realism + full-resolution L1 (+ Eq. 9 when joint).
        with ctx.autocast():
            g_real = gan(D(self._d_input(fake, batch)), True, for_discriminator=False)
            g_l1 = F.l1_loss(fake.float(), y.float())
            loss_g = cfg.lambda_real * g_real + cfg.lambda_rec * g_l1
            if cfg.g_update == "joint" and loss_9 is not None:
                loss_g = loss_g + loss_9
        ctx.optimize("G", loss_g)
        logs["G_real"], logs["G_L1"] = g_real.item(), g_l1.item()
        set_requires_grad(D, True)
        self._set_blocks_trainable(True)
        return logs

    # ----------------------------------------------------------------- inference
    @property
    def size_multiple(self) -> int:
        return int(self.nets["G"].size_multiple)

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> torch.Tensor:
        G = self.nets["G"]
        was_training = G.training
        G.eval()
        try:
            return G(self.generator_input(batch)).float()
        finally:
            G.train(was_training)

    @torch.no_grad()
    def translate_levels(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The output and the multi-level images x_hat^n (at H/f for each head level f)."""
        G = self.nets["G"]
        was_training = G.training
        G.eval()
        try:
            return G(self.generator_input(batch), levels=True)
        finally:
            G.train(was_training)

    def example_batch(self, batch_size: int, height: int, width: int) -> dict[str, Any]:
        """A random training batch (benchmarks, export tracing): noise images in [-1, 1] and heat
        maps of random keypoints (sigma ``data.pose_sigma``, a few joints missing)."""
        g = torch.Generator().manual_seed(0)
        poses = []
        for _ in range(2 * batch_size):
            kp = torch.rand(N_KEYPOINTS, 2, generator=g) * torch.tensor([height - 1, width - 1])
            kp[torch.rand(N_KEYPOINTS, generator=g) < 0.15] = float("nan")
            poses.append(torch.from_numpy(pose_maps(kp.numpy(), height, width, self.data)))
        d = self.data
        return {
            "source": torch.rand(batch_size, d.input_nc, height, width, generator=g) * 2 - 1,
            "source_pose": torch.stack(poses[:batch_size]),
            "target_pose": torch.stack(poses[batch_size:]),
            "target": torch.rand(batch_size, d.output_nc, height, width, generator=g) * 2 - 1,
        }

    def export_module(self, batch: dict[str, Any] | None = None) -> Any:
        """G with two graph inputs, ``source`` and ``target_pose`` (heat maps are made before)."""
        if batch is None:
            m = max(int(self.size_multiple), 16)
            batch = self.example_batch(2, m, m)
        inputs = {"source": batch["source"].float(), "target_pose": batch["target_pose"].float()}
        return ExportGraph(PoseConditionedGenerator(self.nets["G"]), inputs)

    def display_input(self, batch: dict[str, Any]) -> torch.Tensor:
        """The source image, faded, with the target pose's skeleton drawn over it."""
        return overlay_pose(batch["source"], batch["target_pose"])

    def visuals(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        cols = {"source": batch["source"], "target pose": render_pose(batch["target_pose"]),
                "output": self.translate(batch)}
        if self.target_key in batch:
            cols["target"] = batch[self.target_key]
        return cols

    # Source and pose are read through the evaluation geometry here: the pose's keypoints live in that frame.
    reads_at_training_scale = True

    def load_inference_input(self, path: Path, *, aligned: bool = False,
                             options: dict[str, Any] | None = None) -> tuple[dict[str, Any], torch.Tensor | None]:
        """The source image ``path`` and the target pose ``options["pose"]``.

        ``pose`` is (1) an annotations-format file with one row (``NAME: [ys]: [xs]``, header
        optional), (2) another image, whose annotation is looked up by name, or (3) an image NAME
        looked up in an annotations file. Annotations are searched in ``options["annotations"]``
        (``-O annotations=FILE``), then in the training data set's ``annotations.csv``, then
        beside the pose image. When the pose belongs to an image that exists, that image is
        returned as the target. Source and pose go through the data set's evaluation geometry
        (``data.preprocess`` without random crop or flip), so the model sees what it was trained on.
        """
        options = options or {}
        spec = options.get("pose")
        if spec is None or spec == "":
            raise ValueError("GGB translates a source image into a target pose: pass --pose with a keypoint "
                             "file (name: [ys]: [xs]), another image of the data set, or an annotation NAME")
        kp, frame, target_path = resolve_pose(str(spec), self.data, options.get("annotations"))
        item, transform = self._pose_item(Path(path), kp, frame)
        d = self.data
        h, w = item["source"].shape[-2:]
        target = None
        if target_path is not None:
            tgt = load_rgb(target_path, d.output_nc)
            tw, th = image_size(target_path)
            tgt = PoseGeometry(transform, tw, th, None).image(tgt)
            if tgt.shape[:2] != (h, w):
                tgt = resize(tgt, (w, h))
            target = to_tensor(tgt)
        return item, target

    def _pose_item(self, path: Path, kp: np.ndarray, frame: tuple[int, int] | None
                   ) -> tuple[dict[str, torch.Tensor], PairedTransform]:
        """The source image ``path`` and the heat maps of keypoints ``kp`` (given in ``frame``, (w, h);
        None: the source image's pixels), both through the data set's evaluation geometry (returned)."""
        d = self.data
        src = load_rgb(path, d.input_nc)
        transform = PairedTransform(d.preprocess, d.load_size, d.crop_size, d.flip, train=False,
                                    size_multiple=self.size_multiple)
        try:
            geo = PoseGeometry(transform, src.shape[1], src.shape[0], None)
        except ValueError as exc:
            raise DataError(f"{path}: {exc}") from None
        src = geo.image(src)
        h, w = src.shape[:2]
        kp_net = geo.keypoints(kp, frame=frame or geo.src)
        return ({"source": to_tensor(src), "target_pose": torch.from_numpy(pose_maps(kp_net, h, w, d))},
                transform)

    # ----------------------------------------------------------------- serving
    def request_schema(self) -> dict[str, Any]:
        """A person image and the target pose: keypoint names, limbs and a default pose (fractions
        of the image: the first annotation of the training data when it is at hand)."""
        spec: dict[str, Any] = {
            "keypoints": list(KEYPOINT_NAMES), "limbs": [list(map(int, limb)) for limb in LIMBS],
            "format": "JSON [[y, x], ...] in pixels of the uploaded image, one per keypoint; null = missing",
            "default": None,
        }
        try:
            root = Path(self.data.path)
            ann = read_annotations(root / ANNOTATIONS_FILE)
            name, kp = next(iter(ann.items()))
            w, h = image_size(image_path(root, name))
            spec["default"] = [[-1, -1] if not np.isfinite(p).all() else [float(p[0]) / h, float(p[1]) / w]
                               for p in kp]
        except Exception:  # no training data at hand: no default pose
            pass
        return {"kind": "pose", "options": {"pose": spec}}

    def item_from_upload(self, files: Mapping[str, Path], options: Mapping[str, Any]) -> dict[str, Any]:
        """The uploaded person image and ``options["pose_keypoints"]`` (float [18, 2], (y, x) in the
        upload's pixels, NaN = missing) as heat maps, through the evaluation geometry."""
        kp = np.asarray(options["pose_keypoints"], np.float32)
        item, _ = self._pose_item(files["image"], kp, None)
        return item


def _annotation_sources(data: DataConfig, extra: str | None, near: Path | None) -> list[Path]:
    out: list[Path] = []
    if extra:
        out.append(Path(str(extra)))
    if data.path:
        out.append(Path(data.path) / ANNOTATIONS_FILE)
    if near is not None:
        out += [near.parent / ANNOTATIONS_FILE, near.parent.parent / ANNOTATIONS_FILE,
                near.parent.parent.parent / ANNOTATIONS_FILE]
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def _lookup(name: str, sources: list[Path]) -> tuple[np.ndarray, Path] | None:
    stem = Path(name).stem
    for src in sources:
        if not src.is_file():
            continue
        rows = read_annotations(src)
        if name in rows:
            return rows[name], src
        for cand, kp in rows.items():  # NAME without its extension, or with another one
            if Path(cand).stem == stem:
                return kp, src
    return None


def resolve_pose(spec: str, data: DataConfig, annotations: str | None = None
                 ) -> tuple[np.ndarray, tuple[int, int] | None, Path | None]:
    """A ``--pose`` value -> (keypoints [18, 2] (y, x), NaN = missing; the (w, h) frame they are
    given in, or None for "the source image's"; the image that has this pose, if known)."""
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
        found = _lookup(p.name, _annotation_sources(data, annotations, p))
        if found is None:
            raise DataError(f"{p}: no annotation for this image in "
                            f"{', '.join(map(str, _annotation_sources(data, annotations, p)))}; pass its keypoints "
                            "as a file (name: [ys]: [xs]) or -O annotations=FILE")
        return found[0], image_size(p), p
    if p.is_file():
        rows, problems = parse_annotations(p.read_text(), str(p))
        if problems:
            raise DataError(f"{problems[0][0]}: {problems[0][1]}")
        if len(rows) != 1:
            raise DataError(f"{p}: {len(rows)} annotation rows, expected exactly one (the target pose); "
                            "to pick one by name pass NAME with -O annotations=FILE")
        (name, kp), = rows.items()
        return kp, None, None
    found = _lookup(spec, _annotation_sources(data, annotations, None))
    if found is None:
        raise DataError(f"--pose {spec!r}: not a file and no annotation of that name in "
                        f"{', '.join(map(str, _annotation_sources(data, annotations, None))) or '(no data set)'}")
    kp, src = found
    img = src.parent / IMAGES_DIR / spec
    if not img.is_file():
        matches = sorted((src.parent / IMAGES_DIR).glob(f"{Path(spec).stem}.*")) if (src.parent / IMAGES_DIR).is_dir() else []
        img = matches[0] if matches else None
    if img is not None:
        return kp, image_size(img), img
    return kp, None, None


__all__ = ["GGB", "GGBConfig", "resolve_pose"]
