"""Differentiable augmentation of what a discriminator sees (DiffAugment, Zhao et al. 2020), with
ADA's adaptive probability (Karras et al. 2020).

Every image D sees, real or fake, passes through the same family of transforms, so D cannot tell
real from fake by the augmentation and G is never pushed to reproduce it; the transforms are
plain tensor operations, so G's gradient flows back through the augmented fake.

Transforms (``policy``, applied in this order, each to each sample with probability ``p``):

* ``color``: brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) about the pixel's channel mean),
  contrast (x U(0.5, 1.5) about the image mean) - on the judged image only;
* ``translation``: an integer shift of up to ``translation`` (1/8) of each side, the same for
  the condition and the image of a pair; the uncovered border is zeros or a mirror image
  (``pad``); a label-map condition is always mirrored, so one-hot vectors stay one-hot;
* ``cutout``: a square of ``cutout`` (1/2) of each side, centred anywhere, set to 0 in the
  judged image only.

The condition keeps its values: colour and cutout never touch it (label colours, one-hot
vectors, edge maps keep their meaning), and translation only moves whole pixels (no
interpolation), so a label map stays a label map.

Draws: as DiffAugment, each call of :meth:`DiffAugment.pair` draws anew, so the real and the fake
batch of a D step get independent draws from the same distribution. A caller that compares D's
features of a real and a fake pair (pix2pixHD's feature matching) passes one :meth:`draw` to both.
Random numbers come from torch's generator of the images' device, which the trainer seeds and
saves in checkpoints, so training stays deterministic and resumes exactly.

Adaptive ``p`` (``target`` set): D's outputs on real pairs are watched (:meth:`observe`); every
``interval`` observations ``r = mean(sign(score - threshold))`` is compared with ``target`` and
``p`` moves by ``images seen / ada_images`` up (D over-fits: ``r > target``) or down, kept in
[0, 1]. ``p`` and the running sums are buffers, so they are saved with the weights and restored
exactly on resume; under torchrun the sums are averaged over processes before each update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pairgan.errors import ConfigError

__all__ = ["POLICIES", "AugmentDraw", "DiffAugment", "build_augment", "d_pair", "parse_policy", "score_maps"]

#: The transforms a policy may name, in the order they are applied.
POLICIES = ("color", "translation", "cutout")

DiscriminatorOutput = Union[Tensor, Sequence[Union[Tensor, Sequence[Tensor]]]]


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> the transforms in application order; unknown names raise
    ValueError naming them."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"augmentation policy {policy!r}: unknown transform {unknown[0]!r}; "
                         f"expected a comma-separated subset of {', '.join(POLICIES)}")
    return tuple(n for n in POLICIES if n in names)


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw for a batch of ``n`` pairs; every field is ``None`` when its transform is
    not in the policy. Samples whose coin said no get the identity (exactly)."""

    #: (n,) bool: which samples get each transform.
    color_on: Tensor | None
    brightness: Tensor | None  # (n, 1, 1, 1) additive
    saturation: Tensor | None  # (n, 1, 1, 1) factor
    contrast: Tensor | None  # (n, 1, 1, 1) factor
    shift: Tensor | None  # (n, 2) int64: rows, columns (0 where off)
    keep: Tensor | None  # (n, 1, H, W): 0 inside the cut-out square, 1 elsewhere (all 1 where off)


def _mirror(idx: Tensor, n: int) -> Tensor:
    """Indices outside [0, n) folded back into it as a mirror (without repeating the edge pixel)."""
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.remainder(period)
    return torch.where(idx < n, idx, period - idx)


def _translate(x: Tensor, shift: Tensor, mirror: bool) -> Tensor:
    """Each sample of NCHW ``x`` moved by its whole-pixel ``shift`` (rows, columns); uncovered
    pixels are a mirror image (``mirror``) or 0. A gather: exact values, gradients flow."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device)[None, :] - shift[:, :1]
    cols = torch.arange(w, device=x.device)[None, :] - shift[:, 1:]
    samples = torch.arange(n, device=x.device)[:, None, None]
    out = x[samples, :, _mirror(rows, h)[:, :, None], _mirror(cols, w)[:, None, :]].permute(0, 3, 1, 2)
    if not mirror:
        inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
        out = out * inside[:, None].to(out.dtype)
    return out.contiguous()


def score_maps(pred: DiscriminatorOutput) -> list[Tensor]:
    """The score maps of a discriminator output: itself, or each scale's (the last entry of a scale
    that lists its intermediate features)."""
    if isinstance(pred, Tensor):
        return [pred]
    return [scale if isinstance(scale, Tensor) else scale[-1] for scale in pred]


class DiffAugment(nn.Module):
    """The augmentation of D's inputs, with its probability ``p`` as state (see the module notes).

    ``threshold``: the score that separates "real" from "fake" for the adaptive rule (0 for
    logits, vanilla and hinge losses; 0.5 for LSGAN's 0/1 targets).
    """

    def __init__(self, policy: str = "color,translation,cutout", p: float = 1.0, target: float | None = None,
                 interval: int = 4, ada_images: int = 2000, translation: float = 0.125, cutout: float = 0.5,
                 pad: str = "zeros", threshold: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation probability {p!r}, expected a value in [0, 1]")
        if target is not None and not 0.0 <= target <= 1.0:
            raise ValueError(f"augmentation target {target!r}, expected a value in [0, 1]")
        if interval < 1 or ada_images < 1:
            raise ValueError(f"adaptive interval {interval} / ada_images {ada_images}, expected >= 1")
        if pad not in ("zeros", "reflect"):
            raise ValueError(f"translation pad {pad!r}, expected 'zeros' or 'reflect'")
        self.policy = parse_policy(policy)
        self.target = target
        self.interval = int(interval)
        self.ada_images = int(ada_images)
        self.translation = float(translation)
        self.cutout = float(cutout)
        self.pad = pad
        self.threshold = float(threshold)
        self.register_buffer("p", torch.tensor(float(p)))
        # Running sums of the adaptive rule since the last update: sign sum, observations, images.
        self.register_buffer("signs", torch.zeros(3))

    @property
    def probability(self) -> float:
        """The current probability (a host sync: for logs)."""
        return float(self.p.item())

    def draw(self, n: int, height: int, width: int, device: torch.device) -> AugmentDraw:
        """Random parameters of every transform of the policy for ``n`` pairs of ``height`` x ``width``."""
        p = self.p.to(device)

        def coin() -> Tensor:
            return torch.rand(n, device=device) < p

        def unit() -> Tensor:
            return torch.rand(n, 1, 1, 1, device=device)

        color_on = brightness = saturation = contrast = shift = keep = None
        if "color" in self.policy:
            color_on = coin()
            brightness, saturation, contrast = unit() - 0.5, unit() * 2.0, unit() + 0.5
        if "translation" in self.policy:
            on = coin()
            reach = torch.tensor([int(height * self.translation + 0.5), int(width * self.translation + 0.5)],
                                 device=device)
            u = torch.rand(n, 2, device=device)
            # Uniform integers in [-reach, reach] per axis.
            shift = (u * (2 * reach + 1)).floor().long().clamp(max=2 * reach) - reach
            shift = shift * on[:, None].long()
        if "cutout" in self.policy:
            on = coin()
            side_h, side_w = int(height * self.cutout + 0.5), int(width * self.cutout + 0.5)
            centre = (torch.rand(n, 2, device=device) * torch.tensor([height, width], device=device)).floor().long()
            top, left = centre[:, :1] - side_h // 2, centre[:, 1:] - side_w // 2
            rows = torch.arange(height, device=device)[None, :]
            cols = torch.arange(width, device=device)[None, :]
            in_rows = (rows >= top) & (rows < top + side_h)
            in_cols = (cols >= left) & (cols < left + side_w)
            cut = in_rows[:, :, None] & in_cols[:, None, :] & on[:, None, None]
            keep = (~cut)[:, None].float()
        return AugmentDraw(color_on, brightness, saturation, contrast, shift, keep)

    def transform(self, draw: AugmentDraw, condition: Tensor, image: Tensor, *,
              condition_is_label: bool = False) -> tuple[Tensor, Tensor]:
        """``(condition, image)`` transformed by ``draw`` (see the module notes for what touches which)."""
        if draw.color_on is not None:
            b, s, c = (t.to(image.dtype) for t in (draw.brightness, draw.saturation, draw.contrast))
            x = image + b
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * s + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * c + mean
            # where, not arithmetic with neutral factors: samples left alone stay bit for bit.
            image = torch.where(draw.color_on[:, None, None, None], x, image)
        if draw.shift is not None:
            mirror = self.pad == "reflect"
            image = _translate(image, draw.shift, mirror)
            condition = _translate(condition, draw.shift, mirror or condition_is_label)
        if draw.keep is not None:
            image = image * draw.keep.to(image.dtype)
        return condition, image

    def pair(self, condition: Tensor, image: Tensor, draw: AugmentDraw | None = None, *,
             condition_is_label: bool = False) -> Tensor:
        """D's input ``cat(condition, image)`` after the transforms; a fresh draw unless one is given."""
        if draw is None:
            draw = self.draw(image.shape[0], image.shape[-2], image.shape[-1], image.device)
        condition, image = self.transform(draw, condition, image, condition_is_label=condition_is_label)
        return torch.cat([condition, image], 1)

    @torch.no_grad()
    def observe(self, pred_real: DiscriminatorOutput) -> None:
        """Take D's output on a real batch into the adaptive rule; update ``p`` every ``interval``
        calls. Nothing happens without a ``target``. Tensor operations only (no host sync)."""
        if self.target is None:
            return
        maps = score_maps(pred_real)
        sign = torch.stack([torch.sign(m.detach().float() - self.threshold).mean() for m in maps]).mean()
        step = torch.stack([sign, torch.ones_like(sign), torch.full_like(sign, maps[0].shape[0])])
        self.signs.add_(step.to(self.signs.device))
        due = self.signs[1] >= self.interval
        sums = self.signs.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(sums)
            sums = sums / dist.get_world_size()
        r = sums[0] / sums[1].clamp(min=1)
        moved = (self.p + torch.sign(r - self.target) * sums[2] / self.ada_images).clamp(0.0, 1.0)
        self.p.copy_(torch.where(due, moved, self.p))
        self.signs.copy_(torch.where(due, torch.zeros_like(self.signs), self.signs))

    def extra_repr(self) -> str:
        return (f"policy={','.join(self.policy)}, target={self.target}, interval={self.interval}, "
                f"ada_images={self.ada_images}, translation={self.translation}, cutout={self.cutout}, pad={self.pad}")


def d_pair(augment: DiffAugment | None, condition: Tensor, image: Tensor, draw: AugmentDraw | None = None, *,
           condition_is_label: bool = False) -> Tensor:
    """D's input for one pair: ``cat(condition, image)``, augmented when ``augment`` is given."""
    if augment is None:
        return torch.cat([condition, image], 1)
    return augment.pair(condition, image, draw, condition_is_label=condition_is_label)


def build_augment(cfg: Any) -> DiffAugment | None:
    """The augmentation a method's ``model:`` section asks for (its ``d_augment*`` keys and
    ``gan_mode``), or None for ``d_augment: none``. Bad values raise ConfigError naming the key."""
    if cfg.d_augment == "none":
        return None
    try:
        parse_policy(cfg.d_augment_policy)
    except ValueError as exc:
        raise ConfigError(f"model.d_augment_policy: {exc}") from None
    p, target = float(cfg.d_augment_p), float(cfg.d_augment_target)
    for key, value in (("d_augment_p", p), ("d_augment_target", target)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"model.{key}: {value!r} is out of range; expected a value in [0, 1]")
    if cfg.d_augment_interval < 1 or cfg.d_augment_ada_images < 1:
        raise ConfigError("model.d_augment_interval and model.d_augment_ada_images: expected values >= 1, got "
                          f"{cfg.d_augment_interval} and {cfg.d_augment_ada_images}")
    return DiffAugment(
        policy=cfg.d_augment_policy,
        p=p,
        target=target if target > 0 else None,
        interval=cfg.d_augment_interval,
        ada_images=cfg.d_augment_ada_images,
        pad=cfg.d_augment_pad,
        # LSGAN scores real 1 and fake 0; the other losses score logits around 0.
        threshold=0.5 if getattr(cfg, "gan_mode", "vanilla") == "lsgan" else 0.0,
    )
