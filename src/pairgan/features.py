"""``pairgan features``: the command of pix2pixHD's instance features; the library is
:mod:`pairgan.methods.pix2pixhd_features`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["cluster_cmd", "features_app"]


def cluster_features(run_dir: str | os.PathLike, data_path: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """:func:`pairgan.methods.pix2pixhd_features.cluster_features`."""
    # Deferred: it imports torch and the methods, and the pairgan command starts without them.
    from pairgan.methods.pix2pixhd_features import cluster_features as run

    return run(run_dir, data_path, **kwargs)


# --------------------------------------------------------------------------- the CLI


features_app = typer.Typer(help="pix2pixHD instance features: cluster them for multimodal translation and editing.",
                           no_args_is_help=True)


@features_app.command("cluster")
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
    from pairgan.checkpoint import CheckpointError
    from pairgan.errors import ConfigError, DataError

    try:
        path = cluster_features(run, data, k=k, min_fraction=min_fraction, split=split, seed=seed, device=device)
    except (ConfigError, DataError, CheckpointError, FileNotFoundError, ValueError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    meta = json.loads(path.with_suffix(".json").read_text())
    per_class = ", ".join(f"class {c}: {n}" for c, n in meta["instances_per_class"].items())
    typer.echo(f"wrote {path} ({meta['instances']} instances from {meta['images']} images; {per_class})")
    print(f"use it: pairgan translate {run} LABELS --out OUT --features cluster:0", file=sys.stderr)
