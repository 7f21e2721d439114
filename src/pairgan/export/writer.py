"""Export a checkpoint's inference graph to ONNX or TorchScript and check it against eager PyTorch.

What is exported is the method's :meth:`~pairgan.methods.base.Method.export_module`: the network
part of ``translate`` with tensor-only inputs and outputs, in **eval-mode semantics** (running
statistics, no dropout). Everything ``translate`` computes before the network (one-hot labels,
instance edge maps, feature maps, pose heat maps) and after it (choosing a CRN variant) stays in
Python, shared by eager PyTorch and the exported file, so both backends do the same pre- and
post-processing. pix2pix's ``paper`` mode (dropout and batch statistics at test time, seeded per
image) is stochastic and depends on each image's own statistics: it is **not** exported; an
exported pix2pix model equals ``translate --mode eval``.

Every export is checked right after it is written: the file is run (onnxruntime's CPU provider
for ONNX, ``torch.jit.load`` for TorchScript) on sample inputs and compared with eager PyTorch;
the largest absolute difference must be within the tolerance (1e-4), otherwise the file is not
kept. ONNX files are single and self-contained (weights inside) unless the weights exceed the
2 GB protobuf limit, where they go to ``FILE.data`` next to it. The checkpoint's config, the
input/output spec, the size rules and the method's extra state (its class palette, pix2pixHD's
feature clusters) travel inside the file (:mod:`pairgan.export.format`), so
:class:`~pairgan.export.runtime.ExportedTranslator` needs only the file.

Sizes: ``--dynamic-size`` exports height and width as symbolic multiples of the network's size
multiple (inputs are reflect-padded to it and cropped back, exactly as the PyTorch Translator
does); without it the graph has the fixed sample size and inputs are fitted to it: smaller ones
are reflect-padded to it and cropped back, larger ones are scaled down (aspect kept; ids nearest
neighbour), padded, translated and the output scaled back up. The batch size is always dynamic.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from pairgan.checkpoint import load_input_profile
from pairgan.compiled import DEFAULT_OPSET, as_tuple, quiet, trace_graph, write_onnx
from pairgan.config import Config
from pairgan.errors import ExportError, ExportMismatch
from pairgan.export.format import METADATA_KEY, TORCHSCRIPT_EXTRA, build_metadata
from pairgan.export.runtime import GraphRunner, open_runner
from pairgan.fsutil import publish, temp_name
from pairgan.methods.base import ExportGraph, Method
from pairgan.methods.build import load_method

__all__ = ["DEFAULT_OPSET", "FORMATS", "TOLERANCE", "ExportResult", "default_size", "export_checkpoint",
           "export_method", "parse_size"]

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4
_TWO_GB = 2**31 - 2**20  # protobuf's limit, with room for the graph itself


@dataclass
class ExportResult:
    """What :func:`export_checkpoint` wrote and how well the file agrees with eager PyTorch."""

    path: Path
    format: str
    opset: int | None
    dynamic_size: bool
    size: tuple[int, int]
    size_multiple: int
    inputs: dict[str, list[Any]]
    outputs: list[str]
    #: (what was compared, max abs diff) per check; ``max_abs_diff`` is the largest.
    checks: list[tuple[str, float]]
    max_abs_diff: float
    tolerance: float
    bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    #: Which weights the file holds: ``ema`` (the moving average of ``train.ema``) or ``raw``.
    weights: str = "raw"

    def summary(self) -> str:
        runner = "onnxruntime (CPU)" if self.format == "onnx" else "torch.jit.load"
        size = (f"dynamic size (multiples of {self.size_multiple})" if self.dynamic_size
                else f"fixed size {self.size[0]}x{self.size[1]} (HxW)")
        lines = [
            f"wrote {self.path} ({self.format}"
            + (f", opset {self.opset}" if self.opset else "")
            + f", {self.bytes / 2**20:.1f} MiB, {size}, dynamic batch, {self.weights} weights) in {self.seconds:.1f} s",
            "  inputs: " + ", ".join(f"{k} {v}" for k, v in self.inputs.items())
            + "; outputs: " + ", ".join(self.outputs),
        ]
        for what, diff in self.checks:
            lines.append(f"  check {runner} vs eager PyTorch on {what}: max abs diff {diff:.3g}")
        lines.append(f"max abs diff {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}): ok")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def default_size(method: Method, cfg: Config) -> tuple[int, int]:
    """The training crop size rounded up to the network's size multiple (height, width)."""
    m = int(method.size_multiple)
    s = max(int(cfg.data.crop_size), m)
    s = int(math.ceil(s / m) * m)
    return s, s


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"256"`` -> (256, 256); ``"WIDTHxHEIGHT"`` (e.g. ``1024x512``) -> (height, width)."""
    if text is None or str(text).strip() == "":
        return None
    t = str(text).lower().strip()
    try:
        if "x" in t:
            w, h = (int(v) for v in t.split("x", 1))
        else:
            w = h = int(t)
    except ValueError:
        raise ExportError(f"--size {text!r}: expected N or WIDTHxHEIGHT, e.g. 256 or 1024x512") from None
    if w < 1 or h < 1:
        raise ExportError(f"--size {text!r}: expected positive sizes")
    return h, w


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    if len(a) != len(b):
        raise ExportError(f"the exported graph gives {len(a)} outputs, eager PyTorch {len(b)}")
    diff = 0.0
    for x, y in zip(a, b):
        x, y = torch.as_tensor(x).float(), torch.as_tensor(y).float()
        if x.shape != y.shape:
            raise ExportError(f"output shape {tuple(x.shape)} from the exported graph, {tuple(y.shape)} eager")
        diff = max(diff, float((x - y).abs().max()) if x.numel() else 0.0)
    return diff


# --------------------------------------------------------------------------- export


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    *,
    fmt: str = "onnx",
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool = False,
    size: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
    seed: int = 0,
    weights: str = "auto",
) -> ExportResult:
    """Export ``checkpoint``'s inference graph to ``out`` and check it against eager PyTorch.

    ``size`` (height, width) is the sample size (the fixed size without ``dynamic_size``);
    default: the training crop size rounded up to the size multiple. ``options`` are the
    method's inference options for the sample batch; ``weights``: which weights (``auto``: the moving
    average when the run kept one; the metadata's ``weights`` says which). Raises
    :class:`ExportError` (and keeps no file) when the exported graph differs from eager PyTorch by
    more than ``tolerance``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    method = load_method(checkpoint, device="cpu", weights=weights)  # it finds the run's extra files (feature clusters)
    folder = method.checkpoint
    assert folder is not None and method.run_config is not None  # load_method sets both
    name = f"{folder.parent.parent.name}/{folder.name}"
    return export_method(method, method.run_config, out, fmt=fmt, opset=opset, dynamic_size=dynamic_size, size=size,
                         options=options, tolerance=tolerance, seed=seed, source=name)


def export_method(
    method: Method,
    cfg: Config,
    out: str | os.PathLike,
    *,
    fmt: str = "onnx",
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool = False,
    size: tuple[int, int] | None = None,
    options: dict[str, Any] | None = None,
    tolerance: float = TOLERANCE,
    seed: int = 0,
    source: str = "",
) -> ExportResult:
    """:func:`export_checkpoint` for a method object with its weights (on the CPU) and its config."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    t0 = time.perf_counter()
    out = Path(out)
    extra_state = dict(method.extra_state())
    profile = load_input_profile(method.checkpoint) if method.checkpoint is not None else None
    if profile is not None:  # the exported file checks its inputs as the checkpoint does
        extra_state["input_profile"] = profile.to_dict()
    notes: list[str] = []
    if method.inference_mode != "eval":
        notes.append(
            f"exported with eval-mode semantics (running statistics, no dropout); this checkpoint's "
            f"default inference mode {method.inference_mode!r} is stochastic / uses each image's batch "
            "statistics and is not exported: the file equals `pairgan translate --mode eval`"
        )
    method.set_inference_mode("eval")
    method.nets.eval()
    m = int(method.size_multiple)
    h, w = size or default_size(method, cfg)
    if dynamic_size and size is None:  # symbolic sizes need a sample of at least 2 multiples
        h, w = max(h, 2 * m), max(w, 2 * m)
    if h % m or w % m:
        raise ExportError(f"--size {w}x{h}: height and width must be multiples of {m} (this network's size multiple)")
    if dynamic_size and (h < 2 * m or w < 2 * m):
        raise ExportError(f"--size {w}x{h} with --dynamic-size: the sample must be at least {2 * m}x{2 * m} "
                          "(two size multiples: torch.export specialises a size of one multiple)")

    def sample(n: int, sh: int, sw: int, s: int) -> ExportGraph:
        torch.manual_seed(s)
        batch = method.example_batch(n, sh, sw) | dict(options or {})
        torch.manual_seed(s)
        with torch.no_grad():
            return method.export_module(batch)

    graph = sample(2, h, w, seed)  # batch 2: a batch of 1 would be specialised by torch.export
    names, args = list(graph.inputs), tuple(graph.inputs.values())
    with torch.no_grad():
        expected = as_tuple(graph.module(*args))
    if len(expected) != len(graph.output_names):
        raise ExportError(f"{cfg.method}: export_module names {len(graph.output_names)} outputs, the module "
                          f"returns {len(expected)}")
    meta = build_metadata(cfg, graph.inputs, graph.output_names, size_multiple=m, dynamic_size=dynamic_size,
                          size=(h, w), extra_state=extra_state, source=source,
                          opset=opset if fmt == "onnx" else None, weights=method.weights_source)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_bytes = sum(p.numel() * p.element_size() for p in graph.module.parameters())
    large = fmt == "onnx" and n_bytes > _TWO_GB
    tmp = out if large else temp_name(out)
    try:
        if fmt == "onnx":
            _write_onnx(graph, names, args, tmp, opset, dynamic_size, m, large, meta)
            runner = open_runner(tmp, fmt)
            if large:
                notes.append(f"weights of {n_bytes / 2**30:.1f} GiB exceed protobuf's 2 GB: stored in {out.name}.data")
        else:
            _write_torchscript(graph, args, tmp, meta)
            runner = open_runner(tmp, fmt)
            notes.append("TorchScript (torch.jit) is deprecated upstream; ONNX is the recommended format")
        checks = [_check(runner, fmt, f"{'x'.join(map(str, args[0].shape))} {names[0]}"
                         + (f" (+ {', '.join(names[1:])})" if len(names) > 1 else ""), graph.inputs, expected)]
        if dynamic_size:
            h2, w2 = h + m, w + 2 * m
            g2 = sample(1, h2, w2, seed + 1)
            with torch.no_grad():
                e2 = as_tuple(g2.module(*g2.inputs.values()))
            checks.append(_check(runner, fmt, f"1x{h2}x{w2} (another batch and size)", g2.inputs, e2))
        worst = max(d for _, d in checks)
        if not math.isfinite(worst) or worst > tolerance:
            raise ExportMismatch(
                f"the exported {fmt} graph differs from eager PyTorch by {worst:.3g} (> tolerance {tolerance:g}): "
                + "; ".join(f"{w_}: {d:.3g}" for w_, d in checks) + "; the file was not kept"
            )
        del runner
        if tmp != out:
            publish(tmp, out)
    except BaseException:
        if tmp != out:
            tmp.unlink(missing_ok=True)
        raise
    return ExportResult(
        path=out, format=fmt, opset=opset if fmt == "onnx" else None, dynamic_size=dynamic_size, size=(h, w),
        size_multiple=m, inputs=meta["inputs"], outputs=list(graph.output_names), checks=checks,
        max_abs_diff=worst, tolerance=tolerance, bytes=out.stat().st_size, seconds=time.perf_counter() - t0,
        notes=notes, weights=method.weights_source,
    )


def _check(runner: GraphRunner, fmt: str, what: str, inputs: dict[str, torch.Tensor],
           eager: tuple[torch.Tensor, ...]) -> tuple[str, float]:
    """Run the exported file on ``inputs``: (``what``, its largest difference from ``eager``)."""
    try:
        got = runner(inputs)
    except Exception as exc:
        raise ExportMismatch(f"the exported {fmt} graph fails on {what} ({type(exc).__name__}: "
                             f"{str(exc)[:500]}); the file was not kept") from None
    return what, _max_diff(got, eager)


def _write_onnx(graph: ExportGraph, names: list[str], args: tuple[torch.Tensor, ...], path: Path, opset: int,
                dynamic_size: bool, m: int, large: bool, meta: dict[str, Any]) -> None:
    try:  # deferred: optional dependencies (the onnx extra)
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError as exc:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install 'pairgan[onnx]'") from exc
    from torch.export import Dim  # deferred: torch.export is only needed here

    batch = Dim("batch", min=1, max=4096)
    if m > 1:
        hh, ww = m * Dim("h", min=1, max=65536 // m), m * Dim("w", min=1, max=65536 // m)
    else:
        hh, ww = Dim("height", min=2, max=65536), Dim("width", min=2, max=65536)
    # Every input shares one batch size, height and width.
    dyn = [({0: batch, 2: hh, 3: ww} if dynamic_size and t.dim() == 4 else {0: batch}) for t in args]
    try:
        write_onnx(graph.module, dict(zip(names, args)), graph.output_names, path, opset=opset, dynamic_shapes=dyn,
                   external_data=large)
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:2000]}") from exc
    model = onnx.load(str(path), load_external_data=False)
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    model.doc_string = f"pairgan {meta['method']} generator (eval mode), exported from {meta['checkpoint']}"
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
        f.flush()
        os.fsync(f.fileno())


def _write_torchscript(graph: ExportGraph, args: tuple[torch.Tensor, ...], path: Path, meta: dict[str, Any]) -> None:
    try:
        traced = trace_graph(graph.module, args)
        with quiet():
            torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
    except Exception as exc:
        raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {str(exc)[:2000]}") from exc
