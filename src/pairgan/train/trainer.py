"""The training loop: one readable place that owns data order, devices, precision, schedules,
checkpoints, logging and signals. It knows nothing about any one method: each method supplies
its networks, optimisers and ``train_step`` (see :mod:`pairgan.methods.base`).

:meth:`Trainer.fit` reads as the loop it is; each phase it calls (setup, restore, one
optimisation step, progress, samples, validation, checkpoints, summary) is a method of its own
working on a :class:`RunState`, the one object that holds what a run builds and advances.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from torch.utils.data import Dataset

from pairgan import checkpoint as ckpt
from pairgan.config import Config, save_config
from pairgan.data.check import check_dataset
from pairgan.data.datasets import build_dataset, split_exists
from pairgan.data.shards import first_items
from pairgan.data.profile import InputProfile, profile_inputs
from pairgan.errors import CheckpointError, ConfigError
from pairgan.fsutil import atomic_write, atomic_write_text
from pairgan.methods.base import Method, StepContext
from pairgan.methods.build import build_method
from pairgan.methods.ema import GeneratorEMA
from pairgan.metrics.card import environment_info
from pairgan.runtime import resolve_device, seed_everything, set_determinism
from pairgan.train import distributed
from pairgan.train.distributed import DistInfo
from pairgan.trackers import check_available
from pairgan.train.logging import RunLogger, console_line
from pairgan.train.sampler import BatchStream, EpochOrder, build_loader
from pairgan.train.budget import WallClockBudget
from pairgan.train.schedules import Schedule, make_schedule
from pairgan.train.validation import Validator
from pairgan.visual import grid_to_uint8, make_grid, write_gallery

log = logging.getLogger(__name__)

#: Without a progress bar, a plain progress line is logged at most this often (and at the end).
CONSOLE_EVERY_S = 10.0
#: A second stop signal stops at once, without a checkpoint, unless it comes within this many
#: seconds of the first: then it is the same request delivered twice, as when a supervisor
#: signals every process of a job (systemd's default control-group kill mode does; a batch
#: scheduler may) while torchrun passes the signal on to its workers as well.
REPEATED_SIGNAL_S = 2.0


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved before stopping."""

    def __init__(self, signum: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by signal {signum}; saved {checkpoint}")
        self.signum = signum
        self.checkpoint = checkpoint


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _tensor_shapes(item: dict[str, Any]) -> tuple:
    return tuple((k, tuple(v.shape)) for k, v in item.items() if torch.is_tensor(v))


@dataclass
class RunState:
    """What one :meth:`Trainer.fit` builds (setup) and advances (the loop)."""

    device: torch.device
    dist: DistInfo
    method: Method
    dataset: Dataset
    #: The data order: an EpochBatchSampler over a folder, or a shard stream's own order.
    sampler: EpochOrder
    stream: BatchStream
    optimizers: dict[str, torch.optim.Optimizer]
    #: Each optimiser's per-group learning rates before the schedule's factor.
    base_lrs: dict[str, list[float]]
    scaler: torch.amp.GradScaler
    schedule: Schedule
    ctx: StepContext
    #: The run's length (the schedule's) and where this call stops (``until_step``).
    total_steps: int
    stop_step: int
    #: Optimisation steps done.
    step: int = 0
    #: The epoch the last step started in (``stream.epoch`` is where the next one starts).
    epoch: int = 0
    #: The LR factor of the last step.
    factor: float = 1.0
    #: Rank 0's outputs (``None`` on other ranks and where switched off).
    logger: RunLogger | None = None
    sample_batch: dict[str, Any] | None = None
    validator: Any = None
    progress: Progress | None = None
    progress_task: TaskID | None = None
    #: Losses since the last log line, seconds per step, and when the console line last went out.
    window: dict[str, list[float]] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    last_console: float = 0.0
    started: float = 0.0
    #: Training seconds of the run's earlier sessions (resumed runs; None when the checkpoint
    #: resumed from predates the record, so the run's total is unknown).
    seconds_before: float | None = 0.0
    final: Path | None = None
    #: ``train.max_minutes`` (None without a budget), and the step this session started at.
    budget: WallClockBudget | None = None
    first_step: int = 0
    #: Until_step of :meth:`Trainer.fit` (None: the run's end).
    until_step: int | None = None
    #: The generator-side networks' moving average (``train.ema``; None when off).
    ema: GeneratorEMA | None = None

    @property
    def main(self) -> bool:
        return self.dist.is_main


class Trainer:
    """Trains ``cfg`` into ``run_dir``; ``resume=True`` continues from ``run_dir``'s latest checkpoint
    (``resume_from``: from that checkpoint folder of the run instead). A damaged checkpoint to resume
    from is skipped for the newest complete older one, with a warning naming both."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        resume_from: str | os.PathLike | None = None,
        progress: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume or resume_from is not None
        #: The checkpoint folder to continue from (default: the run's latest).
        self.resume_from = Path(resume_from) if resume_from is not None else None
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._signal: int | None = None
        self._signal_at = 0.0
        #: The method being trained (set by :meth:`fit`; its networks hold the trained weights).
        self.method: Method | None = None
        #: The training inputs' profile, saved with every checkpoint (rank 0; set up by :meth:`fit`).
        self.input_profile: InputProfile | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # ----------------------------------------------------------------- the loop
    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train until ``train.max_steps`` (or the epochs) are done; returns a summary.

        ``until_step`` stops earlier, at that step, with a checkpoint, as a time-limited job
        would; the schedule is still the full run's, so a later ``resume`` continues it exactly.
        """
        t = self.cfg.train
        run = self._setup(until_step)
        if self.resume:
            self._restore(run)
        else:
            self._start_fresh(run)
        self._open_outputs(run)
        run.validator = self._make_validator(run)
        previous_handlers = self._install_signals()
        try:
            self._start_progress(run)
            while run.step < run.stop_step:
                self._optimisation_step(run)
                if run.step % t.log_every == 0 or run.step == run.stop_step:
                    self._report_progress(run)
                if t.sample_every and run.step % t.sample_every == 0:
                    self._write_samples(run)
                if run.validator is not None and run.step % t.val_every == 0:
                    self._validate(run)
                self._save_scheduled_checkpoints(run)
                self._stop_if_signalled(run)
                self._apply_budget(run)
            run.final = self._save(run, f"step_{run.step:08d}")
            if t.sample_every:
                self._write_samples(run)
            if run.logger is not None and run.final is not None and run.step >= run.stop_step:
                run.logger.artifact(run.final)
        finally:
            self._close(run, previous_handlers)
        return self._summary(run)

    # ----------------------------------------------------------------- setup
    def _setup(self, until_step: int | None) -> RunState:
        """Process, method, data and optimisers, in the order that fixes every random draw."""
        cfg, t = self.cfg, self.cfg.train
        device, info = self._setup_process()
        if info.is_main:
            check_available(t.loggers)  # a missing W&B / MLflow says so before any work
            ckpt.clean_leftovers(self.checkpoint_dir)
        method = self._build_method()
        dataset = self._build_train_dataset(method.size_multiple)
        self.input_profile = profile_inputs(dataset) if info.is_main else None
        self._place_method(method, device, info)
        ema = None
        if t.ema > 0:
            ema = GeneratorEMA({n: method.nets[n] for n in method.ema_net_names()}, t.ema, t.ema_start, t.ema_rampup)
            if info.is_main:
                log.info("ema: averaging %s with decay %s from step %d%s; samples, validation and inference use "
                         "the averaged weights", ", ".join(ema.names), t.ema, t.ema_start,
                         f" (half-life at most {t.ema_rampup:g} of the steps done)" if t.ema_rampup > 0 else "")
        optimizers = method.configure_optimizers(t)
        scaler = torch.amp.GradScaler(device.type, enabled=(t.precision == "fp16"))
        loader, sampler = build_loader(dataset, batch_size=t.batch_size, seed=cfg.seed, shuffle=cfg.data.shuffle,
                                       world_size=info.world_size, rank=info.rank, num_workers=t.num_workers,
                                       pin_memory=device.type == "cuda")
        # len(sampler): global batches per epoch (micro-batches when accumulating).
        total_steps = (
            t.max_steps if t.max_steps > 0 else math.ceil(len(sampler) * (t.n_epochs + t.n_epochs_decay) / t.accumulate)
        )
        return RunState(
            device=device,
            dist=info,
            method=method,
            dataset=dataset,
            sampler=sampler,
            stream=BatchStream(loader, sampler, 0, 0),
            optimizers=optimizers,
            base_lrs={k: [g["lr"] for g in o.param_groups] for k, o in optimizers.items()},
            scaler=scaler,
            schedule=make_schedule(t),
            ctx=StepContext(optimizers, device, t.precision, scaler, accumulate=t.accumulate,
                            world_size=info.world_size, average_gradients=distributed.average_gradients),
            total_steps=total_steps,
            stop_step=min(total_steps, until_step) if until_step is not None else total_steps,
            budget=WallClockBudget(t.max_minutes * 60.0) if t.max_minutes > 0 else None,
            until_step=until_step,
            ema=ema,
        )

    def _setup_process(self) -> tuple[torch.device, DistInfo]:
        """The device, the process group under torchrun, determinism and the seed."""
        t = self.cfg.train
        device = resolve_device(t.device)
        launched = distributed.env_info()
        if launched.enabled and device.type == "cuda":
            device = torch.device("cuda", launched.local_rank)
        info = distributed.init(device)
        set_determinism(t.deterministic, tf32=t.tf32)
        seed_everything(self.cfg.seed)
        return device, info

    def _build_method(self) -> Method:
        cfg = self.cfg
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
        return method

    def _build_train_dataset(self, size_multiple: int) -> Dataset:
        cfg = self.cfg
        if cfg.train.check_data:
            check_dataset(cfg.data, splits=[cfg.data.train_split], size_multiple=size_multiple).raise_if_failed()
        return build_dataset(cfg.data, cfg.data.train_split, train=True, size_multiple=size_multiple, seed=cfg.seed)

    @staticmethod
    def _place_method(method: Method, device: torch.device, info: DistInfo) -> None:
        """Networks on the device, in train mode, with rank 0's initial weights on every rank."""
        if info.enabled:
            for name in list(method.nets):
                method.nets[name] = distributed.convert_sync_batchnorm(method.nets[name], device)
        method.to(device)
        distributed.broadcast_modules(list(method.nets.values()))
        for net in method.nets.values():
            net.train()

    # ----------------------------------------------------------------- start or resume
    def _start_fresh(self, run: RunState) -> None:
        if run.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if run.dist.rank > 0:
            # Ranks share the initial weights (broadcast above) but not their noise (dropout).
            seed_everything(self.cfg.seed + 7919 * run.dist.rank)

    def _restore(self, run: RunState) -> None:
        """Weights, optimiser, scaler, position and RNG from the run folder's latest checkpoint."""
        latest = self._checkpoint_to_resume(run)
        ckpt.load_weights(latest, dict(run.method.nets))
        if run.ema is not None:
            if set(run.ema.names) <= set(ckpt.ema_names(latest)):
                ckpt.load_weights(latest, run.ema.nets, ema=True)
            else:
                run.ema.reset(run.method.nets)
                if run.main:
                    log.warning("warning: %s holds no EMA weights (trained without train.ema): the average starts "
                                "from its weights", latest)
        state = ckpt.load_state(latest)
        for k, o in run.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        if "scaler" in state and run.scaler.is_enabled():
            run.scaler.load_state_dict(state["scaler"])
        run.step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        data_state = state.get("data", {})
        num_items, global_batch = len(run.dataset), run.sampler.global_batch
        if data_state.get("num_items", num_items) != num_items and run.main:
            log.warning(
                "warning: the data set now has %d items, the checkpoint was trained on %s: "
                "the data order will differ from an uninterrupted run", num_items, data_state["num_items"],
            )
        order_now = run.sampler.describe()
        order_then = data_state.get("order", order_now)
        if order_then != order_now and "shards" in (order_then.get("kind"), order_now.get("kind")):
            # A shard stream's slots (ranks x loader workers) changed: no position of the new
            # layout holds the same samples, so continue at the same share of the epoch.
            then = int(data_state.get("batches_per_epoch") or len(run.sampler))
            batch_in_epoch = min(batch_in_epoch * len(run.sampler) // max(1, then), len(run.sampler) - 1)
            if run.main:
                log.warning(
                    "warning: the data order changed (%s -> %s): epoch %s continues at batch %d of %d with other "
                    "samples than an uninterrupted run (some seen twice, some not at all); later epochs are exact",
                    order_then, order_now, epoch, batch_in_epoch, len(run.sampler),
                )
        elif data_state.get("global_batch", global_batch) != global_batch:
            # A different number of processes or batch size: continue at the same sample.
            batch_in_epoch = min(data_state["samples_in_epoch"] // global_batch, len(run.sampler) - 1)
            if run.main:
                log.info(
                    "note: global batch %s -> %d; continuing epoch %s at sample %s",
                    data_state["global_batch"], global_batch, epoch, batch_in_epoch * global_batch,
                )
        run.epoch = run.stream.epoch = epoch
        run.stream.batch = batch_in_epoch
        run.seconds_before = state.get("train_seconds")
        budget_state = state.get("budget")
        if run.budget is not None and budget_state:
            run.budget.spent_before = float(budget_state.get("spent_s", 0.0))
            if budget_state.get("estimated_steps") is not None:
                self._set_length(run, int(budget_state["estimated_steps"]))
                # a resumed run keeps its schedule: no new calibration or refinement
                run.budget.refined = True
        ranks = state.get("rng_ranks")
        if ranks is not None and len(ranks) == run.dist.world_size:
            ckpt.set_rng_state(ranks[run.dist.rank])  # every rank's own noise (dropout) continues exactly
        elif run.dist.rank == 0:
            ckpt.set_rng_state(state["rng"])
        else:
            # Another number of processes (or a checkpoint that kept rank 0's state only): fresh
            # noise for this rank, so the run is not bitwise the uninterrupted one where it draws any.
            seed_everything(hash((self.cfg.seed, run.step, run.dist.rank)) % 2**31)
        if run.main:
            log.info("resumed from %s at step %s (epoch %s, batch %s)", latest, run.step, epoch, batch_in_epoch)

    def _checkpoint_to_resume(self, run: RunState) -> Path:
        """``resume_from`` or the run's latest checkpoint; when one of its files is damaged, the
        newest complete older ``step_*`` (said in a warning naming both), else the error."""
        chosen = self.resume_from or ckpt.resolve_checkpoint(self.run_dir)
        bad = ckpt.damage(chosen)
        if bad is None:
            return chosen
        path, problem = bad
        fallback = ckpt.newest_complete(chosen.parent, before=chosen) if ckpt.run_of(chosen) else None
        if fallback is None:
            if problem == "missing":
                ckpt.load_state(chosen)  # its own message: an inference-only checkpoint
            raise ckpt.CorruptCheckpoint(path, problem, None)
        if run.main:
            log.warning("warning: %s: %s; resuming from the newest complete older checkpoint, %s",
                        path, problem, fallback)
        return fallback

    def _open_outputs(self, run: RunState) -> None:
        """Rank 0: the run's config.yaml, its step log and the fixed batch for sample grids."""
        if not run.main:
            return
        save_config(self.cfg, self.run_dir / "config.yaml")
        t = self.cfg.train
        run.logger = RunLogger(self.run_dir, resume_step=run.step if self.resume else None, loggers=t.loggers,
                               config=self.cfg.to_dict(),
                               settings={"wandb_project": t.wandb_project, "wandb_entity": t.wandb_entity,
                                         "mlflow_tracking_uri": t.mlflow_tracking_uri,
                                         "mlflow_experiment": t.mlflow_experiment})
        run.sample_batch = self._sample_batch(run.method.size_multiple)

    def _make_validator(self, run: RunState) -> Any:
        """Rank 0 with ``train.val_every``: val/<metric> scores and the best checkpoint."""
        if not (run.main and self.cfg.train.val_every > 0):
            return None
        return Validator(self.cfg, run.method, run.device, self.run_dir, resume=self.resume)

    def _sample_batch(self, size_multiple: int) -> dict[str, Any] | None:
        """A fixed, un-augmented batch for the periodic sample grids (val split if present)."""
        d = self.cfg.data
        split = d.val_split if split_exists(d, d.val_split) else d.train_split
        ds = build_dataset(d, split, train=False, size_multiple=size_multiple, seed=self.cfg.seed)
        items = first_items(ds, 4)
        if not items:
            return None
        # Items of different sizes cannot stack: keep those shaped like the first.
        items = [it for it in items if _tensor_shapes(it) == _tensor_shapes(items[0])]
        return torch.utils.data.default_collate(items)

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            now = time.monotonic()
            if self._signal is not None:
                if now - self._signal_at < REPEATED_SIGNAL_S:  # the first one again
                    return
                raise KeyboardInterrupt  # a second signal: stop at once
            self._signal, self._signal_at = signum, now
            log.warning("signal %d: saving a checkpoint after this step, then stopping", signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: signals stay as they are
                pass
        return previous

    def _start_progress(self, run: RunState) -> None:
        """Start the clock and, when asked for (an interactive terminal), rank 0's progress bar."""
        run.started = time.perf_counter()
        run.first_step = run.step
        if run.budget is not None:
            run.budget.start()
        if not (self.progress and run.main):
            return
        run.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} it/s"), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
        )
        run.progress_task = run.progress.add_task(
            "train", total=run.total_steps, completed=run.step, epoch=run.epoch, rate=0.0, losses=""
        )
        run.progress.start()

    # ----------------------------------------------------------------- one step and what follows it
    def _optimisation_step(self, run: RunState) -> None:
        """One optimiser step at the scheduled LR over ``train.accumulate`` micro-batches."""
        tic = time.perf_counter()
        run.epoch = run.stream.epoch
        run.factor = run.schedule.factor(run.schedule.position(run.epoch, run.step))
        for k, o in run.optimizers.items():
            for g, lr0 in zip(o.param_groups, run.base_lrs[k]):
                g["lr"] = lr0 * run.factor
        run.ctx.step, run.ctx.epoch = run.step, run.epoch
        for micro in range(self.cfg.train.accumulate):
            run.ctx.micro = micro
            losses = run.method.train_step(_to_device(run.stream.next(), run.device), run.ctx)
            for k, v in losses.items():
                run.window.setdefault(k, []).append(v)
        if run.scaler.is_enabled():
            run.scaler.update()
        run.step += 1
        if run.ema is not None:
            run.ema.update(run.method.nets, run.step)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        run.durations.append(time.perf_counter() - tic)

    def _report_progress(self, run: RunState) -> None:
        """Mean losses since the last report (over all ranks) to the step log and the progress bar
        or, without one, a plain line every :data:`CONSOLE_EVERY_S` seconds."""
        means = {k: float(np.mean(v)) for k, v in run.window.items()}
        means = distributed.mean_across_ranks(means, run.device) if run.dist.enabled else means
        means["lr"] = run.base_lrs[next(iter(run.base_lrs))][0] * run.factor
        run.window = {}
        rate = 1.0 / statistics.median(run.durations[-50:])
        if run.logger is not None:
            run.logger.log(run.step, run.epoch, means)
        if run.progress is not None:
            run.progress.update(
                run.progress_task, completed=run.step, epoch=run.stream.epoch, rate=rate,
                losses=" ".join(f"{k}={v:.3f}" for k, v in means.items() if k != "lr"),
            )
        elif run.main and (time.perf_counter() - run.last_console > CONSOLE_EVERY_S or run.step == run.stop_step):
            run.last_console = time.perf_counter()
            log.info("%s", console_line(run.step, run.total_steps, run.epoch, means, rate))

    def _write_samples(self, run: RunState) -> None:
        """Rank 0: the sample batch's visuals as ``samples/step_*.png``, in TensorBoard and the gallery."""
        if run.sample_batch is None or run.logger is None:
            return
        batch = _to_device(run.sample_batch, run.device)
        # A forked RNG: drawing dropout masks for a picture must not change training randomness.
        with torch.random.fork_rng(devices=[run.device] if run.device.type == "cuda" else []), self._ema_applied(run):
            columns = run.method.visuals(batch)
        for net in run.method.nets.values():
            net.train()
        grid = make_grid(columns)
        samples = self.run_dir / "samples"
        samples.mkdir(exist_ok=True)
        name = f"step_{run.step:08d}.png"
        atomic_write(samples / name, lambda tmp: Image.fromarray(grid_to_uint8(grid)).save(tmp, format="PNG"))
        run.logger.image("samples", run.step, grid)
        shots = sorted(samples.glob("step_*.png"), reverse=True)
        write_gallery(
            samples,
            [{"name": p.stem, "grid": p.name} for p in shots],
            ["grid"],
            title=f"{self.cfg.method} samples — {self.run_dir.name}",
            notes="Each grid: one row per sample; columns " + " | ".join(columns) + ".",
        )

    def _validate(self, run: RunState) -> None:
        """Score the validation split; a new best score saves the checkpoint ``best``."""
        with self._ema_applied(run):
            better = run.validator(run.step, run.stream.epoch, run.logger)
        if better:
            self._save(run, "best", every_rank=False)  # validation runs on rank 0 alone

    @staticmethod
    def _ema_applied(run: RunState) -> Any:
        """The networks hold their moving average within the block (with ``train.ema``)."""
        return run.ema.applied(run.method.nets) if run.ema is not None else contextlib.nullcontext()

    def _save_scheduled_checkpoints(self, run: RunState) -> None:
        """``epoch_*`` for every epoch this step finished (``train.save_epoch_every``) and
        ``step_*`` every ``train.save_every`` steps."""
        t = self.cfg.train
        for finished in range(run.epoch + 1, run.stream.epoch + 1):
            if t.save_epoch_every and finished % t.save_epoch_every == 0:
                self._save(run, f"epoch_{finished:04d}")
        if t.save_every and run.step % t.save_every == 0:
            self._save(run, f"step_{run.step:08d}")

    def _set_length(self, run: RunState, total_steps: int) -> None:
        """The run's length becomes ``total_steps`` (a budget's estimate): schedule and stop step.
        An explicit ``train.max_steps`` still caps it."""
        t = self.cfg.train
        if t.max_steps > 0:
            total_steps = min(total_steps, t.max_steps)
        total_steps = max(total_steps, run.step)
        assert run.budget is not None
        run.budget.estimated_steps = total_steps
        run.schedule = make_schedule(dataclasses.replace(t, max_steps=max(total_steps, 1)))
        run.total_steps = total_steps
        run.stop_step = min(total_steps, run.until_step) if run.until_step is not None else total_steps
        if run.progress is not None:
            run.progress.update(run.progress_task, total=total_steps)

    def _apply_budget(self, run: RunState) -> None:
        """``train.max_minutes``: once calibrated, run the schedule over the steps the budget
        allows; stop (the loop then saves the final checkpoint) when the time is spent."""
        budget = run.budget
        if budget is None:
            return
        estimate = budget.observe(run.step, run.first_step)
        if estimate is not None:
            if run.dist.enabled:  # every rank must agree on the schedule and the end
                estimate = round(distributed.mean_across_ranks({"steps": float(estimate)}, run.device)["steps"])
            self._set_length(run, estimate)
            if run.main:
                log.info("budget %.1f min: about %d steps at this speed (%s); the LR schedule now runs over %d steps",
                         budget.seconds / 60, estimate, "refined" if budget.refined else "first estimate",
                         run.total_steps)
        spent = budget.exhausted()
        if run.dist.enabled:
            spent = distributed.any_rank(spent, run.device)
        if spent and run.step < run.stop_step:
            if run.main:
                log.info("budget of %.1f min spent at step %d (of %d estimated); saving the final checkpoint",
                         budget.seconds / 60, run.step, run.total_steps)
            run.stop_step = run.step

    def _stop_if_signalled(self, run: RunState) -> None:
        """After a SIGINT/SIGTERM on any rank: every rank saves at this step and stops."""
        stop = self._signal is not None
        if run.dist.enabled:
            stop = distributed.any_rank(stop, run.device)
        if stop:
            path = self._save(run, f"step_{run.step:08d}")
            raise TrainingInterrupted(self._signal or signal.SIGTERM, path or self.checkpoint_dir)

    # ----------------------------------------------------------------- checkpoints
    def _state_dict(self, run: RunState, rngs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything besides the weights that exact resume needs (``state.pt``); ``rngs``: every
        rank's RNG states (:meth:`_rank_rngs`), None for rank 0's alone."""
        schedule, global_batch = run.schedule, run.sampler.global_batch
        return {
            "step": run.step,
            "epoch": run.stream.epoch,
            "batch_in_epoch": run.stream.batch,
            "optimizers": {k: o.state_dict() for k, o in run.optimizers.items()},
            "scaler": run.scaler.state_dict() if run.scaler.is_enabled() else {},
            "rng": rngs[0] if rngs else ckpt.rng_state(),
            **({"rng_ranks": rngs} if rngs and len(rngs) > 1 else {}),
            "schedule": {"policy": schedule.policy, "unit": schedule.unit,
                         "factor": schedule.factor(schedule.position(run.stream.epoch, run.step))},
            **({"budget": run.budget.state_dict()} if run.budget is not None else {}),
            "train_seconds": self._seconds_total(run),
            "data": {
                "seed": self.cfg.seed,
                "num_items": len(run.dataset),
                "batches_per_epoch": len(run.sampler),
                "global_batch": global_batch,
                "samples_in_epoch": run.stream.batch * global_batch,
                "world_size": run.dist.world_size,
                "order": run.sampler.describe(),
            },
        }

    @staticmethod
    def _seconds_total(run: RunState) -> float | None:
        """Wall-clock seconds of training so far, over every session of the run (None: unknown)."""
        if run.seconds_before is None:
            return None
        return round(run.seconds_before + time.perf_counter() - run.started, 2)

    @staticmethod
    def _rank_rngs(run: RunState) -> list[dict[str, Any]] | None:
        """Every rank's RNG states, gathered to every rank (a collective: where all ranks save)."""
        return distributed.gather_objects(ckpt.rng_state()) if run.dist.enabled else None

    def _save(self, run: RunState, name: str, *, every_rank: bool = True) -> Path | None:
        """Rank 0: checkpoint ``name``, pointed to by ``latest``; old step checkpoints pruned.
        ``every_rank``: all ranks call this at this step, so every rank's RNG state is saved (exact
        multi-process resume with dropout); False where rank 0 alone saves (``best``)."""
        rngs = self._rank_rngs(run) if every_rank else None
        if not run.main:
            return None
        folder = self.checkpoint_dir
        try:
            path = ckpt.save_checkpoint(folder / name, self.cfg, dict(run.method.nets), self._state_dict(run, rngs),
                                        input_profile=self.input_profile,
                                        ema=run.ema.nets if run.ema is not None else None)
            ckpt.point_latest(folder, name)
        except (CheckpointError, OSError) as exc:
            raise CheckpointError(f"{exc}; {ckpt.what_is_kept(self.run_dir)}") from exc
        ckpt.prune_step_checkpoints(folder, self.cfg.train.keep_last)
        return path

    # ----------------------------------------------------------------- the end
    @staticmethod
    def _close(run: RunState, previous_handlers: dict[int, Any]) -> None:
        """Stop the progress bar, give the signals back, close the logs (also after an error)."""
        if run.progress is not None:
            run.progress.stop()
        for sig, h in previous_handlers.items():
            signal.signal(sig, h)
        if run.logger is not None:
            run.logger.close()

    def _summary(self, run: RunState) -> dict[str, Any]:
        """The run's figures; rank 0 also writes them to ``train_summary.json``."""
        summary = {
            "steps": run.step,
            "epochs": run.stream.epoch,
            "seconds": round(time.perf_counter() - run.started, 2),
            "seconds_total": self._seconds_total(run),
            "seconds_per_step_median": round(statistics.median(run.durations), 4) if run.durations else None,
            "device": str(run.device),
            "world_size": run.dist.world_size,
            "global_batch": run.sampler.global_batch * self.cfg.train.accumulate,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": environment_info(run.device),
            # Rank 0 writes the checkpoints; the others name the one it wrote at this step.
            "checkpoint": str(run.final if run.final is not None or run.main
                              else self.run_dir / ckpt.CHECKPOINTS / f"step_{run.step:08d}"),
        }
        if run.budget is not None:
            summary["budget"] = run.budget.state_dict()
        if run.main:
            atomic_write_text(self.run_dir / "train_summary.json", json.dumps(summary, indent=2) + "\n")
        return summary


def train(cfg: Config, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool | None = None,
          resume_from: str | os.PathLike | None = None) -> dict:
    """Train ``cfg`` into ``run_dir`` (see :class:`Trainer`)."""
    return Trainer(cfg, run_dir, resume=resume, resume_from=resume_from, progress=progress).fit()
