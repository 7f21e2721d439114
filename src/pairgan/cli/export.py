"""``pairgan export``: the inference graph to ONNX or TorchScript, checked against eager PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from pairgan.cli.common import fail, parse_options, user_errors_reported
from pairgan.errors import ExportMismatch
from pairgan.export import export_checkpoint, parse_size

__all__ = ["export"]


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
    weights: str = typer.Option("auto", help="auto (the moving average when the run kept one, train.ema), ema or raw; "
                                "recorded in the file's metadata."),
) -> None:
    """Export the inference graph (eval mode) to ONNX or TorchScript and check the file against eager
    PyTorch (onnxruntime CPU / torch.jit.load); prints the max abs difference."""
    options = parse_options(option)
    with user_errors_reported(ValueError):
        try:
            result = export_checkpoint(checkpoint, out, fmt=format, opset=opset, dynamic_size=dynamic_size,
                                       size=parse_size(size), options=options, tolerance=tolerance,
                                       weights=weights)
        except ExportMismatch as exc:
            fail(str(exc), code=1)  # the file was written but disagrees: not a usage error
    typer.echo(result.summary())
