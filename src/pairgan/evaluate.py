"""Translate a data split through a trained model (or take images already generated) and score it.

:func:`evaluate` is what ``pairgan evaluate`` runs: it reads the split as the model was trained
(without augmentation: :class:`pairgan.data.transforms.PairedTransform` with ``train=False``),
translates it (or reads ``outputs_dir/NAME.png``), computes the requested metrics
(:mod:`pairgan.metrics.suite`) and writes ``outputs/``, ``inputs/``, ``targets/``,
``metrics.json`` (with ``protocol_version``) and the report ``index.html`` into ``out_dir``.
:func:`evaluate_split` is the older, L1/PSNR/SSIM entry point (same files). :class:`Validator`
scores the validation split during training (``train.val_every``) and keeps the best checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write_text
from pairgan.infer import Translator
from pairgan.metrics import compute_metrics

__all__ = ["Validator", "evaluate", "evaluate_split", "heldout_l1", "parse_best_metric", "real_cache_key"]


def _dataset(data_cfg: Any, data_path: str | os.PathLike, split: str, max_items: int, size_multiple: int, seed: int):
    from pairgan.data.datasets import build_dataset

    cfg = dataclasses.replace(data_cfg, path=str(data_path), max_items=max_items)
    return build_dataset(cfg, split, train=False, size_multiple=size_multiple, seed=seed)


def _name_of(item: dict[str, Any], i: int) -> str:
    return Path(item.get("A_path") or f"{i:05d}").stem


def real_cache_key(ds: Any, target_key: str, inception: str | None) -> str:
    """The real-set feature cache key: protocol version, Inception weights, how the split is read
    (data settings, the target side) and every file (path, size, mtime)."""
    from pairgan.metrics.fid import files_key
    from pairgan.metrics.inception import PROTOCOL
    from pairgan.metrics.suite import PROTOCOL_VERSION

    files = [str(p) for pair in getattr(ds, "pairs", []) for p in (pair if isinstance(pair, tuple) else (pair,))
             if p is not None]
    cfg = dataclasses.asdict(ds.cfg)
    cfg.pop("max_items", None)
    extra = {"protocol_version": PROTOCOL_VERSION, "inception_protocol": PROTOCOL, "inception": inception or
             "inception-fid", "data": cfg, "split": ds.split, "target": target_key,
             "size_multiple": ds.transform.size_multiple}
    return files_key(files, extra)


def evaluate(
    translator: Translator | None,
    data_path: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    *,
    metrics: str | Sequence[str] = ("l1", "psnr", "ssim"),
    max_items: int = 0,
    seed: int = 0,
    outputs_dir: str | os.PathLike | None = None,
    data_cfg: Any = None,
    segmenter: Any = None,
    inception: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    cache_real: bool = True,
    report_rows: int = 12,
    feature_extractor: Any = None,
    gallery: bool = False,
) -> dict[str, Any]:
    """Evaluate ``split`` of ``data_path``; returns what ``metrics.json`` holds.

    ``translator``: the model to translate with; None together with ``outputs_dir`` (images
    named like the split's files, ``NAME.png`` or any image extension) and ``data_cfg`` (how to
    read the split: direction, layout, sizes). ``metrics``: names or ``"l1,fid,..."`` (see
    :func:`pairgan.metrics.suite.parse_metrics`); ``segmenter``: a checkpoint path or a loaded
    segmenter for ``seg``; ``inception``: None (the ``inception-fid`` weights) or a file.
    The report is ``index.html``; with ``gallery`` (:func:`evaluate_split`) ``index.html`` is the
    plain input | output | target gallery and the report ``report.html``.
    """
    from pairgan.data.io import list_images, match_channels, read_image, to_unit_float, write_image
    from pairgan.data.transforms import to_array, to_tensor
    from pairgan.metrics.suite import PROTOCOL, PROTOCOL_VERSION, EvalContext, compute, parse_metrics

    t_start = time.perf_counter()
    names = parse_metrics(metrics, segmenter=segmenter is not None)
    if "seg" in names and segmenter is None:
        raise ValueError("the seg metric needs --segmenter CKPT (train one with `pairgan segmenter train`)")
    if translator is None and (outputs_dir is None or data_cfg is None):
        raise ValueError("evaluate needs a model to translate with, or outputs_dir and data_cfg")
    # the networks first: a missing weights file stops here, not after translating the split
    if feature_extractor is None and any(n in names for n in ("fid", "kid", "is")):
        from pairgan.metrics.inception import load_inception

        load_inception(inception, device)
    for net, name in (("vgg", "lpips"), ("alex", "lpips_alex")):
        if name in names:
            from pairgan.metrics.lpips import lpips_model

            lpips_model(net, device)
    out_dir = Path(out_dir)
    method = translator.method if translator is not None else None
    data_cfg = data_cfg if data_cfg is not None else translator.cfg.data  # type: ignore[union-attr]
    size_multiple = method.size_multiple if method is not None else 1
    ds = _dataset(data_cfg, data_path, split, max_items, size_multiple, seed)
    target_key = method.target_key if method is not None else ("image" if ds.layout == "labels" else "B")

    given: dict[str, Path] = {}
    if outputs_dir is not None:
        outputs_dir = Path(outputs_dir)
        if not outputs_dir.is_dir():
            raise FileNotFoundError(f"{outputs_dir}: no such folder (--outputs)")
        for f in list_images(outputs_dir):
            given.setdefault(f.stem, f)
    for sub in ("inputs", "outputs", "targets"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)

    fakes: list[torch.Tensor] = []
    reals: list[torch.Tensor] = []
    labels: list[torch.Tensor | None] = []
    rows: list[dict[str, str]] = []
    t_translate = 0.0
    for i in range(len(ds)):
        item = ds[i]
        name = _name_of(item, i)
        batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
        if target_key not in item:
            raise ValueError(f"{item.get('A_path')}: the {split} split has no target images to score against")
        target = item[target_key]
        tic = time.perf_counter()
        if outputs_dir is None:
            fake = translator.translate_batch(batch, seed=seed)[0].cpu()  # type: ignore[union-attr]
        else:
            f = given.get(name)
            if f is None:
                raise FileNotFoundError(f"{outputs_dir}: no generated image for {name} (expected {name}.png)")
            arr = match_channels(to_unit_float(read_image(f)), target.shape[0], f, key="generated image")
            fake = to_tensor(arr)
            if fake.shape != target.shape:
                raise ValueError(f"{f}: {fake.shape[2]}x{fake.shape[1]}, but the target is read as "
                                 f"{target.shape[2]}x{target.shape[1]} (data.preprocess / crop_size of the run)")
        t_translate += time.perf_counter() - tic
        if method is not None:
            shown = method.display_input(batch)[0]
        elif "label" in item:
            from pairgan.data.labels import colorize

            shown = colorize(item["label"])[0]
        else:
            shown = item["A"]
        for sub, t in (("inputs", shown), ("outputs", fake), ("targets", target)):
            write_image(out_dir / sub / f"{name}.png", to_array(t.cpu()))
        rows.append({"name": name, **{c: f"{c}s/{name}.png" for c in ("input", "output", "target")}})
        fakes.append(fake)
        reals.append(target)
        if "label" in item:
            labels.append(item["label"][0])
        elif "A" in item and item["A"].shape[0] in (1, 3):
            labels.append(item["A"])  # a label image: the segmenter maps it to ids
        else:
            labels.append(None)

    key = None
    if cache_real and any(n in names for n in ("fid", "kid")):
        key = real_cache_key(ds, target_key, inception)
    ctx = EvalContext(fakes, reals, labels, device=device, batch_size=batch_size, inception=inception,
                      segmenter=segmenter, seed=seed, real_cache_key=key, feature_extractor=feature_extractor)
    scores, seconds = compute(names, ctx)
    total = time.perf_counter() - t_start
    result = {
        "protocol_version": PROTOCOL_VERSION,
        "split": split,
        "data": str(data_path),
        "checkpoint": str(translator.checkpoint) if translator is not None else None,
        "outputs": str(outputs_dir) if outputs_dir is not None else None,
        "mode": translator.mode if translator is not None else None,
        "seed": seed,
        "metrics": scores,
        "protocol": "images in [0,1]; L1 mean abs error; PSNR data range 1; SSIM 11x11 Gaussian sigma 1.5",
        "protocols": {n: PROTOCOL[n] for n in names if n in PROTOCOL},
        "details": ctx.details,
        "timing": {"translate_s": round(t_translate, 2), "metrics_s": seconds, "total_s": round(total, 2)},
        "environment": {"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                        "python": platform.python_version()},
        "samples": rows,
    }
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2, default=str) + "\n")
    from pairgan.metrics.report import write_report

    report = write_report(out_dir, result, rows, max_rows=report_rows, name="report.html" if gallery else "index.html")
    if gallery:
        from pairgan.visual import write_gallery

        notes = " · ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "count" and isinstance(v, float))
        write_gallery(out_dir, rows, ["input", "output", "target"], title=f"pairgan — {split} split",
                      notes=notes + " · full report: report.html")
    return result | {"report": str(report), "metrics_file": str(out_dir / "metrics.json")}


def evaluate_split(
    translator: Translator,
    data_path: str | os.PathLike,
    split: str,
    out_dir: str | os.PathLike,
    *,
    max_items: int = 0,
    metrics: tuple[str, ...] = ("l1", "psnr", "ssim"),
    seed: int = 0,
) -> dict[str, Any]:
    """Translate ``split`` of the data set at ``data_path`` (read as the model was trained, without
    augmentation), write outputs, the gallery ``index.html`` (input | output | target), the report
    ``report.html`` and ``metrics.json`` into ``out_dir``. The pair metrics of ``metrics`` (L1, PSNR, SSIM by default); see :func:`evaluate`
    for the rest."""
    return evaluate(translator, data_path, split, out_dir, metrics=metrics, max_items=max_items, seed=seed,
                    device=translator.device, gallery=True)


@torch.no_grad()
def heldout_l1(translator: Translator, data_path: str | os.PathLike, split: str, max_items: int = 0) -> float:
    """Mean L1 (in [0, 1] units) of the model on a split, without writing anything."""
    from pairgan.data.datasets import build_dataset

    data_cfg = dataclasses.replace(translator.cfg.data, path=str(data_path), max_items=max_items)
    ds = build_dataset(data_cfg, split, train=False, size_multiple=translator.method.size_multiple)
    key = translator.method.target_key
    fakes, reals = [], []
    for i in range(len(ds)):
        item = ds[i]
        batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
        fakes.append(translator.translate_batch(batch)[0].cpu())
        reals.append(item[key])
    return compute_metrics(fakes, reals, ("l1",))["l1"]


# --------------------------------------------------------------------------- validation during training


def parse_best_metric(spec: str) -> tuple[str, bool] | None:
    """``train.best_metric`` -> (metric, higher is better) or None when empty.

    ``NAME`` takes the metric's own direction (``fid``, ``lpips``, ``l1``: lower; ``psnr``,
    ``ssim``, ``is``, ``seg_*``: higher); ``+NAME`` / ``-NAME`` say it explicitly (higher / lower
    is better), required for metrics of unknown direction."""
    from pairgan.metrics.suite import direction

    spec = (spec or "").strip()
    if not spec:
        return None
    if spec[0] in "+-":
        name, higher = spec[1:].strip(), spec[0] == "+"
    else:
        name = spec
        d = direction(name)
        if d is None:
            raise ConfigError(f"train.best_metric {spec!r}: the direction of {name!r} is unknown; write "
                              f"+{name} (higher is better) or -{name} (lower is better)")
        higher = d
    if not name:
        raise ConfigError(f"train.best_metric {spec!r}: expected NAME, +NAME or -NAME")
    return name, higher


class Validator:
    """Scores the validation split every ``train.val_every`` steps (rank 0) and keeps the best.

    Leaves training exactly as it was: the translation runs under a forked RNG (the Translator's
    ``translate_batch``), with no gradients, and every network's buffers (batch-norm running
    statistics) are restored and its train mode set back afterwards. Scores are logged as
    ``val/<metric>``; when ``train.best_metric`` improves, :meth:`__call__` returns True (the
    trainer then saves the checkpoint ``best``) and ``best.json`` records the step and scores.
    """

    def __init__(self, cfg: Any, method: Any, device: torch.device, run_dir: Path, *, resume: bool = False) -> None:
        from pairgan.data.datasets import split_exists
        from pairgan.metrics.suite import parse_metrics

        t = cfg.train
        self.cfg, self.method, self.device, self.run_dir = cfg, method, device, Path(run_dir)
        try:
            self.names = parse_metrics(t.val_metrics, segmenter=False)
        except ValueError as exc:
            raise ConfigError(f"train.val_metrics: {exc}") from None
        if "seg" in self.names:
            raise ConfigError("train.val_metrics: seg needs a trained segmenter and is not available during "
                              "training; score checkpoints with `pairgan evaluate --segmenter`")
        self.best = parse_best_metric(t.best_metric)
        if self.best is not None and self.best[0] not in self._outputs():
            raise ConfigError(f"train.best_metric {t.best_metric!r}: {self.best[0]!r} is not computed by "
                              f"train.val_metrics ({t.val_metrics}); outputs: {', '.join(self._outputs())}")
        self.split = cfg.data.val_split
        self.enabled = split_exists(cfg.data, self.split)
        if not self.enabled:
            import sys

            print(f"warning: train.val_every is set but the data set has no '{self.split}' split "
                  f"(data.val_split); no validation", file=sys.stderr)
        if any(n in self.names for n in ("fid", "kid", "is")):
            from pairgan.metrics.inception import load_inception

            load_inception(None, device)  # fail now, not after hours of training
        if any(n.startswith("lpips") for n in self.names):
            from pairgan.metrics.lpips import lpips_model

            lpips_model("alex" if "lpips_alex" in self.names else "vgg", device)
        self.best_value: float | None = None
        self.best_file = self.run_dir / "best.json"
        if resume and self.best_file.is_file():
            try:
                self.best_value = json.loads(self.best_file.read_text()).get("value")
            except (OSError, json.JSONDecodeError):
                self.best_value = None
        self._ds = None
        self._key: str | None = None

    def _outputs(self) -> list[str]:
        out = []
        for n in self.names:
            out += {"kid": ["kid", "kid_std"], "is": ["is", "is_std"]}.get(n, [n])
        return out

    def _improved(self, value: float | None) -> bool:
        if value is None or value != value:  # None or NaN
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.best[1] else value < self.best_value  # type: ignore[index]

    @torch.no_grad()
    def __call__(self, step: int, epoch: int, logger: Any) -> bool:
        """Validate now; returns True when the best metric improved (save ``best`` then)."""
        if not self.enabled:
            return False
        from pairgan.metrics.suite import EvalContext, compute

        method, t = self.method, self.cfg.train
        if self._ds is None:
            self._ds = _dataset(self.cfg.data, self.cfg.data.path, self.split, t.val_max_items,
                                method.size_multiple, self.cfg.seed)
            if any(n in self.names for n in ("fid", "kid")):
                self._key = real_cache_key(self._ds, method.target_key, None)
        nets = dict(method.nets)
        modes = {k: [m.training for m in n.modules()] for k, n in nets.items()}
        buffers = {k: {b: v.detach().clone() for b, v in n.named_buffers()} for k, n in nets.items()}
        tic = time.perf_counter()
        try:
            method.set_inference_mode(method.inference_mode)
            translator = Translator(self.cfg, method, self.device, None)
            fakes, reals = [], []
            for i in range(len(self._ds)):
                item = self._ds[i]
                batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
                fakes.append(translator.translate_batch(batch, seed=self.cfg.seed)[0].cpu())
                reals.append(item[method.target_key])
            # Inception / LPIPS do not draw random numbers, but keep the training RNG out of reach anyway.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                ctx = EvalContext(fakes, reals, device=self.device, real_cache_key=self._key,
                                  seed=self.cfg.seed)
                scores, _ = compute(self.names, ctx)
        finally:
            for k, n in nets.items():
                for m, was in zip(n.modules(), modes[k]):
                    m.training = was
                for b, v in n.named_buffers():
                    if b in buffers[k]:
                        v.copy_(buffers[k][b])
        seconds = time.perf_counter() - tic
        values = {f"val/{k}": float(v) for k, v in scores.items()
                  if k != "count" and isinstance(v, (int, float)) and v == v}
        if logger is not None and values:
            logger.log(step, epoch, values)
        if self.best is None:
            return False
        value = scores.get(self.best[0])
        if not self._improved(value):
            return False
        self.best_value = float(value)  # type: ignore[arg-type]
        atomic_write_text(self.best_file, json.dumps({
            "metric": self.best[0], "direction": "max" if self.best[1] else "min", "value": self.best_value,
            "step": step, "epoch": epoch, "checkpoint": "checkpoints/best", "split": self.split,
            "count": scores.get("count"), "scores": {k: v for k, v in scores.items()}, "seconds": round(seconds, 2),
        }, indent=2, default=str) + "\n")
        return True

