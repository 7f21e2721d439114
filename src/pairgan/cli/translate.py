"""``pairgan translate``: images of any size through a trained checkpoint or an exported file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pairgan.cli.common import fail, parse_options, user_errors_reported
from pairgan.export import ExportedTranslator
from pairgan.fsutil import is_disk_full
from pairgan.infer import BACKENDS, OutputWriteError, Translator, expand_inputs
from pairgan.visual import printable

__all__ = ["translate"]


def translate(
    checkpoint: str = typer.Argument(..., help="A run or checkpoint folder, a packaged model, an exported file "
                                     "(.onnx, .pt), or a Hub model hf://OWNER/NAME[@REVISION]."),
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
    tile: str = typer.Option(
        "0", help="Translate in tiles of this size (images too large for memory); 0 = whole; auto = whole when "
        "an image fits --max-pixels, else the largest tiles that do."),
    overlap: int = typer.Option(32, help="Tile overlap in pixels, blended smoothly."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace files already in --out (never an input file: that is always refused)."),
    strict: bool = typer.Option(
        False, "--strict", help="Refuse inputs clearly of another kind than the training inputs, checked against the "
        "checkpoint's input_profile.json (channels, value range, palette), and write nothing (default: warn, one "
        "line per input)."),
    max_pixels: Optional[int] = typer.Option(
        None, "--max-pixels", min=1,
        help="The most pixels one forward pass may take (default: derived from the available memory and the "
        "network's bytes per pixel, measured on a small probe). Larger images stop with an error, or are "
        "tiled with --tile auto."),
    keep_size: bool = typer.Option(
        False, "--keep-size", help="Translate at the training scale (the default), then resize each output back to its "
        "input's size (bicubic; nearest when the outputs are colour-coded label maps)."),
    native_size: bool = typer.Option(
        False, "--native-size", help="Translate inputs at their own size (only padded to the network's multiple) "
        "instead of resizing them to the scale the model was trained at (data.preprocess/load_size/crop_size at "
        "evaluation; nearest for label maps, bicubic for photos). GGB always reads source and pose at its training "
        "geometry."),
    backend: str = typer.Option(
        "auto", help="What runs the network. CHECKPOINT a run/checkpoint folder: auto (default: a compiled graph, "
        "traced + frozen and cached in CHECKPOINT/compiled, where it is exact for the mode -- eval mode, or no "
        "dropout/batch norm -- checked against eager on first use; else eager PyTorch), torch (eager) or "
        "torchscript (the compiled graph, required). CHECKPOINT a file from `pairgan export`: auto, onnxruntime "
        "(.onnx) or torchscript (same pre/post-processing, eval mode)."),
    weights: str = typer.Option(
        "auto", help="Which weights: auto (the generator's moving average when the run was trained with train.ema, else the "
        "trained ones), ema or raw."),
) -> None:
    """Translate images with a trained checkpoint (no training flags to repeat).

    Inputs are resized to the scale the model was trained at, as `pairgan evaluate` reads a split, and
    the outputs are written at that size (--keep-size: at each input's size; --native-size: inputs
    translated at their own size)."""
    if keep_size and native_size:
        fail("--keep-size and --native-size: choose one")
    if bit_depth not in (8, 16):
        fail(f"--bit-depth {bit_depth}: expected 8 or 16")
    if tile != "auto" and not (tile.isdigit()):
        fail(f"--tile {tile}: expected a size in pixels, 0 (whole images) or auto")
    tile_size: int | str = tile if tile == "auto" else int(tile)
    options = parse_options(option)
    for key, value in (("features", features), ("pose", pose), ("variant", variant)):
        if value is not None:
            options[key] = value
    with user_errors_reported(ValueError):
        if backend not in BACKENDS:
            fail(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        tr: Translator
        if Path(checkpoint).is_file():
            if backend == "torch":
                fail(f"--backend torch: {printable(str(checkpoint))} is an exported file; give the run or checkpoint "
                     "folder it came from, or --backend auto")
            tr = ExportedTranslator.from_file(Path(checkpoint), backend=None if backend == "auto" else backend, mode=mode)
        else:
            tr = Translator.from_checkpoint(checkpoint, device=device, mode=mode, weights=weights, backend=backend)
        files = expand_inputs(inputs)
        if not files:
            fail("no input images found")
        try:
            written = tr.translate_files(
                files, out, aligned=aligned, batch_size=batch_size, bit_depth=bit_depth, gallery=gallery, seed=seed,
                options=options, tile=tile_size, overlap=overlap, overwrite=overwrite, max_pixels=max_pixels,
                strict=strict, scale="keep" if keep_size else "native" if native_size else "training",
            )
        except OutputWriteError as exc:
            where = printable(str(exc.filename))
            if is_disk_full(exc):
                fail(f"no space left on device writing {where} (ENOSPC); the outputs finished before it are whole")
            fail(f"writing {where}: {exc.strerror}")
    shown = printable(str(out))
    typer.echo(f"wrote {len(written)} images to {shown}" + (f"; gallery {shown}/index.html" if gallery else ""))
    typer.echo(f"backend: {tr.describe_backend()}")
