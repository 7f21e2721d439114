"""``pairgan package`` and ``pairgan push``: a trained run as a model folder with a model card, and
that folder on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pairgan.cli.common import user_errors_reported
from pairgan.package import Package, package_model, push_model

__all__ = ["package", "push"]

_CHECKPOINT_HELP = ("latest (default), best (kept by train.best_metric), a checkpoint name of the run "
                    "(step_00001000) or a checkpoint folder.")
_WEIGHTS_HELP = "auto (the moving average when the run kept one, train.ema), ema or raw."
_LICENSE_HELP = ("The model card's licence: a Hub licence id (mit, apache-2.0, cc-by-nc-4.0, ... or other). "
                 "Check the training data's terms first.")
_CARD_HELP = ("An evaluation card (card.json, or the folder of `pairgan evaluate --out`) scoring the packaged "
              "checkpoint; repeat for more. Cards under the run folder that score it are included anyway.")
_DATASET_HELP = "A Hub data set id for the card's metadata (OWNER/NAME); repeat for more."
_TERMS_HELP = "The training data's terms of use for the card (default: what the data set's SOURCE.md or LICENSE says)."


def _describe(pkg: Package) -> str:
    cards = f", {len(pkg.cards)} evaluation card(s)" if pkg.cards else ", no evaluation card"
    return (f"{pkg.method} from {pkg.checkpoint} ({pkg.weights} weights of {', '.join(pkg.networks)}){cards}, "
            f"licence {pkg.license}")


def package(
    run: Path = typer.Argument(..., help="A run folder (or a checkpoint folder)."),
    out: Path = typer.Argument(..., help="The folder to write (must not exist, unless --overwrite)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", "-c", help=_CHECKPOINT_HELP),
    weights: str = typer.Option("auto", help=_WEIGHTS_HELP),
    license: Optional[str] = typer.Option(None, "--license", help=_LICENSE_HELP + " Default: other, with a note."),
    card: List[Path] = typer.Option([], "--card", help=_CARD_HELP),
    dataset: List[str] = typer.Option([], "--dataset", help=_DATASET_HELP),
    data_terms: Optional[str] = typer.Option(None, "--data-terms", help=_TERMS_HELP),
    repo: Optional[str] = typer.Option(None, "--repo", help="OWNER/NAME the card's usage examples name (hf://OWNER/NAME)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT when it exists (atomically)."),
) -> None:
    """Write a run's inference model as a folder: config, safetensors weights, extra state, input
    profile, evaluation cards, an example grid and a model card (README.md with the Hub's metadata) —
    what `pairgan push` uploads. It loads like a checkpoint: pairgan translate OUT ..."""
    with user_errors_reported(ValueError, FileExistsError):
        pkg = package_model(run, out, checkpoint=checkpoint, weights=weights, license=license, cards=card,
                            datasets=dataset, data_terms=data_terms, repo_id=repo, overwrite=overwrite)
    typer.echo(f"packaged {out}: {_describe(pkg)}")


def push(
    run: Path = typer.Argument(..., help="A run folder (or a checkpoint folder)."),
    repo: str = typer.Argument(..., help="The Hub model repository, OWNER/NAME (created when missing)."),
    license: Optional[str] = typer.Option(None, "--license", help=_LICENSE_HELP + " Required."),
    private: bool = typer.Option(False, "--private", help="Create the repository private (an existing one keeps its visibility)."),
    checkpoint: str = typer.Option("latest", "--checkpoint", "-c", help=_CHECKPOINT_HELP),
    weights: str = typer.Option("auto", help=_WEIGHTS_HELP),
    card: List[Path] = typer.Option([], "--card", help=_CARD_HELP),
    dataset: List[str] = typer.Option([], "--dataset", help=_DATASET_HELP),
    data_terms: Optional[str] = typer.Option(None, "--data-terms", help=_TERMS_HELP),
    revision: Optional[str] = typer.Option(None, "--revision", help="The branch to commit to (default: main)."),
) -> None:
    """Package a run (as `pairgan package` does) and upload it to the Hugging Face Hub in one commit.
    Needs the hub extra (pip install 'pairgan\\[hub]') and a token with write access (hf auth login, or
    HF_TOKEN). Never uploads the training state or a pickle. Load it back with hf://OWNER/NAME."""
    with user_errors_reported(ValueError):
        pkg, url = push_model(run, repo, private=private, checkpoint=checkpoint, weights=weights, license=license,
                              cards=card, datasets=dataset, data_terms=data_terms, revision=revision)
    typer.echo(f"pushed {repo}: {_describe(pkg)}")
    typer.echo(f"commit: {url}")
    typer.echo(f"load it with: pairgan translate hf://{repo} INPUTS --out OUT")
