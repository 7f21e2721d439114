"""``pairgan evaluate`` (translate a split and score it) and ``pairgan compare`` (evaluations side by
side)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Sequence

import typer
from rich.console import Console
from rich.table import Table

from pairgan import evaluate as evaluation
from pairgan.cli.common import user_errors_reported
from pairgan.config import apply_overrides, build_config, config_from_dict
from pairgan.infer import Translator
from pairgan.fsutil import atomic_write_text
from pairgan.hub import is_hub_ref
from pairgan.metrics.report import (
    card_for_result,
    card_table,
    cards_for_compare,
    comparison_table,
    format_value,
    load_result,
    render_card_markdown,
    write_compare_html,
)
from pairgan.metrics.suite import direction
from pairgan.protocols import load_protocol
from pairgan.runtime import resolve_device

__all__ = ["compare", "evaluate", "evaluate_checkpoint_or_outputs"]


def evaluate_checkpoint_or_outputs(
    checkpoint: str | os.PathLike | None,
    data: str | os.PathLike,
    *,
    split: str = "test",
    metrics: str = "all",
    out: str | os.PathLike | None = None,
    outputs: str | os.PathLike | None = None,
    segmenter: str | os.PathLike | None = None,
    inception: str | os.PathLike | None = None,
    max_items: int = 0,
    mode: str | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 16,
    preset: str = "pix2pix",
    overrides: Sequence[str] = (),
    cache_real: bool = True,
    protocol: str | os.PathLike | None = None,
    force: bool = False,
    weights: str = "auto",
    features: str | None = "random",
    backend: str = "auto",
) -> dict[str, Any]:
    """``pairgan evaluate``: resolve the model (or, with ``outputs`` and no checkpoint, the data
    settings from ``preset`` + ``overrides``), the output folder (default ``RUN/eval_SPLIT``, or
    ``OUTPUTS/../eval_SPLIT``; under a protocol ``RUN/eval_PROTOCOL``), the protocol (a built-in
    name or a YAML file) and the device, then :func:`pairgan.evaluate.evaluate`."""
    if out is None and is_hub_ref(checkpoint):
        raise ValueError(f"{checkpoint}: give --out: a Hub model has no run folder to write the evaluation into")
    locked = load_protocol(protocol) if protocol is not None else None
    dev = resolve_device(device)
    translator, data_cfg = None, None
    if checkpoint is not None:
        translator = Translator.from_checkpoint(checkpoint, device=str(dev), mode=mode, weights=weights,
                                                backend=backend)
        if overrides:
            d = apply_overrides(translator.cfg.to_dict(), [o if o.startswith("data.") else f"data.{o}"
                                                           for o in overrides])
            data_cfg = config_from_dict(d).data
    elif outputs is not None:
        data_cfg = build_config(preset, list(overrides), data_path=str(data)).data
    else:
        raise ValueError("give a run or checkpoint folder to translate with, or --outputs DIR of generated images")
    if out is None:
        base = Path(checkpoint) if checkpoint is not None else Path(outputs).parent  # type: ignore[arg-type]
        suffix = ""
        if base.is_dir() and (base / "config.yaml").is_file() and base.parent.name == "checkpoints":
            base, suffix = base.parent.parent, f"_{base.name}"  # a checkpoint: RUN/eval_SPLIT_CKPT
        out = base / f"eval_{locked.name if locked is not None else split}{suffix}"
    return evaluation.evaluate(translator, data, split, out, metrics=metrics, max_items=max_items, seed=seed,
                               outputs_dir=outputs, data_cfg=data_cfg, segmenter=segmenter,
                               inception=str(inception) if inception is not None else None, device=dev,
                               batch_size=batch_size, cache_real=cache_real, protocol=locked, force=force,
                               features=features)


def _print_scores(result: dict[str, Any]) -> None:
    for name, value in result["metrics"].items():
        d = direction(name)
        arrow = "" if d is None else (" (higher is better)" if d else " (lower is better)")
        typer.echo(f"  {name:<20} {format_value(value):>12}{arrow}")


def evaluate(
    checkpoint: Optional[str] = typer.Argument(
        None, help="A run or checkpoint folder, a packaged model or a Hub model hf://OWNER/NAME (may be omitted with --outputs: then --preset/--set say how to read the data)."),
    data: Path = typer.Option(..., "--data", "-d", help="Data set root."),
    split: str = typer.Option("test", help="The split to translate and score."),
    metrics: str = typer.Option(
        "all", "--metrics", "-m",
        help="Comma-separated: l1, psnr, ssim, ms_ssim, lpips, lpips_alex, fid, kid, is, seg; all = every one "
        "(seg with --segmenter)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default RUN/eval_SPLIT)."),
    outputs: Optional[Path] = typer.Option(None, help="Score images already generated (NAME.png per split file) "
                                           "instead of translating."),
    segmenter: Optional[Path] = typer.Option(None, help="Segmenter checkpoint for seg (`pairgan segmenter train`)."),
    inception: Optional[Path] = typer.Option(
        None, help="Inception weights file: pytorch-fid's pt_inception-2015-12-05-6726825d.pth (adds the IS "
        "classifier). Default: the inception-fid weights."),
    max_items: int = typer.Option(0, help="Only the first N items of the split (0 = all)."),
    mode: Optional[str] = typer.Option(None, help="Inference mode (pix2pix: paper or eval)."),
    seed: int = typer.Option(0, help="Seed for stochastic inference and KID subsets."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
    batch_size: int = typer.Option(16, help="Images per Inception forward pass."),
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="With --outputs and no checkpoint: data settings."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Data overrides, e.g. --set data.direction=BtoA."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the real-set feature cache."),
    protocol: Optional[str] = typer.Option(
        None, "--protocol", help="Score under a locked protocol (a built-in name: cityscapes-pix2pix-256, "
        "cityscapes-pix2pix-128, facades-heldout-256; or a protocol YAML file): its split, manifest, resolution, "
        "metrics and seed replace --split/--metrics/--seed, and a result card (card.json) is written."),
    force: bool = typer.Option(False, "--force", help="With --protocol: score a split that differs from the "
                               "protocol's manifest anyway; the card is marked not comparable."),
    weights: str = typer.Option(
        "auto", help="Which weights: auto (the generator's moving average when the run was trained with train.ema, else the "
        "trained ones), ema or raw."),
    features: str = typer.Option(
        "random", "--features", help="pix2pixHD with instance features: random (default: a seeded random cluster "
        "centre per object, as the reference tests), cluster:K, or encode (the encoder reads each object's style "
        "from the REAL test photo; the scores are labelled as such). Ignored for models without features."),
    backend: str = typer.Option("auto", help="What runs the network: auto (a compiled graph, traced + frozen and cached in CHECKPOINT/compiled, where it is exact for the mode: eval mode, or no dropout/batch norm; else eager), torch (eager) or torchscript (the compiled graph, required)."),
) -> None:
    """Translate a split and score it: metrics.json and an HTML report (table + samples); with
    --protocol also a result card (card.json)."""
    with user_errors_reported(ValueError):
        result = evaluate_checkpoint_or_outputs(
            checkpoint, data, split=split, metrics=metrics, out=out, outputs=outputs, segmenter=segmenter,
            inception=inception, max_items=max_items, mode=mode, seed=seed, device=device, batch_size=batch_size,
            preset=preset, overrides=set_, cache_real=not no_cache, protocol=protocol, force=force,
            weights=weights, features=features, backend=backend)
    typer.echo(f"{result['split']} split, {result['metrics']['count']} images "
               f"({result['protocol_version']}), {result['timing']['total_s']:.1f} s:")
    _print_scores(result)
    if result.get("backend"):
        typer.echo(f"backend: {result['backend']}")
    for key in ("is", "ms_ssim", "features"):
        note = result["details"].get(key, {})
        if note.get("reason") or note.get("note"):
            typer.echo(f"  note: {key}: {note.get('reason') or note.get('note')}")
    card = result.get("card")
    if card is not None:
        proto = card["protocol"]
        typer.echo(f"protocol {proto['name']} v{proto['version']} (fingerprint {proto['fingerprint'][:16]}); "
                   + ("comparable" if card["comparable"] else "NOT comparable"))
        for key, value in card["oracle"].items():
            typer.echo(f"  oracle {key:<13} {format_value(value['value']):>12} (the segmenter on the real photos)")
        for note in card["notes"]:
            typer.echo(f"  note: {note}")
        typer.echo(f"card:    {result['card_file']}")
    typer.echo(f"report:  {result['report']}\nmetrics: {result['metrics_file']}")


def compare(
    runs: List[Path] = typer.Argument(..., help="Run folders (their eval_SPLIT/), evaluation folders or metrics.json files."),
    out: Path = typer.Option(Path("compare.html"), "--out", "-o", help="The HTML page to write (or a folder)."),
    split: str = typer.Option("test", help="Which eval_SPLIT folder to read in run folders."),
    label: List[str] = typer.Option([], "--label", help="Column names (default: the paths)."),
    markdown: Optional[Path] = typer.Option(
        None, "--markdown", help="Also write the side-by-side table as markdown to this file."),
    force: bool = typer.Option(
        False, "--force", help="Show result cards side by side even when they are not comparable (different "
        "protocol fingerprints, no protocol, or marked not comparable); the reasons are listed with the table."),
) -> None:
    """Put several evaluations side by side: a table in the terminal and compare.html.

    Evaluations with result cards (card.json, from `pairgan evaluate --protocol`) are shown with
    their intervals and protocol fingerprint, and are ranked only when every card was scored under
    the same protocol fingerprint (else exit 2 with the reasons, unless --force)."""
    with user_errors_reported(ValueError):
        results = [load_result(r, split) for r in runs]
        labels = list(label) + [str(r) for r in runs[len(label):]]
        cards, problems = cards_for_compare(results, labels)
    if problems and not force:
        for p in problems:
            typer.echo(f"not comparable: {p}", err=True)
        typer.echo("error: refusing to rank these evaluations side by side; pass --force to show them anyway",
                   err=True)
        raise typer.Exit(2)
    table = Table(title="pairgan compare")
    table.add_column("metric")
    for lab in labels:
        table.add_column(lab, justify="right", overflow="fold")
    if cards is not None:
        names, rows, best = card_table(cards, rank=not problems)
        warnings = [f"not comparable: {p}" for p in problems]
    else:
        names, rows, warnings, best = comparison_table(results)
    for n, row, b in zip(names, rows, best):
        table.add_row(n, *[f"[bold green]{v}[/]" if i in b else v for i, v in enumerate(row)])
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    page = write_compare_html(out, results, labels, cards=cards, problems=problems)
    typer.echo(f"wrote {page}")
    if markdown is not None:
        md_cards = cards if cards is not None else [card_for_result(r, lab) for r, lab in zip(results, labels)]
        with user_errors_reported(OSError):
            atomic_write_text(markdown, render_card_markdown(md_cards, labels, problems))
        typer.echo(f"wrote {markdown}")
