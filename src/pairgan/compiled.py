"""Compiled inference graphs: a method's export graph compiled, cached beside its checkpoint and run.

The fast default behind ``translate``, ``pairgan.load``, ``evaluate`` and ``serve`` (``--backend
auto``). What is compiled is the method's :meth:`~pairgan.methods.base.Method.export_module`, the
network part of ``translate`` with eval-mode semantics, so everything before it (one-hot labels,
edge maps, feature maps) and after it (a CRN variant) stays the method's own eager code. First a
copy of the module in eval mode gets every batch norm that follows a convolution or a transposed
convolution folded into it (:func:`fold_batch_norms`; ``torch.jit.freeze`` folds only plain
convolutions). Then, by kind (:data:`KINDS`):

* ``onnxruntime`` (CPU, when the ``onnx`` extra is installed; what ``auto`` picks there): exported
  with ``torch.onnx.export`` (dynamo, dynamic batch) and run in an onnxruntime CPU session, which
  fuses convolutions with their activations and runs transposed convolutions as GEMMs. Measured
  1.74x the reference at batch 1 and 1.45x at batch 8 (``benchmarks/speed_vs_reference.md``).
* ``torchscript`` (any device; ``auto`` without onnxruntime, and on CUDA): traced with
  ``torch.jit.trace`` and frozen (``torch.jit.freeze``: weights become constants, dead code
  removed), with 4-D inputs in the memory format of :func:`preferred_memory_format`.

Graphs are files in the cache (:class:`GraphCache`): ``CHECKPOINT/compiled/<key>.onnx|.pt``, or
``$PAIRGAN_CACHE/compiled/`` when the checkpoint folder is not writable. The key
(:func:`graph_key`) hashes the weights actually compiled (a changed checkpoint, or EMA instead of raw
weights, is a new key), the inputs' shapes without the batch size and their dtypes, the kind, the
device type, the memory format, the torch version and :data:`RECIPE_VERSION`.

A graph is trusted only after its first use agrees with eager PyTorch on that batch within
:data:`TOLERANCE` (the translator checks it); one that does not is dropped, removed from the cache
and eager PyTorch runs instead.

A graph is exact only for deterministic semantics: eval mode, or a mode whose networks hold no
batch norm and no dropout (:func:`stochastic_modules`), such as pix2pix's ``paper`` mode with
instance norm and no dropout, where train- and eval-mode outputs coincide.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from pairgan.fsutil import publish, temp_name
from pairgan.hub import in_hub_cache

__all__ = [
    "BACKENDS",
    "CACHE_DIR",
    "DEFAULT_OPSET",
    "KINDS",
    "RECIPE_VERSION",
    "TOLERANCE",
    "CompiledGraph",
    "GraphCache",
    "OnnxRunner",
    "as_tuple",
    "compile_graph",
    "fold_batch_norms",
    "graph_key",
    "max_abs_diff",
    "onnxruntime_missing",
    "preferred_memory_format",
    "quiet",
    "run_graph",
    "stochastic_modules",
    "trace_graph",
    "weights_fingerprint",
    "write_onnx",
]

log = logging.getLogger(__name__)

#: What ``--backend`` accepts: ``auto`` (a compiled graph where it is exact: onnxruntime on the CPU
#: when installed, else TorchScript; eager PyTorch where no graph is exact), ``torch`` (eager),
#: ``torchscript`` or ``onnxruntime`` (that kind of compiled graph, required).
BACKENDS = ("auto", "torch", "torchscript", "onnxruntime")
#: Largest absolute difference from eager PyTorch a compiled graph may show on its first use.
TOLERANCE = 1e-4
#: Bumped whenever the compilation steps change, so older cached graphs are not reused.
RECIPE_VERSION = 1
#: The cache's folder name (inside the checkpoint folder or ``$PAIRGAN_CACHE``).
CACHE_DIR = "compiled"
#: What a graph can be compiled to, and the cache file suffix of each.
KINDS = ("onnxruntime", "torchscript")
SUFFIXES = {"onnxruntime": ".onnx", "torchscript": ".pt"}
#: The dynamo-based ONNX exporter's own opset.
DEFAULT_OPSET = 18


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the tracers' and exporters' progress chatter and deprecation warnings (errors still raise)."""
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


def as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    """A module's output (a tensor or a sequence of them) as a tuple."""
    if torch.is_tensor(out):
        return (out,)
    return tuple(out)


def max_abs_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """The largest absolute difference between two equally long sequences of tensors (inf when
    their number or shapes differ, or a value is not finite)."""
    if len(a) != len(b):
        return float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return float("inf")
        if x.numel():
            worst = max(worst, float((x.float() - y.float()).abs().max()))
    return worst if worst == worst else float("inf")  # NaN -> inf


def stochastic_modules(module: nn.Module) -> list[str]:
    """Names of the submodules whose train-mode output depends on the batch or on chance: batch
    norms and dropout with p > 0. Without them, train- and eval-mode outputs coincide."""
    found = []
    for name, mod in module.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            found.append(name or type(mod).__name__)
        elif isinstance(mod, nn.modules.dropout._DropoutNd) and mod.p > 0:
            found.append(name or type(mod).__name__)
    return found


def _fold_into(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold eval-mode ``bn`` into ``conv`` in place: ``bn(conv(x)) == conv'(x)``."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else \
        1 / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias.detach() if bn.affine else 0) - bn.running_mean * scale
    w = conv.weight.detach()
    groups = conv.groups
    if isinstance(conv, nn.ConvTranspose2d):
        # Weight (in, out / groups, kh, kw): output channel g * (out / groups) + j is [:, j] of group g.
        per = w.shape[1]
        s = scale.view(groups, 1, per, 1, 1)
        w = (w.view(groups, -1, per, *w.shape[2:]) * s).view_as(w)
    else:
        w = w * scale.view(-1, 1, 1, 1)
    bias = conv.bias.detach() * scale + shift if conv.bias is not None else shift
    conv.weight = nn.Parameter(w.contiguous(), requires_grad=False)
    conv.bias = nn.Parameter(bias.contiguous(), requires_grad=False)


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """A copy of ``module`` in eval mode where each ``BatchNorm2d`` (with running statistics) that
    directly follows a ``Conv2d`` or ``ConvTranspose2d`` in an ``nn.Sequential`` is folded into the
    convolution's weight and bias and replaced by ``nn.Identity``."""
    module = copy.deepcopy(module).eval()
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = seq._modules[first], seq._modules[second]
            if (isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d)
                    and bn.track_running_stats and bn.running_mean is not None
                    and bn.num_features == conv.out_channels):
                with torch.no_grad():
                    _fold_into(conv, bn)
                seq._modules[second] = nn.Identity()
    return module


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's state (names, dtypes, shapes and bytes of every parameter and buffer)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            t = t.cpu().contiguous()
            # The raw bytes, viewed without copying (bfloat16 has no NumPy dtype: view as int16).
            h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().reshape(-1).view("u1").data)
    return h.hexdigest()


def preferred_memory_format(device: torch.device, kind: str = "torchscript") -> torch.memory_format:
    """The memory format 4-D inputs are compiled for: channels-last for TorchScript on the CPU
    (oneDNN's native layout; its transposed convolutions otherwise convert every output back:
    measured 1.2-1.3x at batch 8, 1.1x at batch 1 for the pix2pix U-Net), the default elsewhere
    (onnxruntime takes NCHW)."""
    return torch.channels_last if device.type == "cpu" and kind == "torchscript" else torch.contiguous_format


def graph_key(fingerprint: str, inputs: dict[str, torch.Tensor], device: torch.device,
              memory_format: torch.memory_format, kind: str = "torchscript") -> str:
    """The cache key of a compiled graph (see the module docstring): 24 hex digits."""
    shapes = ";".join(f"{k}:{tuple(v.shape[1:])}:{v.dtype}" for k, v in inputs.items())
    text = "|".join([fingerprint, shapes, kind, device.type, str(memory_format), torch.__version__,
                     f"recipe{RECIPE_VERSION}"])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def onnxruntime_missing() -> str | None:
    """Why the ``onnxruntime`` kind cannot be built here (a missing package), or None."""
    for module in ("onnxruntime", "onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'pairgan[onnx]')"
    return None


def _formatted(inputs: dict[str, torch.Tensor], memory_format: torch.memory_format) -> tuple[torch.Tensor, ...]:
    return tuple(v.contiguous(memory_format=memory_format) if v.dim() == 4 else v for v in inputs.values())


def trace_graph(module: nn.Module, args: tuple[torch.Tensor, ...]) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of ``module`` on ``args`` (no gradients, quietly): the one tracer of
    pairgan (``pairgan export --format torchscript`` writes the same)."""
    with quiet(), torch.no_grad():
        return torch.jit.trace(module, args, check_trace=False)


def compile_graph(module: nn.Module, inputs: dict[str, torch.Tensor],
                  memory_format: torch.memory_format = torch.contiguous_format) -> torch.jit.ScriptModule:
    """The TorchScript graph of ``module`` (an export graph's module) for ``inputs``: batch norms
    folded, traced with 4-D inputs in ``memory_format``, frozen. Eval-mode semantics."""
    folded = fold_batch_norms(module)
    if memory_format != torch.contiguous_format:
        folded = folded.to(memory_format=memory_format)
    traced = trace_graph(folded, _formatted(inputs, memory_format))
    with quiet():
        return torch.jit.freeze(traced.eval())


def run_graph(graph: torch.jit.ScriptModule, inputs: dict[str, torch.Tensor],
              memory_format: torch.memory_format) -> tuple[torch.Tensor, ...]:
    """Run a TorchScript graph: its outputs as a tuple, in the default (contiguous) memory format."""
    with torch.no_grad():
        out = as_tuple(graph(*_formatted(inputs, memory_format)))
    return tuple(o.contiguous() for o in out)


def write_onnx(module: nn.Module, inputs: dict[str, torch.Tensor], output_names: Sequence[str],
               path: str | os.PathLike, *, opset: int = DEFAULT_OPSET, dynamic_shapes: Sequence[dict] | None = None,
               external_data: bool = False) -> None:
    """Export ``module`` to an ONNX file at ``path`` with the dynamo exporter (quietly, no
    gradients): the one ONNX writer of pairgan. ``dynamic_shapes``: one ``{dim: torch.export.Dim}``
    per input (default: a dynamic batch for every input)."""
    from torch.export import Dim  # deferred: torch.export is only needed here

    if dynamic_shapes is None:
        batch = Dim("batch", min=1, max=4096)
        dynamic_shapes = [{0: batch} for _ in inputs]
    with quiet(), torch.no_grad():
        torch.onnx.export(module, tuple(inputs.values()), str(path), input_names=list(inputs),
                          output_names=list(output_names), opset_version=opset, dynamic_shapes=tuple(dynamic_shapes),
                          external_data=external_data, dynamo=True, verbose=False)


class OnnxRunner:
    """An ONNX file in onnxruntime's CPU provider: named input tensors -> its output tensors."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort  # deferred: an optional dependency (the onnx extra)
        except ImportError as exc:
            raise ImportError("onnxruntime is not installed: pip install 'pairgan[onnx]'") from exc
        opts = ort.SessionOptions()
        # As many threads as PyTorch uses (OMP_NUM_THREADS / torch.set_num_threads), and no spinning:
        # spinning workers starve everything else on a shared or oversubscribed CPU (a server's
        # event loop, other processes) for a few per cent of speed on an idle one.
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 4  # failures raise; the callers report them
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"the ONNX graph needs inputs {missing}; got {list(inputs)}")
        feeds = {n: inputs[n].detach().cpu().contiguous().numpy() for n in self.input_names}
        return tuple(torch.from_numpy(o) for o in self.session.run(self.output_names, feeds))


class CompiledGraph:
    """A compiled graph ready to run: ``graph(inputs)`` -> its outputs (a tuple, contiguous, on the
    inputs' device)."""

    def __init__(self, kind: str, path: Path, device: torch.device, memory_format: torch.memory_format) -> None:
        self.kind, self.path, self.device, self.memory_format = kind, path, device, memory_format
        if kind == "onnxruntime":
            self._onnx: OnnxRunner | None = OnnxRunner(path)
        else:
            self._onnx = None
            with quiet():
                self._script = torch.jit.load(str(path), map_location=device)

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if self._onnx is not None:
            return tuple(o.to(self.device) for o in self._onnx(inputs))
        return run_graph(self._script, inputs, self.memory_format)


def _build(kind: str, module: nn.Module, inputs: dict[str, torch.Tensor], output_names: Sequence[str],
           memory_format: torch.memory_format, path: Path) -> None:
    """Compile ``module`` for ``inputs`` as ``kind`` into the file ``path``."""
    if kind == "onnxruntime":
        # torch.export specialises a dimension seen as 1: a sample batch of one is exported as two.
        sample = {k: v.expand(2, *v.shape[1:]).contiguous() if v.shape[0] == 1 else v for k, v in inputs.items()}
        write_onnx(fold_batch_norms(module), sample, output_names, path)
    else:
        graph = compile_graph(module, inputs, memory_format)
        with quiet():
            torch.jit.save(graph, str(path))


class GraphCache:
    """Compiled graphs on disk, one file per key (``<key>.pt`` TorchScript, ``<key>.onnx`` ONNX),
    in the first of ``folders`` that can be written (reads look in all of them). Files are
    published atomically; a file that cannot be opened is treated as missing and replaced."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [Path(f) for f in folders]

    @classmethod
    def for_checkpoint(cls, checkpoint: Path | None) -> "GraphCache":
        """``CHECKPOINT/compiled``, then ``$PAIRGAN_CACHE/compiled`` (default ``~/.cache/pairgan``).
        A model downloaded from the Hub keeps its graphs in the latter only: its snapshot folder in
        the Hugging Face cache is the Hub library's, not ours to add files to."""
        user = Path(os.environ.get("PAIRGAN_CACHE") or "~/.cache/pairgan").expanduser() / CACHE_DIR
        own = checkpoint is not None and not in_hub_cache(checkpoint)
        return cls(([Path(checkpoint) / CACHE_DIR] if own else []) + [user])

    @staticmethod
    def filename(key: str, kind: str) -> str:
        return f"{key}{SUFFIXES[kind]}"

    def path(self, key: str, kind: str) -> Path | None:
        """Where the graph of ``key`` is stored, or None."""
        for folder in self.folders:
            p = folder / self.filename(key, kind)
            if p.is_file():
                return p
        return None

    def load(self, key: str, kind: str, device: torch.device,
             memory_format: torch.memory_format) -> CompiledGraph | None:
        """The stored graph of ``key``, or None."""
        p = self.path(key, kind)
        if p is None:
            return None
        try:
            return CompiledGraph(kind, p, device, memory_format)
        except Exception as exc:  # noqa: BLE001 - a damaged cache file is rebuilt, never fatal
            log.warning("warning: %s: unreadable compiled graph (%s); compiling it again", p, type(exc).__name__)
            self.remove(key, kind)
            return None

    def build(self, key: str, kind: str, module: nn.Module, inputs: dict[str, torch.Tensor],
              output_names: Sequence[str], device: torch.device,
              memory_format: torch.memory_format) -> CompiledGraph:
        """Compile ``module`` into the first writable folder and open it; without a writable
        folder the file lives in a temporary folder until it is opened (``path`` then names a
        file that no longer exists). Compilation errors propagate."""
        name = self.filename(key, kind)
        for folder in self.folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                tmp = temp_name(folder / name)
                tmp.touch()  # fails early, before compiling, on a read-only folder
            except OSError as exc:
                log.debug("cannot cache a compiled graph in %s (%s)", folder, exc)
                continue
            try:
                _build(kind, module, inputs, output_names, memory_format, tmp)
                path = publish(tmp, folder / name)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return CompiledGraph(kind, path, device, memory_format)
        with tempfile.TemporaryDirectory(prefix="pairgan-compiled-") as folder:
            path = Path(folder) / name
            _build(kind, module, inputs, output_names, memory_format, path)
            return CompiledGraph(kind, path, device, memory_format)

    def remove(self, key: str, kind: str) -> None:
        """Delete every stored copy of ``key``."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                (folder / self.filename(key, kind)).unlink()
