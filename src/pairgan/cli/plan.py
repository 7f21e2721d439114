"""``pairgan plan``: predicted memory and step time of a training run, and settings that fit a budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from pairgan.cli.common import SET_HELP, user_errors_reported
from pairgan.config import build_config
from pairgan.export import parse_size
from pairgan.fsutil import atomic_write_text
from pairgan.plan import format_plan, parse_memory, plan_run

__all__ = ["plan"]


def plan(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name or YAML file."),
    size: Optional[str] = typer.Option(None, help="Training size: N (square) or WIDTHxHEIGHT, e.g. 2048x1024 "
                                       "(default: the preset's crop size)."),
    batch: Optional[int] = typer.Option(None, help="Batch size per process (default: the preset's)."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (default: the preset's)."),
    device: Optional[str] = typer.Option(None, help="cpu or cuda (default: the preset's, auto)."),
    memory: Optional[str] = typer.Option(None, help="A memory budget, e.g. 24GiB or 16GB: say whether the run "
                                         "fits and recommend settings that do (batch, --grad-checkpoint, bf16, crop)."),
    grad_checkpoint: bool = typer.Option(False, "--grad-checkpoint", help="Plan with activation checkpointing."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the plan as JSON here."),
) -> None:
    """Predict a training run's peak memory and seconds per step from two short probes at reduced
    sizes (each a few steps in a fresh process), and with --memory recommend settings that fit."""
    extra = list(set_)
    extra += [f"train.precision={precision}"] if precision else []
    extra += [f"train.device={device}"] if device else []
    extra += ["train.grad_checkpoint=true"] if grad_checkpoint else []
    with user_errors_reported(ValueError, RuntimeError):
        cfg = build_config(preset, extra)
        budget = parse_memory(memory) if memory else None
        result = plan_run(cfg, size=parse_size(size), batch=batch, memory_budget=budget, preset=preset)
    typer.echo(format_plan(result))
    if out:
        atomic_write_text(out, json.dumps(result.to_dict(), indent=2) + "\n")
