"""Validation during training: the validation split scored every ``train.val_every`` steps, and
the best checkpoint kept by ``train.best_metric``.

The split is translated with :func:`pairgan.evaluate.iter_split` and scored by
:mod:`pairgan.metrics.suite`, exactly as ``pairgan evaluate`` does it, with the networks the
metrics need loaded once, when training starts.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from pairgan.config import Config
from pairgan.data.datasets import split_exists
from pairgan.errors import ConfigError
from pairgan.evaluate import iter_split, load_metric_networks, real_cache_key, split_dataset
from pairgan.fsutil import atomic_write_text
from pairgan.infer import Translator
from pairgan.methods.base import Method
from pairgan.metrics.suite import EvalContext, compute, direction, parse_metrics

__all__ = ["Validator", "parse_best_metric"]

log = logging.getLogger(__name__)


def parse_best_metric(spec: str) -> tuple[str, bool] | None:
    """``train.best_metric`` -> (metric, higher is better) or None when empty.

    ``NAME`` takes the metric's own direction (``fid``, ``lpips``, ``l1``: lower; ``psnr``,
    ``ssim``, ``is``, ``seg_*``: higher); ``+NAME`` / ``-NAME`` say it explicitly (higher / lower
    is better), required for metrics of unknown direction."""
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

    def __init__(self, cfg: Config, method: Method, device: torch.device, run_dir: Path, *,
                 resume: bool = False) -> None:
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
            log.warning("train.val_every is set but the data set has no '%s' split (data.val_split); no validation",
                        self.split)
        # loaded now: a missing weights file stops here, not after hours of training
        self._networks = load_metric_networks(self.names, device)
        self.best_value: float | None = None
        self.best_file = self.run_dir / "best.json"
        if resume and self.best_file.is_file():
            try:
                self.best_value = json.loads(self.best_file.read_text()).get("value")
            except (OSError, json.JSONDecodeError):
                self.best_value = None
        self._ds: Any = None
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
        method, t = self.method, self.cfg.train
        if self._ds is None:
            self._ds = split_dataset(self.cfg.data, self.cfg.data.path, self.split, max_items=t.val_max_items,
                                     size_multiple=method.size_multiple, seed=self.cfg.seed)
            if any(n in self.names for n in ("fid", "kid")):
                self._key = real_cache_key(self._ds, method.target_key, None)
        nets = dict(method.nets)
        modes = {k: [m.training for m in n.modules()] for k, n in nets.items()}
        buffers = {k: {b: v.detach().clone() for b, v in n.named_buffers()} for k, n in nets.items()}
        tic = time.perf_counter()
        try:
            method.set_inference_mode(method.inference_mode)
            translator = Translator(self.cfg, method, self.device, None)
            translate = functools.partial(translator.translate_batch, seed=self.cfg.seed)
            fakes: list[torch.Tensor] = []
            reals: list[torch.Tensor] = []
            for part in iter_split(self._ds, translate, target_key=method.target_key):
                fakes += list(part.outputs)  # type: ignore[arg-type]
                reals += list(part.targets)  # type: ignore[arg-type]
            # Inception / LPIPS do not draw random numbers, but keep the training RNG out of reach anyway.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                ctx = EvalContext(fakes, reals, device=self.device, real_cache_key=self._key,
                                  seed=self.cfg.seed, **self._networks)
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
