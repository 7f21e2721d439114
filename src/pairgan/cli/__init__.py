"""The ``pairgan`` command: one Typer app gathering every command group.

One module per group: ``train``, ``translate``, ``evaluate`` (evaluate, compare), ``data`` (check,
synth), ``export``, ``hub`` (package, push), ``serve``, ``weights``, ``features``, ``segmenter``, ``bench``, ``plan``, ``demo``,
``info``; ``common`` holds the one ``error:`` line and the user-error handler, ``logs`` the logging
set-up. No library module imports typer: the library raises :mod:`pairgan.errors` and logs, the
command prints.
"""

from __future__ import annotations

import logging

import typer

from pairgan.cli import (bench, data, demo, evaluate, export, features, hub, info, plan, segmenter, serve, train,
                         translate, weights)
from pairgan.cli.logs import pairgan_logging
from pairgan.runtime import tune_host_allocator

__all__ = ["app", "main"]

app = typer.Typer(
    help="pairgan: paired image-to-image translation (pix2pix, pix2pixHD, CRN, DRPAN, GGB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Show only pairgan's warnings and errors on stderr."),
) -> None:
    # Runs before every command, in `main()` and in-process (CliRunner) alike; the logging set-up is
    # undone when the command's context closes.
    ctx.with_resource(pairgan_logging(logging.WARNING if quiet else logging.INFO))


# Commands in the order `pairgan --help` lists them, then the groups.
app.command()(train.train)
app.command()(translate.translate)
app.command()(export.export)
app.command()(hub.package)
app.command()(hub.push)
app.command()(serve.serve)
app.command()(evaluate.evaluate)
app.command()(evaluate.compare)
app.command()(bench.bench)
app.command()(plan.plan)
app.command()(demo.demo)
app.command()(info.info)
app.add_typer(data.app, name="data")
app.add_typer(weights.app, name="weights")
app.add_typer(features.app, name="features")
app.add_typer(segmenter.app, name="segmenter")


def main() -> None:
    """The ``pairgan`` console script (and ``python -m pairgan``, ``python -m pairgan.cli``)."""
    # Before any tensor exists: freed activations stay in the process (see pairgan.runtime).
    tune_host_allocator()
    app()
