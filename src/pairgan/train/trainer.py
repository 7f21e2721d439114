"""The training loop: one readable place that owns data order, devices, precision, schedules,
checkpoints, logging and signals. It knows nothing about any one method: each method supplies
its networks, optimisers and ``train_step`` (see :mod:`pairgan.methods.base`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from pairgan import checkpoint as ckpt
from pairgan.config import Config, save_config
from pairgan.errors import ConfigError
from pairgan.fsutil import atomic_write
from pairgan.methods.base import Method, StepContext
from pairgan.methods.build import build_method
from pairgan.runtime import resolve_device, seed_everything, set_determinism
from pairgan.train import distributed
from pairgan.train.distributed import env_info as dist_env
from pairgan.train.logging import RunLogger, console_line
from pairgan.train.schedules import make_schedule
from pairgan.train.validation import Validator
from pairgan.visual import grid_to_uint8, make_grid, write_gallery


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved before stopping."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by signal {signum}; saved {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


class EpochBatchSampler(Sampler):
    """This rank's batches of ``(epoch, index)`` keys, in an order fixed by ``(seed, epoch)``.

    The permutation is a pure function of the seed and the epoch; ``set_position`` lets a resumed
    run start in the middle of an epoch at exactly the batch where it stopped. Datasets seed
    their augmentation from the same key, so a sample never depends on worker processes.

    Under torchrun each *global* batch of ``batch_size * world_size`` consecutive items of the
    permutation is cut into ``world_size`` slices and rank ``r`` takes slice ``r``: together the
    ranks see exactly the batches one process with the global batch size would see. With more
    than one rank the epoch is padded by wrapping around so that every rank gets full batches.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, shuffle: bool = True, *, world_size: int = 1, rank: int = 0
    ) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.world_size, self.rank = world_size, rank
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start = epoch, start_batch

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def order(self, epoch: int) -> np.ndarray:
        order = np.random.default_rng([self.seed, epoch, 0x5A3B]).permutation(self.n) if self.shuffle else (
            np.arange(self.n)
        )
        pad = (-self.n) % self.global_batch if self.world_size > 1 else 0
        return np.concatenate([order, np.resize(order, pad)]) if pad else order

    def __len__(self) -> int:
        """Global batches per epoch."""
        return math.ceil(self.n / self.global_batch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.order(self.epoch)
        gb, b0 = self.global_batch, self.rank * self.batch_size
        for b in range(self.start, len(self)):
            chunk = order[b * gb : (b + 1) * gb]
            yield [(self.epoch, int(i)) for i in chunk[b0 : b0 + self.batch_size]]


class _BatchStream:
    """An endless stream of this rank's batches across epochs, tracking (epoch, batch in epoch)."""

    def __init__(self, loader: DataLoader, sampler: EpochBatchSampler, epoch: int, batch: int) -> None:
        self.loader, self.sampler, self.epoch, self.batch = loader, sampler, epoch, batch
        self._it: Iterator[Any] | None = None

    def next(self) -> Any:
        if self._it is None:
            self.sampler.set_position(self.epoch, self.batch)
            self._it = iter(self.loader)
        item = next(self._it)
        self.batch += 1
        if self.batch == len(self.sampler):
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
        return item


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
        #: The method being trained (set by :meth:`fit`; its networks hold the trained weights).
        self.method: Method | None = None

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
        def shapes(item: dict[str, Any]) -> tuple:
            return tuple((k, tuple(v.shape)) for k, v in item.items() if torch.is_tensor(v))

        # Items of different sizes cannot stack: keep those shaped like the first.
        items = [it for it in items if shapes(it) == shapes(items[0])]
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
        info = dist_env()
        if info.enabled and device.type == "cuda":
            device = torch.device("cuda", info.local_rank)
        info = distributed.init(device)
        main = info.is_main
        set_determinism(t.deterministic, tf32=t.tf32)
        seed_everything(cfg.seed)

        method = build_method(cfg, training=True)
        self.method = method
        size_multiple = method.size_multiple
        if cfg.data.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") and (
            cfg.data.crop_size % size_multiple
        ):
            raise ConfigError(
                f"data.crop_size {cfg.data.crop_size} is not a multiple of {size_multiple}, which "
                f"{cfg.method}'s generator needs (e.g. model.num_downs for a U-Net)"
            )
        if t.check_data:
            self._check_data(size_multiple)
        dataset = build_dataset(cfg.data, cfg.data.train_split, train=True, size_multiple=size_multiple, seed=cfg.seed)
        if info.enabled:
            for name in list(method.nets):
                method.nets[name] = distributed.convert_sync_batchnorm(method.nets[name], device)
        method.to(device)
        distributed.broadcast_modules(list(method.nets.values()))
        for net in method.nets.values():
            net.train()
        optimizers = method.configure_optimizers(t)
        base_lrs = {k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()}
        scaler = torch.amp.GradScaler(device.type, enabled=(t.precision == "fp16"))
        schedule = make_schedule(t)

        sampler = EpochBatchSampler(
            len(dataset), t.batch_size, cfg.seed, world_size=info.world_size, rank=info.rank
        )
        batches_per_epoch = len(sampler)  # global batches (micro-batches when accumulating)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=t.num_workers,
            persistent_workers=t.num_workers > 0,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        accumulate = t.accumulate
        total_steps = (
            t.max_steps
            if t.max_steps > 0
            else math.ceil(batches_per_epoch * (t.n_epochs + t.n_epochs_decay) / accumulate)
        )
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
            data_state = state.get("data", {})
            if data_state.get("num_items", len(dataset)) != len(dataset) and main:
                print(
                    f"warning: the data set now has {len(dataset)} items, the checkpoint was trained on "
                    f"{data_state['num_items']}: the data order will differ from an uninterrupted run",
                    file=sys.stderr,
                )
            if data_state.get("global_batch", sampler.global_batch) != sampler.global_batch:
                # A different number of processes or batch size: continue at the same sample.
                batch_in_epoch = min(data_state["samples_in_epoch"] // sampler.global_batch, batches_per_epoch - 1)
                if main:
                    print(
                        f"note: global batch {data_state['global_batch']} -> {sampler.global_batch}; "
                        f"continuing epoch {epoch} at sample {batch_in_epoch * sampler.global_batch}",
                        file=sys.stderr,
                    )
            if info.rank == 0:
                ckpt.set_rng_state(state["rng"])
            else:
                seed_everything(hash((cfg.seed, step, info.rank)) % 2**31)
            if main:
                print(f"resumed from {latest} at step {step} (epoch {epoch}, batch {batch_in_epoch})", file=sys.stderr)
        else:
            if main:
                run_dir.mkdir(parents=True, exist_ok=True)
            if info.rank > 0:
                # Ranks share the initial weights (broadcast above) but not their noise (dropout).
                seed_everything(cfg.seed + 7919 * info.rank)
        if main:
            save_config(cfg, run_dir / "config.yaml")

        logger = RunLogger(run_dir, resume_step=step if self.resume else None) if main else None
        sample_batch = self._sample_batch(size_multiple) if main else None
        validator = None
        if main and t.val_every > 0:  # val/<metric> scores and the best checkpoint
            validator = Validator(cfg, method, device, run_dir, resume=self.resume)
        ctx = StepContext(
            optimizers, device, t.precision, scaler, accumulate=accumulate, world_size=info.world_size
        )
        previous_handlers = self._install_signals()
        stream = _BatchStream(loader, sampler, epoch, batch_in_epoch)

        def state_dict() -> dict[str, Any]:
            return {
                "step": step,
                "epoch": stream.epoch,
                "batch_in_epoch": stream.batch,
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "rng": ckpt.rng_state(),
                "schedule": {"policy": schedule.policy, "unit": schedule.unit,
                             "factor": schedule.factor(schedule.position(stream.epoch, step))},
                "data": {
                    "seed": cfg.seed,
                    "num_items": len(dataset),
                    "batches_per_epoch": batches_per_epoch,
                    "global_batch": sampler.global_batch,
                    "samples_in_epoch": stream.batch * sampler.global_batch,
                    "world_size": info.world_size,
                },
            }

        def save(name: str) -> Path | None:
            if not main:
                return None
            path = ckpt.save_checkpoint(ckpt_dir / name, cfg, dict(method.nets), state_dict())
            ckpt.point_latest(ckpt_dir, name)
            ckpt.prune_step_checkpoints(ckpt_dir, t.keep_last)
            return path

        def sample() -> None:
            if sample_batch is None or logger is None:
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
            atomic_write(run_dir / "samples" / name, lambda tmp: Image.fromarray(grid_to_uint8(grid)).save(tmp, format="PNG"))
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
        if self.progress and main:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress_bar = Progress(
                TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:.2f} it/s"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            )
            task = progress_bar.add_task("train", total=total_steps, completed=step, epoch=epoch, rate=0.0, losses="")
            progress_bar.start()

        final: Path | None = None
        try:
            while step < stop_step:
                tic = time.perf_counter()
                epoch = stream.epoch
                factor = schedule.factor(schedule.position(epoch, step))
                for k, o in optimizers.items():
                    for g, lr0 in zip(o.param_groups, base_lrs[k]):
                        g["lr"] = lr0 * factor
                ctx.step, ctx.epoch = step, epoch
                for micro in range(accumulate):
                    ctx.micro = micro
                    losses = method.train_step(_to_device(stream.next(), device), ctx)
                    for k, v in losses.items():
                        window.setdefault(k, []).append(v)
                if scaler.is_enabled():
                    scaler.update()
                step += 1
                if device.type == "cuda":
                    torch.cuda.synchronize()
                durations.append(time.perf_counter() - tic)

                if step % t.log_every == 0 or step == stop_step:
                    means = {k: float(np.mean(v)) for k, v in window.items()}
                    means = distributed.mean_across_ranks(means, device) if info.enabled else means
                    means["lr"] = base_lrs[next(iter(base_lrs))][0] * factor
                    window = {}
                    rate = 1.0 / statistics.median(durations[-50:])
                    if logger is not None:
                        logger.log(step, epoch, means)
                    if progress_bar is not None:
                        progress_bar.update(
                            task, completed=step, epoch=stream.epoch, rate=rate,
                            losses=" ".join(f"{k}={v:.3f}" for k, v in means.items() if k != "lr"),
                        )
                    elif main and (time.perf_counter() - last_print > 10 or step == stop_step):
                        last_print = time.perf_counter()
                        print(console_line(step, total_steps, epoch, means, rate), file=sys.stderr)
                if t.sample_every and step % t.sample_every == 0:
                    sample()
                if validator is not None and step % t.val_every == 0 and validator(step, stream.epoch, logger):
                    save("best")
                for finished in range(epoch + 1, stream.epoch + 1):
                    if t.save_epoch_every and finished % t.save_epoch_every == 0:
                        save(f"epoch_{finished:04d}")
                if t.save_every and step % t.save_every == 0:
                    save(f"step_{step:08d}")
                stop = self._signal is not None
                if info.enabled:
                    stop = distributed.any_rank(stop, device)
                if stop:
                    path = save(f"step_{step:08d}")
                    raise TrainingInterrupted(self._signal or signal.SIGTERM, path or ckpt_dir)
            final = save(f"step_{step:08d}")
            if t.sample_every:
                sample()
        finally:
            if progress_bar is not None:
                progress_bar.stop()
            for sig, h in previous_handlers.items():
                signal.signal(sig, h)
            if logger is not None:
                logger.close()

        elapsed = time.perf_counter() - t_start
        summary = {
            "steps": step,
            "epochs": stream.epoch,
            "seconds": round(elapsed, 2),
            "seconds_per_step_median": round(statistics.median(durations), 4) if durations else None,
            "device": str(device),
            "world_size": info.world_size,
            "global_batch": sampler.global_batch * accumulate,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "checkpoint": str(final),
        }
        if main:
            (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def train(cfg: Config, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool | None = None) -> dict:
    """Train ``cfg`` into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(cfg, run_dir, resume=resume, progress=progress).fit()
