"""``pairgan features cluster``: k-means the pix2pixHD instance features of a run, per class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pairgan.cli.common import user_errors_reported
from pairgan.methods.pix2pixhd_features import cluster_features

__all__ = ["app"]

app = typer.Typer(help="pix2pixHD instance features: cluster them for multimodal translation and editing.",
                  no_args_is_help=True)


@app.command("cluster")
def cluster_cmd(
    run: Path = typer.Argument(..., help="A pix2pixhd run (or checkpoint) folder trained with model.use_features."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (default: the run's data.path)."),
    k: int = typer.Option(10, "--k", help="Clusters per class."),
    min_fraction: float = typer.Option(1 / 64, help="Ignore instances smaller than this share of their image."),
    split: Optional[str] = typer.Option(None, help="Split to encode (default: the training split)."),
    seed: int = typer.Option(0, help="k-means++ seed."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """Encode the training instances with E and k-means them per class (for --features cluster:K)."""
    with user_errors_reported(ValueError):
        path = cluster_features(run, data, k=k, min_fraction=min_fraction, split=split, seed=seed, device=device)
    meta = json.loads(path.with_suffix(".json").read_text())
    per_class = ", ".join(f"class {c}: {n}" for c, n in meta["instances_per_class"].items())
    typer.echo(f"wrote {path} ({meta['instances']} instances from {meta['images']} images; {per_class})")
    typer.echo(f"use it: pairgan translate {run} LABELS --out OUT --features cluster:0", err=True)
