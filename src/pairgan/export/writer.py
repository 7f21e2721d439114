"""Export a checkpoint's inference graph to ONNX or TorchScript, check it, and run exported files.

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
input/output spec, the size rules and the class palette travel inside the file (ONNX metadata
``pairgan``; TorchScript extra file ``pairgan.json``), so :class:`ExportedTranslator` needs only
the file.

Sizes: ``--dynamic-size`` exports height and width as symbolic multiples of the network's size
multiple (inputs are reflect-padded to it and cropped back, exactly as the PyTorch Translator
does); without it the graph has the fixed sample size and inputs are fitted to it: smaller ones
are reflect-padded to it and cropped back, larger ones are scaled down (aspect kept; ids nearest
neighbour), padded, translated and the output scaled back up. The batch size is always dynamic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pairgan.errors import ExportError, ExportMismatch
from pairgan.fsutil import publish, temp_name
from pairgan.infer import Translator
from pairgan.padding import fit_batch, pad_batch

FORMATS = ("onnx", "torchscript")
#: The dynamo-based exporter's own opset; lower ones are converted by onnx's version converter.
DEFAULT_OPSET = 18
TOLERANCE = 1e-4
METADATA_KEY = "pairgan"
TORCHSCRIPT_EXTRA = "pairgan.json"
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

    def summary(self) -> str:
        runner = "onnxruntime (CPU)" if self.format == "onnx" else "torch.jit.load"
        size = (f"dynamic size (multiples of {self.size_multiple})" if self.dynamic_size
                else f"fixed size {self.size[0]}x{self.size[1]} (HxW)")
        lines = [
            f"wrote {self.path} ({self.format}"
            + (f", opset {self.opset}" if self.opset else "")
            + f", {self.bytes / 2**20:.1f} MiB, {size}, dynamic batch) in {self.seconds:.1f} s",
            "  inputs: " + ", ".join(f"{k} {v}" for k, v in self.inputs.items())
            + "; outputs: " + ", ".join(self.outputs),
        ]
        for what, diff in self.checks:
            lines.append(f"  check {runner} vs eager PyTorch on {what}: max abs diff {diff:.3g}")
        lines.append(f"max abs diff {self.max_abs_diff:.3g} (tolerance {self.tolerance:g}): ok")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress chatter and deprecation warnings (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def model_classes(cfg: Any) -> dict[str, Any]:
    """A model's class palette and names: ``{"palette": [[r, g, b], ...] (colour i = class i) or None,
    "classes": names or None, "thing_ids": ids of countable classes or None}``.

    From ``data.palette`` when set; else a ``classes.json`` in the data set root or its parent (the
    synthetic scenes write one there, so a pix2pix model trained on their colour-coded aligned
    layout gets their palette); else, for label-map models (``data.label_nc`` > 0), the default
    palette of :func:`pairgan.data.labels.default_palette`. None for image models without one.
    """
    from pairgan.data.labels import default_palette, load_palette

    d = cfg.data
    candidates: list[Path] = []
    if d.palette:
        p = Path(d.palette).expanduser()
        candidates += [p] + ([Path(d.path) / p] if d.path and not p.is_absolute() else [])
    if d.path:
        candidates += [Path(d.path) / "classes.json", Path(d.path).parent / "classes.json"]
    for c in candidates:
        try:
            if not c.is_file():
                continue
            pal = load_palette(c)
        except Exception:  # an unreadable palette is not fatal to serving or exporting
            continue
        names = things = None
        try:
            doc = json.loads(c.read_text(encoding="utf-8"))
            if isinstance(doc, dict):
                if isinstance(doc.get("classes"), list):
                    names = [str(n) for n in doc["classes"]]
                if isinstance(doc.get("thing_ids"), list):
                    things = [int(i) for i in doc["thing_ids"]]
        except (OSError, ValueError, TypeError):
            pass
        if d.label_nc > 0 and len(pal) < d.label_nc:
            pal = np.concatenate([pal, default_palette(d.label_nc)[len(pal):]])
        return {"palette": pal.tolist(), "classes": names, "thing_ids": things}
    if d.label_nc > 0:
        return {"palette": default_palette(d.label_nc).tolist(), "classes": None, "thing_ids": None}
    return {"palette": None, "classes": None, "thing_ids": None}


def default_size(method: Any, cfg: Any) -> tuple[int, int]:
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


def _spec(inputs: dict[str, torch.Tensor], dynamic_size: bool) -> dict[str, list[Any]]:
    spec: dict[str, list[Any]] = {}
    for k, v in inputs.items():
        shape: list[Any] = ["batch", *v.shape[1:]]
        if dynamic_size and v.dim() == 4:
            shape[2], shape[3] = "height", "width"
        spec[k] = shape
    return spec


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if torch.is_tensor(out):
        return (out,)
    return tuple(out)


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


# --------------------------------------------------------------------------- the hook


def export_graph(method: Any, batch: dict[str, Any] | None = None) -> Any:
    """The method's inference graph and its inputs for ``batch``: its own
    :meth:`~pairgan.methods.base.Method.export_module` (an :class:`~pairgan.methods.base.ExportGraph`).
    Export, the exported-file backends and the server all go through this one hook."""
    return method.export_module(batch)


# --------------------------------------------------------------------------- runners


class _OnnxRunner:
    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError("onnxruntime is not installed: pip install 'pairgan[onnx]'") from exc
        opts = ort.SessionOptions()
        # As many threads as PyTorch uses (OMP_NUM_THREADS / torch.set_num_threads), and no spinning:
        # spinning workers starve everything else on a shared or oversubscribed CPU (a server's
        # event loop, other processes) for a few per cent of speed on an idle one.
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 4  # failures raise; the check reports them
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ExportError(f"the exported graph needs inputs {missing}; got {list(inputs)}")
        feeds = {n: inputs[n].detach().cpu().contiguous().numpy() for n in self.input_names}
        return tuple(torch.from_numpy(o) for o in self.session.run(self.output_names, feeds))


class _TorchScriptRunner:
    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        with _quiet():
            self.module = torch.jit.load(str(path), map_location="cpu")
        self.module.eval()

    @torch.no_grad()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        with _quiet():
            return _as_tuple(self.module(*[v.detach().cpu() for v in inputs.values()]))


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``pairgan`` metadata of an exported file (ONNX or TorchScript)."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        files = {TORCHSCRIPT_EXTRA: ""}
        try:
            with _quiet():
                torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as exc:
            raise ExportError(f"{path}: not a readable TorchScript file ({exc})") from None
        raw = files[TORCHSCRIPT_EXTRA]
        fmt = "torchscript"
    else:
        try:
            import onnx
        except ImportError as exc:
            raise ExportError("onnx is not installed: pip install 'pairgan[onnx]'") from exc
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:
            raise ExportError(f"{path}: not a readable ONNX file ({exc})") from None
        props = {p.key: p.value for p in model.metadata_props}
        raw = props.get(METADATA_KEY, "")
        fmt = "onnx"
    if not raw:
        raise ExportError(f"{path}: no pairgan metadata (was it written by `pairgan export`?)")
    meta = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    meta["format"] = fmt
    return meta


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
) -> ExportResult:
    """Export ``checkpoint``'s inference graph to ``out`` and check it against eager PyTorch.

    ``size`` (height, width) is the sample size (the fixed size without ``dynamic_size``);
    default: the training crop size rounded up to the size multiple. ``options`` are the
    method's inference options for the sample batch. Raises :class:`ExportError` (and keeps no
    file) when the exported graph differs from eager PyTorch by more than ``tolerance``.
    """
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    tr = Translator.from_checkpoint(checkpoint, device="cpu")  # also attaches the run's extra files
    name = f"{tr.checkpoint.parent.parent.name}/{tr.checkpoint.name}" if tr.checkpoint else ""
    return export_method(tr.method, tr.cfg, out, fmt=fmt, opset=opset, dynamic_size=dynamic_size, size=size,
                         options=options, tolerance=tolerance, seed=seed, source=name)


def export_method(
    method: Any,
    cfg: Any,
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
    clusters = method.find_clusters() if hasattr(method, "find_clusters") else None
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

    def sample(n: int, sh: int, sw: int, s: int) -> tuple[Any, dict[str, Any]]:
        torch.manual_seed(s)
        batch = method.example_batch(n, sh, sw) | dict(options or {})
        torch.manual_seed(s)
        with torch.no_grad():
            return export_graph(method, batch), batch

    graph, _ = sample(2, h, w, seed)  # batch 2: a batch of 1 would be specialised by torch.export
    names, args = list(graph.inputs), tuple(graph.inputs.values())
    with torch.no_grad():
        expected = _as_tuple(graph.module(*args))
    if len(expected) != len(graph.output_names):
        raise ExportError(f"{cfg.method}: export_module names {len(graph.output_names)} outputs, the module "
                          f"returns {len(expected)}")
    meta = {
        "format_version": 1,
        "method": cfg.method,
        "config": cfg.to_dict(),
        "inputs": _spec(graph.inputs, dynamic_size),
        "input_dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in graph.inputs.items()},
        "outputs": list(graph.output_names),
        "size_multiple": m,
        "dynamic_size": bool(dynamic_size),
        "size": [h, w],
        "mode": "eval",
        **model_classes(cfg),
        "clusters": {str(int(c)): v.tolist() for c, v in clusters.items()} if clusters else None,
        "checkpoint": source,
        "torch": torch.__version__,
        "opset": opset if fmt == "onnx" else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    n_bytes = sum(p.numel() * p.element_size() for p in graph.module.parameters())
    large = fmt == "onnx" and n_bytes > _TWO_GB
    tmp = out if large else temp_name(out)
    try:
        if fmt == "onnx":
            _write_onnx(graph, names, args, tmp, opset, dynamic_size, m, large, meta)
            runner: Any = _OnnxRunner(tmp)
            if large:
                notes.append(f"weights of {n_bytes / 2**30:.1f} GiB exceed protobuf's 2 GB: stored in {out.name}.data")
        else:
            _write_torchscript(graph, args, tmp, meta)
            runner = _TorchScriptRunner(tmp)
            notes.append("TorchScript (torch.jit) is deprecated upstream; ONNX is the recommended format")
        def check(what: str, inputs: dict[str, torch.Tensor], eager: tuple[torch.Tensor, ...]) -> tuple[str, float]:
            try:
                got = runner(inputs)
            except Exception as exc:
                raise ExportMismatch(f"the exported {fmt} graph fails on {what} ({type(exc).__name__}: "
                                     f"{str(exc)[:500]}); the file was not kept") from None
            return what, _max_diff(got, eager)

        checks = [check(f"{'x'.join(map(str, args[0].shape))} {names[0]}"
                        + (f" (+ {', '.join(names[1:])})" if len(names) > 1 else ""), graph.inputs, expected)]
        if dynamic_size:
            h2, w2 = h + m, w + 2 * m
            g2, _ = sample(1, h2, w2, seed + 1)
            with torch.no_grad():
                e2 = _as_tuple(g2.module(*g2.inputs.values()))
            checks.append(check(f"1x{h2}x{w2} (another batch and size)", g2.inputs, e2))
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
        notes=notes,
    )


def _write_onnx(graph: Any, names: list[str], args: tuple[torch.Tensor, ...], path: Path, opset: int,
                dynamic_size: bool, m: int, large: bool, meta: dict[str, Any]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError as exc:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install 'pairgan[onnx]'") from exc
    from torch.export import Dim

    batch = Dim("batch", min=1, max=4096)
    if m > 1:
        hh, ww = m * Dim("h", min=1, max=65536 // m), m * Dim("w", min=1, max=65536 // m)
    else:
        hh, ww = Dim("height", min=2, max=65536), Dim("width", min=2, max=65536)
    # Every input shares one batch size, height and width.
    dyn = [({0: batch, 2: hh, 3: ww} if dynamic_size and t.dim() == 4 else {0: batch}) for t in args]
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                graph.module, args, str(path), input_names=names, output_names=list(graph.output_names),
                opset_version=opset, dynamic_shapes=tuple(dyn), external_data=large, dynamo=True, verbose=False,
            )
    except Exception as exc:
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc)[:2000]}") from exc
    model = onnx.load(str(path), load_external_data=False)
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(meta)})
    model.doc_string = f"pairgan {meta['method']} generator (eval mode), exported from {meta['checkpoint']}"
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
        f.flush()
        os.fsync(f.fileno())


def _write_torchscript(graph: Any, args: tuple[torch.Tensor, ...], path: Path, meta: dict[str, Any]) -> None:
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(graph.module, args, check_trace=False)
            torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_EXTRA: json.dumps(meta)})
    except Exception as exc:
        raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {str(exc)[:2000]}") from exc


# --------------------------------------------------------------------------- the exported-file backend


class ExportedTranslator(Translator):
    """A :class:`~pairgan.infer.Translator` that runs an exported file: onnxruntime (CPU) for
    ONNX, ``torch.jit`` for TorchScript. Pre- and post-processing are the method's own (its
    ``load_inference_input``, ``export_module`` inputs and ``finish``), so ``translate``,
    ``translate_files`` and ``translate_tiled`` behave as with the PyTorch backend.

    The method object is rebuilt from the config in the file on the ``meta`` device (no weights
    are allocated): only its pre/post-processing runs in PyTorch.
    """

    def __init__(self, cfg: Any, method: Any, runner: Any, meta: dict[str, Any], path: Path, backend: str) -> None:
        super().__init__(cfg, method, torch.device("cpu"), None)
        self.runner = runner
        self.meta = meta
        self.path = path
        self.backend = backend
        self.dynamic_size = bool(meta.get("dynamic_size"))
        self.fixed_size = None if self.dynamic_size else tuple(int(v) for v in meta["size"])
        self.size_multiple = int(meta.get("size_multiple", 1))

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, backend: str | None = None, mode: str | None = None,
                  threads: int | None = None) -> "ExportedTranslator":
        """Load an exported file; ``backend``: ``onnxruntime`` (ONNX files) or ``torchscript``
        (TorchScript files); None picks by the file's format."""
        from pairgan.config import config_from_dict
        from pairgan.methods.build import build_method

        path = Path(path)
        if path.is_dir():
            raise ExportError(f"{path}: a folder; backend {backend} runs an exported file "
                              "(`pairgan export CHECKPOINT --out FILE`), use --backend torch for checkpoints")
        if mode not in (None, "eval"):
            raise ExportError(f"--mode {mode}: exported files have eval-mode semantics only "
                              "(pix2pix's paper mode is stochastic and is not exported); use --backend torch")
        meta = read_metadata(path)
        fmt = meta["format"]
        want = {"onnxruntime": "onnx", "torchscript": "torchscript"}
        if backend is not None and want.get(backend) != fmt:
            raise ExportError(f"{path}: a {fmt} file; --backend {backend} runs "
                              f"{want.get(backend, 'nothing')} files")
        cfg = config_from_dict(meta["config"])
        with torch.device("meta"), _quiet():
            method = build_method(cfg, training=False)
        method.set_inference_mode("eval")
        if meta.get("clusters") and hasattr(method, "clusters"):
            method.clusters = {int(c): torch.tensor(v, dtype=torch.float32) for c, v in meta["clusters"].items()}
        runner = _OnnxRunner(path, threads) if fmt == "onnx" else _TorchScriptRunner(path, threads)
        return cls(cfg, method, runner, meta, path, "onnxruntime" if fmt == "onnx" else "torchscript")

    @property
    def mode(self) -> str:
        return "eval"

    @torch.no_grad()
    def translate_batch(self, batch: dict[str, Any], seed: int | None = 0) -> torch.Tensor:
        """Same contract as :meth:`Translator.translate_batch`: NCHW in [-1, 1] of the inputs' size."""
        batch = {k: v.cpu() if torch.is_tensor(v) else v for k, v in batch.items()}
        if self.fixed_size is None:
            padded, size = pad_batch(batch, self.size_multiple)
            scaled = size
        else:
            padded, size, scaled = fit_batch(batch, self.fixed_size)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            graph = export_graph(self.method, padded)
        outs = self.runner(graph.inputs)
        out = graph.finish(outs, padded) if graph.finish is not None else outs[0]
        if size is not None:
            out = out[..., : scaled[0], : scaled[1]]
            if tuple(scaled) != tuple(size):
                out = F.interpolate(out.float(), size=tuple(size), mode="bilinear", align_corners=False)
        return out.float().clamp(-1, 1)
