"""The training loop: one readable place that owns data order, devices, precision, schedules,
checkpoints, logging and signals. It knows nothing about any one method: each method supplies
its networks, optimisers and ``train_step`` (see :mod:`pairgan.methods.base`).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pairgan.config import Config, save_config
from pairgan.methods.base import Method, StepContext
from pairgan.registry import lookup
from pairgan.train import checkpoint as ckpt
from pairgan.train.logging import RunLogger, console_line
from pairgan.train.schedules import make_schedule
from pairgan.visual import grid_to_uint8, make_grid, write_gallery


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved before stopping."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by signal {signum}; saved {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(deterministic: bool) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


class EpochBatchSampler(Sampler):
    """Batches of ``(epoch, index)`` keys in an order fixed by ``(seed, epoch)``.

    The permutation is a pure function of the seed and the epoch, and ``set_position`` lets a
    resumed run start in the middle of an epoch at exactly the batch where it stopped. Datasets
    seed their augmentation from the same key, so a sample never depends on worker processes.
    """

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start = epoch, start_batch

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch, 0x5A3B]).permutation(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.order(self.epoch)
        for b in range(self.start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(self.epoch, int(i)) for i in idx]


def build_method(cfg: Config, *, training: bool) -> Method:
    """The registered method of ``cfg.method`` with its networks built."""
    return lookup("method", cfg.method)(cfg.model, cfg.data, training=training)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class Trainer:
    """Trains ``cfg`` into ``run_dir``; ``resume=True`` continues from ``run_dir``'s latest checkpoint."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._signal: int | None = None

    # ----------------------------------------------------------------- setup
    def _check_data(self, size_multiple: int) -> None:
        from pairgan.data.check import check_dataset

        report = check_dataset(self.cfg.data, splits=[self.cfg.data.train_split], size_multiple=size_multiple)
        report.raise_if_failed()

    def _sample_batch(self, size_multiple: int) -> dict[str, Any] | None:
        """A fixed, un-augmented batch for the periodic sample grids (val split if present)."""
        from pairgan.data.datasets import build_dataset, split_exists

        d = self.cfg.data
        split = d.val_split if split_exists(d, d.val_split) else d.train_split
        ds = build_dataset(d, split, train=False, size_multiple=size_multiple, seed=self.cfg.seed)
        items = [ds[i] for i in range(min(4, len(ds)))]
        if not items:
            return None
        shapes = {tuple(it["A"].shape) for it in items}
        if len(shapes) > 1:  # different sizes cannot stack: keep those like the first
            items = [it for it in items if tuple(it["A"].shape) == tuple(items[0]["A"].shape)]
        return torch.utils.data.default_collate(items)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            if self._signal is not None:  # a second signal: stop at once
                raise KeyboardInterrupt
            self._signal = signum
            print(f"\nsignal {signum}: saving a checkpoint after this step, then stopping", file=sys.stderr)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return previous

    # ----------------------------------------------------------------- the loop
    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train until ``train.max_steps`` (or the epochs) are done; returns a summary.

        ``until_step`` stops earlier, at that step, with a checkpoint, as a time-limited job
        would; the schedule is still the full run's, so a later ``resume`` continues it exactly.
        """
        from pairgan.data.datasets import build_dataset

        cfg, t = self.cfg, self.cfg.train
        run_dir, ckpt_dir = self.run_dir, self.run_dir / "checkpoints"
        device = resolve_device(t.device)
        set_determinism(t.deterministic)
        seed_everything(cfg.seed)

        method = build_method(cfg, training=True)
        size_multiple = method.size_multiple
        if cfg.data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and (
            cfg.data.crop_size % size_multiple
        ):
            from pairgan.config import ConfigError

            raise ConfigError(
                f"data.crop_size {cfg.data.crop_size} is not a multiple of {size_multiple}, which "
                f"{cfg.method}'s generator needs (e.g. model.num_downs for a U-Net)"
            )
        if t.check_data:
            self._check_data(size_multiple)
        dataset = build_dataset(cfg.data, cfg.data.train_split, train=True, size_multiple=size_multiple, seed=cfg.seed)
        method.to(device)
        for net in method.nets.values():
            net.train()
        optimizers = method.configure_optimizers(t)
        base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()}
        scaler = torch.amp.GradScaler(device.type, enabled=(t.precision == "fp16"))
        schedule = make_schedule(t)

        sampler = EpochBatchSampler(len(dataset), t.batch_size, cfg.seed)
        steps_per_epoch = len(sampler)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=t.num_workers,
            persistent_workers=t.num_workers > 0,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        total_steps = t.max_steps if t.max_steps > 0 else steps_per_epoch * (t.n_epochs + t.n_epochs_decay)
        stop_step = min(total_steps, until_step) if until_step is not None else total_steps

        step, epoch, batch_in_epoch = 0, 0, 0
        if self.resume:
            latest = ckpt.resolve_checkpoint(run_dir)
            ckpt.load_weights(latest, dict(method.nets))
            state = ckpt.load_state(latest)
            for k, o in optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            if "scaler" in state and scaler.is_enabled():
                scaler.load_state_dict(state["scaler"])
            step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
            if state.get("data", {}).get("num_items", len(dataset)) != len(dataset):
                print(
                    f"warning: the data set now has {len(dataset)} items, the checkpoint was trained on "
                    f"{state['data']['num_items']}: the data order will differ from an uninterrupted run",
                    file=sys.stderr,
                )
            ckpt.set_rng_state(state["rng"])
            print(f"resumed from {latest} at step {step} (epoch {epoch}, batch {batch_in_epoch})", file=sys.stderr)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

        logger = RunLogger(run_dir, resume_step=step if self.resume else None)
        sample_batch = self._sample_batch(size_multiple)
        ctx = StepContext(optimizers, device, t.precision, scaler)
        previous_handlers = self._install_signals()

        def state_dict() -> dict[str, Any]:
            return {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": ckpt.rng_state(),
                "schedule": {"policy": schedule.policy, "unit": schedule.unit,
                             "factor": schedule.factor(schedule.position(epoch, step))},
                "data": {"seed": cfg.seed, "num_items": len(dataset), "steps_per_epoch": steps_per_epoch},
            }

        def save(name: str) -> Path:
            path = ckpt.save_checkpoint(ckpt_dir / name, cfg, dict(method.nets), state_dict())
            ckpt.point_latest(ckpt_dir, name)
            ckpt.prune_step_checkpoints(ckpt_dir, t.keep_last)
            return path

        def sample() -> None:
            if sample_batch is None:
                return
            batch = _to_device(sample_batch, device)
            # A forked RNG: drawing dropout masks for a picture must not change training randomness.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                columns = method.visuals(batch)
            for net in method.nets.values():
                net.train()
            grid = make_grid(columns)
            from PIL import Image

            (run_dir / "samples").mkdir(exist_ok=True)
            name = f"step_{step:08d}.png"
            tmp = run_dir / "samples" / f".{name}.tmp"
            Image.fromarray(grid_to_uint8(grid)).save(tmp, format="PNG")
            os.replace(tmp, run_dir / "samples" / name)
            logger.image("samples", step, grid)
            shots = sorted((run_dir / "samples").glob("step_*.png"), reverse=True)
            write_gallery(
                run_dir / "samples",
                [{"name": p.stem, "grid": p.name} for p in shots],
                ["grid"],
                title=f"{cfg.method} samples — {run_dir.name}",
                notes="Each grid: one row per sample; columns " + " | ".join(columns) + ".",
            )

        durations: list[float] = []
        window: dict[str, list[float]] = {}
        last_print, t_start = 0.0, time.perf_counter()
        progress_bar = None
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress_bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.2f} it/s"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            )
            task = progress_bar.add_task("train", total=total_steps, completed=step, epoch=epoch, rate=0.0, losses="")
            progress_bar.start()

        try:
            while step < stop_step:
                sampler.set_position(epoch, batch_in_epoch)
                for batch in loader:
                    tic = time.perf_counter()
                    factor = schedule.factor(schedule.position(epoch, step))
                    for k, o in optimizers.items():
                        for g, lr0 in zip(o.param_groups, base_lrs[k]):
                            g["lr"] = lr0 * factor
                    ctx.step, ctx.epoch = step, epoch
                    losses = method.train_step(_to_device(batch, device), ctx)
                    if scaler.is_enabled():
                        scaler.update()
                    step += 1
                    batch_in_epoch += 1
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    durations.append(time.perf_counter() - tic)
                    for k, v in losses.items():
                        window.setdefault(k, []).append(v)

                    if step % t.log_every == 0 or step == stop_step:
                        means = {k: float(np.mean(v)) for k, v in window.items()}
                        means["lr"] = base_lrs[next(iter(base_lrs))][0] * factor
                        logger.log(step, epoch, means)
                        window = {}
                        rate = 1.0 / statistics.median(durations[-50:])
                        if progress_bar is not None:
                            progress_bar.update(
                                task, completed=step, epoch=epoch, rate=rate,
                                losses=" ".join(f"{k}={v:.3f}" for k, v in means.items() if k != "lr"),
                            )
                        elif time.perf_counter() - last_print > 10 or step == stop_step:
                            last_print = time.perf_counter()
                            print(console_line(step, total_steps, epoch, means, rate), file=sys.stderr)
                    if t.sample_every and step % t.sample_every == 0:
                        sample()
                    if batch_in_epoch == steps_per_epoch:
                        epoch, batch_in_epoch = epoch + 1, 0
                        if t.save_epoch_every and epoch % t.save_epoch_every == 0:
                            save(f"epoch_{epoch:04d}")
                    if t.save_every and step % t.save_every == 0:
                        save(f"step_{step:08d}")
                    if self._signal is not None:
                        path = save(f"step_{step:08d}")
                        raise TrainingInterrupted(self._signal, path)
                    if step >= stop_step:
                        break
            final = save(f"step_{step:08d}")
            if t.sample_every:
                sample()
        finally:
            if progress_bar is not None:
                progress_bar.stop()
            for sig, h in previous_handlers.items():
                signal.signal(sig, h)
            logger.close()

        elapsed = time.perf_counter() - t_start
        summary = {
            "steps": step,
            "epochs": epoch,
            "seconds": round(elapsed, 2),
            "seconds_per_step_median": round(statistics.median(durations), 4) if durations else None,
            "device": str(device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "checkpoint": str(final),
        }
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def train(cfg: Config, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Train ``cfg`` into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(cfg, run_dir, resume=resume, progress=progress).fit()
