"""``pairgan train``: train a model into a run folder, or continue one exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer

from pairgan.checkpoint import load_checkpoint_config, resolve_checkpoint
from pairgan.cli.common import SET_HELP, fail, user_errors_reported
from pairgan.config import Config, apply_overrides, build_config, config_from_dict
from pairgan.train.trainer import Trainer, TrainingInterrupted

__all__ = ["fit", "resumed_config", "train"]


def resumed_config(run: Path, overrides: Sequence[str], data: Optional[Path] = None) -> Config:
    """The config saved with the latest checkpoint of ``run``, with ``data`` as ``data.path`` (when
    given) and the ``--set`` ``overrides`` applied (e.g. a larger ``train.max_steps``)."""
    d = load_checkpoint_config(resolve_checkpoint(run)).to_dict()
    if data is not None:
        d["data"]["path"] = str(data)
    return config_from_dict(apply_overrides(d, list(overrides)))


def fit(cfg: Config, run_dir: Path, *, resume: bool, continue_with: str) -> dict[str, Any]:
    """Train; on SIGINT/SIGTERM (the trainer saved a checkpoint) say how to continue, exit 130."""
    try:
        return Trainer(cfg, run_dir, resume=resume).fit()
    except TrainingInterrupted as exc:
        typer.echo(f"{exc}; continue with: {continue_with}", err=True)
        raise typer.Exit(130)


def train(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name (`pairgan info presets`) or a YAML file."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (with train/ val/ test/ splits)."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/PRESET)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the run in this folder from its latest checkpoint, exactly."
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
        if resume is not None:
            cfg = resumed_config(resume, extra, data)
            run_dir = resume
        else:
            if data is None:
                fail("--data PATH is required (or --resume RUN)")
            cfg = build_config(preset, extra, data_path=str(data))
            run_dir = out or Path("runs") / Path(preset).stem
            if (run_dir / "checkpoints").exists():
                fail(f"{run_dir} already holds a run; use --resume {run_dir} to continue it or --out for a new one")
        typer.echo(f"training {cfg.method} into {run_dir}", err=True)
        summary = fit(cfg, run_dir, resume=resume is not None, continue_with=f"pairgan train --resume {run_dir}")
    typer.echo(
        f"done: {summary['steps']} steps in {summary['seconds']:.1f} s "
        f"({summary['seconds_per_step_median']} s/step median); checkpoint {summary['checkpoint']}"
    )
