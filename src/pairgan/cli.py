"""The ``pairgan`` command: data, train, translate, evaluate, compare, segmenter, demo, info."""

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
from pairgan.weights_cli import app as weights_app  # noqa: E402

app.add_typer(weights_app, name="weights")
from pairgan.features import features_app  # noqa: E402

app.add_typer(features_app, name="features")

SET_HELP = "Override a config key, dotted: --set train.batch_size=4 (repeatable). `pairgan info keys` lists them."


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _user_errors() -> tuple[type[BaseException], ...]:
    from pairgan.checkpoint import CheckpointError
    from pairgan.errors import ConfigError, DataError, WeightsError

    return (ConfigError, DataError, CheckpointError, WeightsError, FileNotFoundError)


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
    grad_checkpoint: bool = typer.Option(
        False, "--grad-checkpoint", help="Activation checkpointing (pix2pixHD and ResNet generators): less "
        "memory for one more generator forward per step; same results. = --set train.grad_checkpoint=true"
    ),
) -> None:
    """Train a model. A run folder gets the resolved config, logs, samples and checkpoints."""
    from pairgan.checkpoint import load_checkpoint_config, resolve_checkpoint
    from pairgan.config import apply_overrides, build_config, config_from_dict
    from pairgan.train.trainer import Trainer, TrainingInterrupted

    extra = list(set_)
    if device:
        extra.append(f"train.device={device}")
    if precision:
        extra.append(f"train.precision={precision}")
    if grad_checkpoint:
        extra.append("train.grad_checkpoint=true")
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
    backend: str = typer.Option(
        "torch", help="torch (CHECKPOINT is a run/checkpoint folder), onnxruntime or torchscript (CHECKPOINT is "
        "a file from `pairgan export`; same pre/post-processing, eval mode)."),
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
        if backend == "torch":
            tr = Translator.from_checkpoint(checkpoint, device=device, mode=mode)
        elif backend in ("onnxruntime", "torchscript"):
            from pairgan.export import ExportedTranslator

            tr = ExportedTranslator.from_file(checkpoint, backend=backend, mode=mode)
        else:
            _fail(f"--backend {backend!r}: expected torch, onnxruntime or torchscript")
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


# --------------------------------------------------------------------------- export & serve


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="A run folder or a checkpoint folder."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx or torchscript."),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write (.onnx or .pt)."),
    opset: int = typer.Option(18, help="ONNX opset (18 is the exporter's own; 17 is converted by onnx)."),
    dynamic_size: bool = typer.Option(
        False, "--dynamic-size", help="Symbolic height/width (multiples of the size multiple); else the fixed --size."),
    size: Optional[str] = typer.Option(
        None, help="Sample size, the fixed size without --dynamic-size: N or WIDTHxHEIGHT (default: the training "
        "crop size rounded up to the network's size multiple)."),
    option: List[str] = typer.Option([], "--option", "-O", help="A method's inference option for the sample, key=value."),
    tolerance: float = typer.Option(1e-4, help="Largest allowed |exported - eager PyTorch| on the check inputs."),
) -> None:
    """Export the inference graph (eval mode) to ONNX or TorchScript and check the file against eager
    PyTorch (onnxruntime CPU / torch.jit.load); prints the max abs difference."""
    from pairgan.config import parse_override
    from pairgan.errors import ExportMismatch
    from pairgan.export import export_checkpoint, parse_size

    options: dict = {}
    for text in option:
        keys, value = parse_override(text)
        options[".".join(keys)] = value
    try:
        result = export_checkpoint(checkpoint, out, fmt=format, opset=opset, dynamic_size=dynamic_size,
                                   size=parse_size(size), options=options, tolerance=tolerance)
    except ExportMismatch as exc:
        _fail(str(exc), code=1)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    typer.echo(result.summary())


@app.command()
def serve(
    models: List[str] = typer.Argument(
        ..., help="Run or checkpoint folders, or exported files (.onnx, .pt); NAME=PATH names a model (default: the "
        "run folder's name)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (loopback by default; 0.0.0.0 = all)."),
    port: int = typer.Option(8000, help="TCP port."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps (checkpoints; .onnx files run on the CPU)."),
    mode: Optional[str] = typer.Option(None, help="Inference mode of checkpoints (pix2pix: paper or eval)."),
    workers: int = typer.Option(1, help="Worker threads (decoding/encoding overlap; one inference at a time)."),
    queue: int = typer.Option(8, help="Requests admitted at once (running + waiting); more get 503."),
    timeout: float = typer.Option(60.0, help="Per-request time limit in seconds (504 when exceeded)."),
    max_upload_mb: float = typer.Option(16.0, help="Largest request body in MiB (413 beyond)."),
    max_pixels: int = typer.Option(4096 * 4096, help="Largest image, width x height, checked before decoding (413)."),
) -> None:
    """Serve models over HTTP: the web editor at /, POST /v1/translate, GET /v1/models, /healthz, /docs."""
    try:
        from pairgan.serve.app import Limits, create_app, load_models
    except ImportError as exc:
        _fail(f"serving needs the web extra: pip install 'pairgan[web]' ({exc})")
    try:
        import uvicorn
    except ImportError:
        _fail("serving needs uvicorn: pip install 'pairgan[web]'")
    try:
        loaded = load_models(models, device=device, mode=mode)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, workers=workers,
                    queue_size=queue, timeout_s=timeout)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(f"warning: listening on {host}: anyone who can reach this port can use the models",
                    err=True, fg=typer.colors.YELLOW)
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (editor), /docs (API)", err=True)
    uvicorn.run(create_app(loaded, limits), host=host, port=port, log_level="warning")


# --------------------------------------------------------------------------- evaluate, compare, segmenter

segmenter_app = typer.Typer(help="The segmenter behind the segmentation score (seg): train it on real photos -> labels.",
                            no_args_is_help=True)
app.add_typer(segmenter_app, name="segmenter")


def _print_scores(result: dict) -> None:
    from pairgan.metrics.report import format_value
    from pairgan.metrics.suite import direction

    for name, value in result["metrics"].items():
        d = direction(name)
        arrow = "" if d is None else (" (higher is better)" if d else " (lower is better)")
        typer.echo(f"  {name:<20} {format_value(value):>12}{arrow}")


@app.command()
def evaluate(
    checkpoint: Optional[Path] = typer.Argument(
        None, help="A run or checkpoint folder (may be omitted with --outputs: then --preset/--set say how to read the data)."),
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
) -> None:
    """Translate a split and score it: metrics.json and an HTML report (table + samples)."""
    from pairgan.evaluate import evaluate_command

    try:
        result = evaluate_command(
            checkpoint, data, split=split, metrics=metrics, out=out, outputs=outputs, segmenter=segmenter,
            inception=inception, max_items=max_items, mode=mode, seed=seed, device=device, batch_size=batch_size,
            preset=preset, overrides=set_, cache_real=not no_cache)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"{result['split']} split, {result['metrics']['count']} images "
               f"({result['protocol_version']}), {result['timing']['total_s']:.1f} s:")
    _print_scores(result)
    for key in ("is", "ms_ssim"):
        note = result["details"].get(key, {})
        if note.get("reason") or note.get("note"):
            typer.echo(f"  note: {key}: {note.get('reason') or note.get('note')}")
    typer.echo(f"report:  {result['report']}\nmetrics: {result['metrics_file']}")


@app.command()
def compare(
    runs: List[Path] = typer.Argument(..., help="Run folders (their eval_SPLIT/), evaluation folders or metrics.json files."),
    out: Path = typer.Option(Path("compare.html"), "--out", "-o", help="The HTML page to write (or a folder)."),
    split: str = typer.Option("test", help="Which eval_SPLIT folder to read in run folders."),
    label: List[str] = typer.Option([], "--label", help="Column names (default: the paths)."),
) -> None:
    """Put several evaluations side by side: a table in the terminal and compare.html."""
    from rich.console import Console
    from rich.table import Table

    from pairgan.metrics.report import comparison_table, load_result, write_compare_html

    try:
        results = [load_result(r, split) for r in runs]
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    labels = list(label) + [str(r) for r in runs[len(label):]]
    names, rows, warnings, best = comparison_table(results)
    table = Table(title="pairgan compare")
    table.add_column("metric")
    for lab in labels:
        table.add_column(lab, justify="right", overflow="fold")
    for n, row, b in zip(names, rows, best):
        table.add_row(n, *[f"[bold green]{v}[/]" if i in b else v for i, v in enumerate(row)])
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    page = write_compare_html(out, results, labels)
    typer.echo(f"wrote {page}")


@segmenter_app.command("train")
def segmenter_train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Data set root (real photos and their labels)."),
    like: Optional[Path] = typer.Option(None, help="A translation run whose data settings to copy (direction, "
                                        "label_nc, palette, sizes)."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP + " e.g. --set model.palette=facades."),
    out: Path = typer.Option(Path("runs/segmenter"), "--out", "-o", help="Run folder."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (--set still applies)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, mps."),
) -> None:
    """Train the segmenter (photo -> label ids, cross-entropy) on the REAL pairs of a data set."""
    from pairgan.methods.segmenter import build_segmenter_config
    from pairgan.train.trainer import Trainer, TrainingInterrupted

    try:
        if resume:
            from pairgan.checkpoint import load_checkpoint_config, resolve_checkpoint
            from pairgan.config import apply_overrides, config_from_dict

            cfg = load_checkpoint_config(resolve_checkpoint(out))
            cfg = config_from_dict(apply_overrides(cfg.to_dict(), list(set_)))  # e.g. train.max_steps
        else:
            if data is None:
                _fail("--data PATH is required (or --resume)")
            extra = list(set_) + ([f"train.device={device}"] if device else [])
            cfg = build_segmenter_config(data, extra, like=like)
            if (out / "checkpoints").exists():
                _fail(f"{out} already holds a run; use --resume or another --out")
        typer.echo(f"training a segmenter ({cfg.model.net}) into {out}", err=True)
        summary = Trainer(cfg, out, resume=resume).fit()
    except TrainingInterrupted as exc:
        typer.echo(f"{exc}; continue with: pairgan segmenter train --resume --out {out}", err=True)
        raise typer.Exit(130)
    except _user_errors() as exc:
        _fail(str(exc))
    typer.echo(f"done: {summary['steps']} steps in {summary['seconds']:.1f} s; checkpoint {summary['checkpoint']}")


@segmenter_app.command("score")
def segmenter_score(
    checkpoint: Path = typer.Argument(..., help="The segmenter's run or checkpoint folder."),
    data: Path = typer.Option(..., "--data", "-d", help="Data set root."),
    split: str = typer.Option("test", help="Split of real photos to score on."),
    max_items: int = typer.Option(0, help="Only the first N items (0 = all)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, mps."),
) -> None:
    """The segmenter on REAL photos of a split: how good the judge is (the papers' oracle row)."""
    from pairgan.methods.segmenter import score_real

    try:
        s = score_real(checkpoint, data, split, max_items=max_items, device=device)
    except (*_user_errors(), ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"{split}: pixel accuracy {s['pixel_acc']:.4f}, class accuracy {s['class_acc']:.4f}, "
               f"mean IoU {s['mean_iou']:.4f} ({s['images']} images)")


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
    from pairgan.methods.build import build_method

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
    from pairgan.synth.scenes import synth_scenes

    result = synth_scenes(out, n=n, size=size, seed=seed, aspect=aspect)
    typer.echo(f"wrote {n} scenes to {out}: {result}")


@synth_app.command("poses")
def synth_poses_cmd(
    out: Path = typer.Argument(..., help="Output folder."),
    n: int = typer.Option(100, "--n", help="Number of identities (people); every 10th is test, every 10th val."),
    poses: int = typer.Option(4, "--poses", help="Images (poses) per identity; pairs are all ordered pairs of them."),
    size: int = typer.Option(128, help="Image height in pixels."),
    width: Optional[int] = typer.Option(None, help="Image width (default: square)."),
    seed: int = typer.Option(0, help="Same seed, same files."),
) -> None:
    """Articulated people in several poses with COCO-18 keypoints (images/, annotations.csv, pairs*.csv)."""
    from pairgan.synth.poses import synth_poses

    try:
        result = synth_poses(out, n=n, poses=poses, size=size, seed=seed, width=width)
    except ValueError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {result['images']} images of {n} identities and {result['pairs']} pairs to {out}: "
               + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))


# --------------------------------------------------------------------------- bench


@app.command()
def bench(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name or YAML file."),
    size: Optional[str] = typer.Option(None, help="Input size: N (square) or WIDTHxHEIGHT, e.g. 1024x512 "
                                       "(default: the preset's crop size)."),
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
        from pairgan.export import parse_size

        result = run_bench(cfg, mode=mode, size=parse_size(size), batch=batch, steps=steps, warmup=warmup,
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
    from pairgan.runtime import tune_host_allocator

    # Before any tensor exists: freed activations stay in the process (see pairgan.runtime).
    tune_host_allocator()
    app()


if __name__ == "__main__":
    main()
