"""``pairgan info``: presets, config keys and registered components."""

from __future__ import annotations

import sys

import torch
import typer

from pairgan import __version__
from pairgan.cli.common import fail, user_errors_reported
from pairgan.config import available_presets, build_config
from pairgan.registry import available

__all__ = ["info"]


def info(
    what: str = typer.Argument("all", help="presets | keys | registry | all"),
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="For `keys`: the preset whose keys to list."),
) -> None:
    """List presets, config keys (with their values in a preset) and registered components."""
    if what not in ("presets", "keys", "registry", "all"):
        fail(f"info {what!r}: expected presets, keys, registry or all")
    if what in ("all",):
        typer.echo(f"pairgan {__version__}, torch {torch.__version__}, python {sys.version.split()[0]}")
    if what in ("presets", "all"):
        typer.echo("presets: " + ", ".join(available_presets()))
    if what in ("registry", "all"):
        for kind in ("method", "generator", "discriminator", "dataset"):
            typer.echo(f"{kind}s: " + ", ".join(available(kind)))
    if what in ("keys", "all"):
        with user_errors_reported():
            cfg = build_config(preset)
        d = cfg.to_dict()
        typer.echo(f"config keys (values of preset {preset!r}):")
        for section in ("method", "seed"):
            typer.echo(f"  {section} = {d[section]}")
        for section in ("data", "train", "model"):
            for k, v in d[section].items():
                typer.echo(f"  {section}.{k} = {v}")
