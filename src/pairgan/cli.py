"""The ``pairgan`` command: data, train, translate, demo, info."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="pairgan: paired image-to-image translation (pix2pix, pix2pixHD, CRN, DRPAN, GGB).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Check data sets and make synthetic ones.", no_args_is_help=True)
synth_app = typer.Typer(help="Write procedural data sets (no download needed).", no_args_is_help=True)
app.add_typer(data_app, name="data")
data_app.add_typer(synth_app, name="synth")

SET_HELP = "Override a config key, dotted: --set train.batch_size=4 (repeatable). `pairgan info keys` lists them."


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    from pairgan.config import ConfigError
    from pairgan.data.io import DataError
    from pairgan.train.checkpoint import CheckpointError

    return (ConfigError, DataError, CheckpointError, FileNotFoundError)


# --------------------------------------------------------------------------- train


@app.command()
def train(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name (`pairgan info presets`) or a YAML file."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (with train/ val/ test/ splits)."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder (default runs/PRESET)."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the run in this folder from its latest checkpoint, exactly."
    ),
    device: Optional[str] = typer.Option(None, help="auto (cuda, mps, cpu), cpu, cuda, cuda:1, mps."),
    precision: Optional[str] = typer.Option(None, help="fp32, bf16 or fp16 (autocast; fp16 uses a grad scaler)."),
) -> None:
    """Train a model. A run folder gets the resolved config, logs, samples and checkpoints."""
    from pairgan.config import apply_overrides, build_config, config_from_dict
    from pairgan.train.checkpoint import load_checkpoint_config, resolve_checkpoint
    from pairgan.train.trainer import TrainingInterrupted, Trainer

    extra = list(set_)
    if device:
        extra.append(f"train.device={device}")
    if precision:
        extra.append(f"train.precision={precision}")
    try:
        if resume is not None:
            cfg = load_checkpoint_config(resolve_checkpoint(resume))
            d = cfg.to_dict()
            if data is not None:
                d["data"]["path"] = str(data)
            cfg = config_from_dict(apply_overrides(d, extra))
            run_dir = resume
        else:
            if data is None:
                _fail("--data PATH is required (or --resume RUN)")
            cfg = build_config(preset, extra, data_path=str(data))
            run_dir = out or Path("runs") / Path(preset).stem
            if (run_dir / "checkpoints").exists():
                _fail(f"{run_dir} already holds a run; use --resume {run_dir} to continue it or --out for a new one")
        typer.echo(f"training {cfg.method} into {run_dir}", err=True)
        summary = Trainer(cfg, run_dir, resume=resume is not None).fit()
    except TrainingInterrupted as exc:
        typer.echo(f"{exc}; continue with: pairgan train --resume {run_dir}", err=True)
        raise typer.Exit(130)
    except _user_errors() as exc:
        _fail(str(exc))
    typer.echo(
        f"done: {summary['steps']} steps in {summary['seconds']:.1f} s "
        f"({summary['seconds_per_step_median']} s/step median); checkpoint {summary['checkpoint']}"
    )


# --------------------------------------------------------------------------- translate


@app.command()
def translate(
    checkpoint: Path = typer.Argument(..., help="A run folder or a checkpoint folder."),
    inputs: List[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (gets NAME.png per input and index.html)."),
    mode: Optional[str] = typer.Option(
        None,
        help="pix2pix: 'paper' (default: dropout and batch statistics on at test time, as pix2pix does; "
        "each image run alone, dropout seeded by --seed) or 'eval' (running statistics, no dropout).",
    ),
    aligned: bool = typer.Option(
        False, "--aligned", help="Inputs are A|B side-by-side files: translate the input half, show the other as target."
    ),
    batch_size: int = typer.Option(4, help="Images of equal size per forward pass."),
    bit_depth: int = typer.Option(8, help="Output PNG bit depth: 8 or 16."),
    seed: int = typer.Option(0, help="Seed for stochastic inference (dropout in paper mode)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
    gallery: bool = typer.Option(True, help="Write index.html with input | output (| target)."),
    features: Optional[str] = typer.Option(
        None, help="pix2pixHD instance features: encode:IMAGE, random, or cluster:K."
    ),
    pose: Optional[str] = typer.Option(None, help="GGB: the target pose (a keypoint file or an annotation name)."),
    variant: Optional[int] = typer.Option(None, help="CRN: write only output variant i (default: all k)."),
    option: List[str] = typer.Option([], "--option", "-O", help="A method's inference option key=value (repeatable)."),
    tile: int = typer.Option(0, help="Translate in tiles of this size (images too large for memory); 0 = whole."),
    overlap: int = typer.Option(32, help="Tile overlap in pixels, blended smoothly."),
) -> None:
    """Translate images of any size with a trained checkpoint (no training flags to repeat)."""
    from pairgan.config import parse_override
    from pairgan.infer import Translator, expand_inputs

    if bit_depth not in (8, 16):
        _fail(f"--bit-depth {bit_depth}: expected 8 or 16")
    options: dict = {}
    for text in option:
        keys, value = parse_override(text)
        options[".".join(keys)] = value
    for key, value in (("features", features), ("pose", pose), ("variant", variant)):
        if value is not None:
            options[key] = value
    try:
        tr = Translator.from_checkpoint(checkpoint, device=device, mode=mode)
        files = expand_inputs(inputs)
        if not files:
            _fail("no input images found")
        written = tr.translate_files(
            files, out, aligned=aligned, batch_size=batch_size, bit_depth=bit_depth, gallery=gallery, seed=seed,
            options=options, tile=tile, overlap=overlap,
        )
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {len(written)} images to {out}" + (f"; gallery {out / 'index.html'}" if gallery else ""))


# --------------------------------------------------------------------------- data


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="Data set root."),
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset whose data settings apply."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    split: List[str] = typer.Option([], "--split", help="Splits to check (default: train, plus val/test if present)."),
) -> None:
    """Validate a data set: missing partners, unreadable files, sizes, channels, crop fit."""
    from rich.console import Console

    from pairgan.config import build_config
    from pairgan.data.check import check_dataset
    from pairgan.train.trainer import build_method

    try:
        cfg = build_config(preset, list(set_), data_path=str(path))
        size_multiple = build_method(cfg, training=False).size_multiple
        report = check_dataset(cfg.data, splits=list(split) or None, size_multiple=size_multiple)
    except _user_errors() as exc:
        _fail(str(exc))
    Console().print(report.render())
    if not report.ok:
        for f, problem in report.problems[:50]:
            typer.echo(f"{f}: {problem}", err=True)
        if len(report.problems) > 50:
            typer.echo(f"... and {len(report.problems) - 50} more problems", err=True)
        raise typer.Exit(1)
    typer.echo("ok: no problems found")


@synth_app.command("scenes")
def synth_scenes_cmd(
    out: Path = typer.Argument(..., help="Output folder."),
    n: int = typer.Option(500, "--n", help="Number of scenes (split 80/10/10 into train/val/test)."),
    size: int = typer.Option(256, help="Image height in pixels."),
    aspect: float = typer.Option(1.0, help="Width / height (2.0 for Cityscapes-like)."),
    seed: int = typer.Option(0, help="Same seed, same files."),
) -> None:
    """Street/facade-like scenes: label maps, instance maps and photos (aligned and folder layouts)."""
    from pairgan.data.synth import synth_scenes

    result = synth_scenes(out, n=n, size=size, seed=seed, aspect=aspect)
    typer.echo(f"wrote {n} scenes to {out}: {result}")


# --------------------------------------------------------------------------- bench


@app.command()
def bench(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name or YAML file."),
    size: Optional[int] = typer.Option(None, help="Square input size (default: the preset's crop size)."),
    batch: int = typer.Option(1, help="Batch size."),
    mode: str = typer.Option("train", help="train (one optimisation step), infer (G forward) or data (input pipeline)."),
    steps: int = typer.Option(10, help="Measured steps (after warm-up)."),
    warmup: int = typer.Option(3, help="Unmeasured warm-up steps."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (needed for --mode data)."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, mps."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the JSON here."),
    peak: bool = typer.Option(True, help="Measure this machine's conv/matmul peak in the same run."),
) -> None:
    """Seconds per step, images/s, FLOPs, achieved FLOP/s vs this machine's measured peak, memory."""
    import json as _json

    from pairgan.bench import bench as run_bench
    from pairgan.bench import format_result, write_result
    from pairgan.config import build_config

    extra = list(set_) + ([f"train.device={device}"] if device else [])
    try:
        cfg = build_config(preset, extra, data_path=str(data) if data else None)
        result = run_bench(cfg, mode=mode, size=size, batch=batch, steps=steps, warmup=warmup,
                           data_path=str(data) if data else None, measure_peak=peak)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    result["preset"] = preset
    typer.echo(format_result(result))
    typer.echo(_json.dumps(result))
    if out:
        write_result(result, out)


# --------------------------------------------------------------------------- demo & info


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", "-o", help="Folder for data, run and results."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: the demo preset's)."),
    n: int = typer.Option(500, "--n", help="Synthetic scenes to make."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """Synthesize scenes, train the `demo` preset for a few minutes, translate the held-out split,
    write the gallery and metrics.json."""
    from pairgan.demo import run_demo

    try:
        result = run_demo(out, steps=steps, n=n, device=device)
    except _user_errors() as exc:
        _fail(str(exc))
    m = result["metrics"]
    typer.echo(
        f"\ndemo done in {result['seconds']:.0f} s: held-out L1 {m['l1']:.4f}, PSNR {m['psnr']:.2f} dB, "
        f"SSIM {m['ssim']:.4f} on {m['count']} test scenes\n"
        f"  gallery: {result['gallery']}\n  metrics: {result['metrics_file']}\n  run:     {result['run']}"
    )


@app.command()
def info(
    what: str = typer.Argument("all", help="presets | keys | registry | all"),
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="For `keys`: the preset whose keys to list."),
) -> None:
    """List presets, config keys (with their values in a preset) and registered components."""
    import torch

    from pairgan import __version__
    from pairgan.config import available_presets, build_config
    from pairgan.registry import available

    if what in ("all",):
        typer.echo(f"pairgan {__version__}, torch {torch.__version__}, python {sys.version.split()[0]}")
    if what in ("presets", "all"):
        typer.echo("presets: " + ", ".join(available_presets()))
    if what in ("registry", "all"):
        for kind in ("method", "generator", "discriminator", "dataset"):
            typer.echo(f"{kind}s: " + ", ".join(available(kind)))
    if what in ("keys", "all"):
        cfg = build_config(preset)
        d = cfg.to_dict()
        typer.echo(f"config keys (values of preset {preset!r}):")
        for section in ("method", "seed"):
            typer.echo(f"  {section} = {d[section]}")
        for section in ("data", "train", "model"):
            for k, v in d[section].items():
                typer.echo(f"  {section}.{k} = {v}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
