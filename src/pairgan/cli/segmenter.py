"""``pairgan segmenter train|score``: the segmenter behind the segmentation score (seg)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pairgan.cli.common import SET_HELP, fail, user_errors_reported
from pairgan.cli.train import fit, resumed_config
from pairgan.evaluate import score_real, segmenter_sha256
from pairgan.methods.segmenter import build_segmenter_config
from pairgan.protocols import load_protocol

__all__ = ["app"]

app = typer.Typer(help="The segmenter behind the segmentation score (seg): train it on real photos -> labels.",
                  no_args_is_help=True)


@app.command("train")
def segmenter_train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (real photos and their labels)."),
    like: Optional[Path] = typer.Option(None, help="A translation run whose data settings to copy (direction, "
                                        "label_nc, palette, sizes)."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP + " e.g. --set model.palette=facades."),
    out: Path = typer.Option(Path("runs/segmenter"), "--out", "-o", help="Run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (--set still applies)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, mps."),
    protocol: Optional[str] = typer.Option(
        None, "--protocol", help="Train the segmenter a locked protocol pins (a built-in name or a protocol YAML "
        "file) with the protocol's recipe (split, size, steps, seed; deterministic on the CPU), then print its "
        "sha256 (of S.safetensors) and whether it matches the protocol's pin. --set changes the recipe (and so "
        "the hash)."),
) -> None:
    """Train the segmenter (photo -> label ids, cross-entropy) on the REAL pairs of a data set."""
    with user_errors_reported():
        locked = load_protocol(protocol) if protocol is not None else None
        if locked is not None and not resume:
            if data is None:
                fail("--data PATH is required with --protocol")
            if like is not None or device:
                fail("--protocol fixes the recipe and trains on the CPU; drop --like / --device")
            cfg = build_segmenter_config(data, locked.segmenter_overrides(data) + list(set_))
            if (out / "checkpoints").exists():
                fail(f"{out} already holds a run; use --resume or another --out")
        elif resume:
            cfg = resumed_config(out, set_)  # e.g. --set train.max_steps=...
        else:
            if data is None:
                fail("--data PATH is required (or --resume)")
            extra = list(set_) + ([f"train.device={device}"] if device else [])
            cfg = build_segmenter_config(data, extra, like=like)
            if (out / "checkpoints").exists():
                fail(f"{out} already holds a run; use --resume or another --out")
        typer.echo(f"training a segmenter ({cfg.model.net}) into {out}", err=True)
        summary = fit(cfg, out, resume=resume, continue_with=f"pairgan segmenter train --resume --out {out}")
    typer.echo(f"done: {summary['steps']} steps in {summary['seconds']:.1f} s; checkpoint {summary['checkpoint']}")
    if locked is not None:
        with user_errors_reported():
            digest = segmenter_sha256(summary["checkpoint"])
        pin = locked.segmenter.sha256 if locked.segmenter is not None else None
        typer.echo(f"segmenter sha256 {digest}")
        if pin is None:
            typer.echo(f"protocol {locked.name} pins no segmenter yet: write this sha256 as segmenter.sha256 "
                       "(a new protocol version)")
        elif pin == digest:
            typer.echo(f"matches the segmenter protocol {locked.name} pins")
        else:
            typer.echo(f"does NOT match protocol {locked.name}'s pin {pin}")


@app.command("score")
def segmenter_score(
    checkpoint: Path = typer.Argument(..., help="The segmenter's run or checkpoint folder."),
    data: Path = typer.Option(..., "--data", "-d", help="Data set root."),
    split: str = typer.Option("test", help="Split of real photos to score on."),
    max_items: int = typer.Option(0, help="Only the first N items (0 = all)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """The segmenter on REAL photos of a split: how good the judge is (the papers' oracle row)."""
    with user_errors_reported(ValueError):
        s = score_real(checkpoint, data, split, max_items=max_items, device=device)
    typer.echo(f"{split}: pixel accuracy {s['pixel_acc']:.4f}, class accuracy {s['class_acc']:.4f}, "
               f"mean IoU {s['mean_iou']:.4f} ({s['images']} images)")
