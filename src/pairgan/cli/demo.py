"""``pairgan demo``: synthetic scenes -> a few minutes of training -> gallery and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pairgan.cli.common import user_errors_reported
from pairgan.demo import run_demo

__all__ = ["demo"]


def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for data, run and results."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the demo preset's)."),
    n: int = typer.Option(500, "--n", help="Synthetic scenes to make."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """Synthesize scenes, train the `demo` preset for a few minutes, translate the held-out split,
    write the gallery and metrics.json."""
    with user_errors_reported():
        result = run_demo(out, steps=steps, n=n, device=device)
    m = result["metrics"]
    typer.echo(
        f"\ndemo done in {result['seconds']:.0f} s: held-out L1 {m['l1']:.4f}, PSNR {m['psnr']:.2f} dB, "
        f"SSIM {m['ssim']:.4f} on {m['count']} test scenes\n"
        f"  gallery: {result['gallery']}\n  metrics: {result['metrics_file']}\n  run:     {result['run']}"
    )
