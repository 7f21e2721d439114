"""``pairgan train``: train a model into a run folder, or continue one exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from pairgan.checkpoint import (
    CHECKPOINTS,
    LATEST,
    CorruptCheckpoint,
    clean_leftovers,
    has_checkpoints,
    is_checkpoint,
    load_checkpoint_config,
    resolve_checkpoint,
    run_of,
    what_is_kept,
)
from pairgan.cli.common import SET_HELP, fail, user_errors_reported
from pairgan.config import Config, apply_overrides, build_config, config_from_dict
from pairgan.errors import CheckpointError
from pairgan.fsutil import is_disk_full
from pairgan.train import distributed
from pairgan.train.trainer import Trainer, TrainingInterrupted

__all__ = ["fit", "resume_target", "resumed_config", "train"]


def resume_target(path: Path) -> tuple[Path, Optional[Path]]:
    """What ``--resume PATH`` continues: (the run folder, the checkpoint folder to start from, or
    ``None`` for the run's latest). A checkpoint folder of a run (``RUN/checkpoints/step_N``) resumes
    ``RUN`` from that checkpoint and ``RUN/checkpoints`` resumes ``RUN``: new checkpoints, history and
    samples must never be written inside a checkpoint folder. A checkpoint folder outside a run is
    refused. A run's leftovers of a killed save are tidied first (a folder moved aside comes back)."""
    for folder in (path / CHECKPOINTS, path):
        if folder.name == CHECKPOINTS and folder.is_dir():
            clean_leftovers(folder)
    if path.is_dir() and is_checkpoint(path):
        run = run_of(path)
        if run is None:
            raise CheckpointError(
                f"{path} is a checkpoint folder, not a run folder: --resume continues a run (a folder with "
                f"{CHECKPOINTS}/{LATEST}); to train from its weights start a new run with --out"
            )
        typer.echo(f"note: {path} is a checkpoint of the run {run}; continuing that run from it", err=True)
        latest = resolve_checkpoint(run)
        if latest.resolve() != path.resolve():
            typer.echo(f"note: {path} is not the run's latest checkpoint ({latest.name}); later checkpoints, "
                       "history and samples will be replaced as training passes them", err=True)
        return run, path
    if path.name == CHECKPOINTS and (path / LATEST).is_file():
        typer.echo(f"note: {path} is the checkpoints folder of the run {path.parent}; continuing that run", err=True)
        return path.parent, None
    return path, None


def resumed_config(run: Path, overrides: Sequence[str], data: Optional[str | Path] = None,
                   checkpoint: Optional[Path] = None) -> Config:
    """The config saved with the latest checkpoint of ``run`` (or with ``checkpoint``), with
    ``data`` as ``data.path`` (when given) and the ``--set`` ``overrides`` applied (e.g. a larger
    ``train.max_steps``)."""
    d = load_checkpoint_config(checkpoint or resolve_checkpoint(run)).to_dict()
    if data is not None:
        d["data"]["path"] = str(data)
    return config_from_dict(apply_overrides(d, list(overrides)))


def fit(cfg: Config, run_dir: Path, *, resume: bool, continue_with: str,
        resume_from: Optional[Path] = None) -> dict[str, Any]:
    """Train; on SIGINT/SIGTERM (the trainer saved a checkpoint) say how to continue, exit 130."""
    try:
        return Trainer(cfg, run_dir, resume=resume, resume_from=resume_from).fit()
    except TrainingInterrupted as exc:
        typer.echo(f"{exc}; continue with: {continue_with}", err=True)
        raise typer.Exit(130)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        # A full disk while writing samples, logs or the summary (checkpoints say so themselves).
        raise CheckpointError(f"{exc.filename or run_dir}: no space left on device (ENOSPC); "
                              f"{what_is_kept(run_dir)}") from None
    finally:
        # Under torchrun: leave the process group before exiting; exiting with it alive can abort a
        # rank in gloo's threads ("terminate called without an active exception").
        distributed.shutdown()


def train(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name (`pairgan info presets`) or a YAML file."),
    # A string, not a Path: shard URLs (s3://..., pipe:...) must reach WebDataset unchanged.
    data: Optional[str] = typer.Option(
        None, "--data", "-d", help="Data set root (with train/ val/ test/ splits), or WebDataset shards: the "
        "manifest NAME.json of `pairgan data pack`, a pattern DIR/NAME-{000000..000009}.tar, pipe:COMMAND or a URL."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/PRESET)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the run in this folder from its latest checkpoint, exactly (a "
        "checkpoint folder of a run: continue that run from it)."
    ),
    device: Optional[str] = typer.Option(None, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (autocast; fp16 uses a grad scaler)."),
    grad_checkpoint: bool = typer.Option(
        False, "--grad-checkpoint", help="Activation checkpointing (pix2pixHD and ResNet generators): less "
        "memory for one more generator forward per step; same results. = --set train.grad_checkpoint=true"
    ),
) -> None:
    """Train a model. A run folder gets the resolved config, logs, samples and checkpoints."""
    extra = list(set_)
    if device:
        extra.append(f"train.device={device}")
    if precision:
        extra.append(f"train.precision={precision}")
    if grad_checkpoint:
        extra.append("train.grad_checkpoint=true")
    with user_errors_reported():
        resume_from = None
        if resume is not None:
            run_dir, resume_from = resume_target(resume)
            try:
                cfg = resumed_config(run_dir, extra, data, resume_from)
            except CorruptCheckpoint as exc:
                if exc.fallback is None:
                    raise
                typer.echo(f"warning: {exc}; resuming from it", err=True)
                resume_from = exc.fallback
                cfg = resumed_config(run_dir, extra, data, resume_from)
        else:
            if data is None:
                fail("--data PATH is required (or --resume RUN)")
            cfg = build_config(preset, extra, data_path=str(data))
            run_dir = out or Path("runs") / Path(preset).stem
            if is_checkpoint(run_dir) or run_of(run_dir) is not None:
                fail(f"{run_dir} is a checkpoint folder; --out names a run folder (runs/NAME)")
            if has_checkpoints(run_dir):
                fail(f"{run_dir} already holds a run; use --resume {run_dir} to continue it or --out for a new one")
            if (run_dir / CHECKPOINTS).is_dir():
                typer.echo(f"note: {run_dir} holds no complete checkpoint (its run stopped before the first "
                           "one); starting it fresh", err=True)
        typer.echo(f"training {cfg.method} into {run_dir}", err=True)
        summary = fit(cfg, run_dir, resume=resume is not None, continue_with=f"pairgan train --resume {run_dir}",
                      resume_from=resume_from)
    typer.echo(
        f"done: {summary['steps']} steps in {summary['seconds']:.1f} s "
        f"({summary['seconds_per_step_median']} s/step median); checkpoint {summary['checkpoint']}"
    )
