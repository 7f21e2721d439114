"""Run logging: history.jsonl, TensorBoard scalars and images, and a losses.png plot."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from pairgan.fsutil import atomic_write, atomic_write_text
from pairgan.trackers import open_trackers

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"


class RunLogger:
    """Append-only step log (``history.jsonl``) mirrored to the run's experiment trackers
    (``train.loggers``: TensorBoard, W&B, MLflow; :mod:`pairgan.trackers`).

    On resume from step ``s`` the lines logged after ``s`` (by the run that was killed) are
    dropped, so the history always describes the weights in the checkpoints; TensorBoard purges
    the same steps and W&B / MLflow continue their runs.
    """

    def __init__(self, run_dir: Path, *, resume_step: int | None = None, loggers: Sequence[str] = ("tensorboard",),
                 config: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.history_path = self.run_dir / HISTORY
        if resume_step is not None and self.history_path.exists():
            kept = [
                line
                for line in self.history_path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(self.history_path, "".join(line + "\n" for line in kept))
        elif resume_step is None and self.history_path.exists():
            self.history_path.unlink()
        self._file = open(self.history_path, "a")
        self.trackers = open_trackers(loggers, self.run_dir, config=config, settings=settings or {},
                                      resume_step=resume_step)

    def log(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        record = {"step": step, "epoch": epoch, **{k: float(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for tracker in self.trackers:
            tracker.scalars(step, scalars)

    def image(self, tag: str, step: int, grid: torch.Tensor) -> None:
        """``grid``: CHW float in [0, 1]."""
        for tracker in self.trackers:
            tracker.image(tag, step, grid.clamp(0, 1))

    def artifact(self, folder: Path, name: str = "checkpoint") -> None:
        """The trackers that keep files get ``folder`` (the final checkpoint)."""
        for tracker in self.trackers:
            tracker.artifact(Path(folder), name)

    def close(self) -> None:
        self._file.close()
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:  # noqa: BLE001 - a tracker must never fail a finished training
                log.warning("warning: closing the %s logger: %s", tracker.name, exc)
        try:
            plot_history(self.history_path, self.run_dir / "losses.png")
        except Exception as exc:  # a plot must never fail a finished training
            log.warning("warning: could not plot losses: %s", exc)


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(y) < n:
        return y
    kernel = np.ones(n) / n
    head = np.array([y[: i + 1].mean() for i in range(n - 1)])
    return np.concatenate([head, np.convolve(y, kernel, mode="valid")])


def plot_history(history: Path, out_png: Path, width: int = 960, panel_h: int = 180) -> Path | None:
    """Draw every logged scalar over steps (one panel each, lightly smoothed) into ``out_png``.

    Drawn with Pillow so that plotting needs no extra dependency.
    """
    records = [json.loads(line) for line in Path(history).read_text().splitlines() if line.strip()]
    if not records:
        return None
    keys = [k for k in records[0] if k not in ("step", "epoch")]
    for r in records[1:]:
        keys += [k for k in r if k not in ("step", "epoch") and k not in keys]
    if not keys:
        return None
    margin_l, margin_r, margin_t, margin_b = 70, 20, 24, 22
    img = Image.new("RGB", (width, panel_h * len(keys)), "white")
    draw = ImageDraw.Draw(img)
    for i, key in enumerate(keys):
        pts = [(r["step"], r[key]) for r in records if key in r and math.isfinite(r[key])]
        top = i * panel_h
        x0, x1 = margin_l, width - margin_r
        y0, y1 = top + margin_t, top + panel_h - margin_b
        draw.rectangle([x0, y0, x1, y1], outline=(180, 180, 180))
        draw.text((x0, top + 6), key, fill=(0, 0, 0))
        if not pts:
            continue
        xs = np.array([p[0] for p in pts], dtype=float)
        ys = _smooth(np.array([p[1] for p in pts], dtype=float), max(1, len(pts) // 50))
        xmin, xmax = xs.min(), max(xs.max(), xs.min() + 1)
        ymin, ymax = float(ys.min()), float(ys.max())
        if ymax - ymin < 1e-12:
            ymin, ymax = ymin - 0.5, ymax + 0.5
        draw.text((4, y0), f"{ymax:.3g}", fill=(80, 80, 80))
        draw.text((4, y1 - 10), f"{ymin:.3g}", fill=(80, 80, 80))
        draw.text((x1 - 80, y1 + 4), f"step {int(xmax)}", fill=(80, 80, 80))
        coords = [
            (x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0))
            for x, y in zip(xs, ys)
        ]
        if len(coords) == 1:
            coords = coords * 2
        draw.line(coords, fill=_COLOURS[i % len(_COLOURS)], width=2)
    atomic_write(out_png, lambda tmp: img.save(tmp, format="PNG"))
    return out_png


def console_line(step: int, total: int | None, epoch: int, scalars: dict[str, Any], rate: float) -> str:
    """One plain progress line for non-interactive output (CI logs, files)."""
    losses = " ".join(f"{k}={v:.4g}" for k, v in scalars.items())
    tot = f"/{total}" if total else ""
    return f"epoch {epoch} step {step}{tot} {rate:.2f} it/s {losses}"
