"""``pairgan bench``: seconds per step, throughput and achieved FLOP/s of a preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from pairgan.bench import bench as measure
from pairgan.bench import format_result, write_result
from pairgan.cli.common import SET_HELP, user_errors_reported
from pairgan.config import build_config
from pairgan.export import parse_size

__all__ = ["bench"]


def bench(
    preset: str = typer.Option("pix2pix", "--preset", "-p", help="Preset name or YAML file."),
    size: Optional[str] = typer.Option(None, help="Input size: N (square) or WIDTHxHEIGHT, e.g. 1024x512 "
                                       "(default: the preset's crop size)."),
    batch: int = typer.Option(1, help="Batch size."),
    mode: str = typer.Option("train", help="train (one optimisation step), infer (G forward) or data (input pipeline)."),
    steps: int = typer.Option(10, help="Measured steps (after warm-up)."),
    warmup: int = typer.Option(3, help="Unmeasured warm-up steps."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data set root or WebDataset shards (a manifest, "
                                       "a shard pattern, pipe:..., a URL); needed for --mode data."),
    set_: List[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, mps."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the JSON here."),
    peak: bool = typer.Option(True, help="Measure this machine's conv/matmul peak in the same run."),
    backend: str = typer.Option("auto", help="--mode infer: what runs the network: auto (the default path of "
                                "translate/evaluate/serve), torch (eager), torchscript or onnxruntime (that kind "
                                "of compiled graph, cached in $PAIRGAN_CACHE/compiled)."),
    inference_mode: str = typer.Option("eval", "--inference-mode", help="--mode infer: the method's inference "
                                       "mode (pix2pix: eval or paper)."),
) -> None:
    """Seconds per step, images/s, FLOPs, achieved FLOP/s vs this machine's measured peak, memory."""
    extra = list(set_) + ([f"train.device={device}"] if device else [])
    with user_errors_reported(ValueError):
        cfg = build_config(preset, extra, data_path=str(data) if data else None)
        result = measure(cfg, mode=mode, size=parse_size(size), batch=batch, steps=steps, warmup=warmup,
                         data_path=str(data) if data else None, measure_peak=peak, backend=backend,
                         inference_mode=inference_mode)
    result["preset"] = preset
    typer.echo(format_result(result))
    typer.echo(json.dumps(result))
    if out:
        write_result(result, out)
