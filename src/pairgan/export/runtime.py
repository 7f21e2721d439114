"""Running exported files: onnxruntime (ONNX) and ``torch.jit`` (TorchScript) behind the
Translator's interface, with the method's own pre- and post-processing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F

from pairgan.compiled import OnnxRunner, as_tuple, quiet
from pairgan.config import Config, config_from_dict
from pairgan.data.profile import InputProfile
from pairgan.errors import ExportError
from pairgan.export.format import read_metadata
from pairgan.infer import FALLBACK_BYTES_PER_PIXEL, Translator
from pairgan.methods.base import Method
from pairgan.methods.build import restore_method
from pairgan.padding import fit_batch, pad_batch

__all__ = ["ExportedTranslator", "OnnxRunner", "TorchScriptRunner", "open_runner"]


class GraphRunner(Protocol):
    """Runs an exported graph: named input tensors -> its output tensors, in order."""

    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]: ...


class TorchScriptRunner:
    """A TorchScript file in ``torch.jit`` on the CPU."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        with quiet():
            self.module = torch.jit.load(str(path), map_location="cpu")
        self.module.eval()

    @torch.no_grad()
    def __call__(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        with quiet():
            return as_tuple(self.module(*[v.detach().cpu() for v in inputs.values()]))


def open_runner(path: str | os.PathLike, fmt: str, threads: int | None = None) -> GraphRunner:
    """The runner of an exported file of format ``fmt`` (``onnx`` or ``torchscript``)."""
    if fmt != "onnx":
        return TorchScriptRunner(path, threads)
    try:
        return OnnxRunner(path, threads)
    except ImportError as exc:
        raise ExportError(str(exc)) from None


class ExportedTranslator(Translator):
    """A :class:`~pairgan.infer.Translator` that runs an exported file: onnxruntime (CPU) for
    ONNX, ``torch.jit`` for TorchScript. Pre- and post-processing are the method's own (its
    ``load_inference_input``, ``export_module`` inputs and ``finish``), so ``translate``,
    ``translate_files`` and ``translate_tiled`` behave as with the PyTorch backend.

    The method object is rebuilt from the config in the file on the ``meta`` device (no weights
    are allocated), with the extra state the file carries: only its pre/post-processing runs in PyTorch.
    """

    def __init__(self, cfg: Config, method: Method, runner: GraphRunner, meta: dict[str, Any], path: Path,
                 backend: str) -> None:
        super().__init__(cfg, method, torch.device("cpu"), None)
        self.runner = runner
        self.meta = meta
        if meta.get("input_profile"):
            self.input_profile = InputProfile.from_dict(meta["input_profile"])
        self.path = path
        self.backend = backend
        self.backend_reason = f"exported file {path.name}"
        self.dynamic_size = bool(meta.get("dynamic_size"))
        self.fixed_size = None if self.dynamic_size else (int(meta["size"][0]), int(meta["size"][1]))
        self._size_multiple = int(meta.get("size_multiple", 1))

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, backend: str | None = None, mode: str | None = None,
                  threads: int | None = None) -> "ExportedTranslator":
        """Load an exported file; ``backend``: ``onnxruntime`` (ONNX files) or ``torchscript``
        (TorchScript files); None picks by the file's format."""
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
        with quiet():
            method = restore_method(cfg, extra_state=meta, device="meta", mode="eval")
        # Files written before the metadata recorded it say nothing about EMA vs trained weights.
        method.weights_source = str(meta.get("weights", "unrecorded"))
        runner = open_runner(path, fmt, threads)
        return cls(cfg, method, runner, meta, path, "onnxruntime" if fmt == "onnx" else "torchscript")

    @property
    def mode(self) -> str:
        return "eval"

    @property
    def size_multiple(self) -> int:
        return self._size_multiple

    @torch.no_grad()
    def measure_bytes_per_pixel(self, options: dict[str, Any] | None = None) -> float:
        """An exported graph runs outside PyTorch's modules, so no layer can be watched: the
        conservative :data:`pairgan.infer.FALLBACK_BYTES_PER_PIXEL`."""
        return float(FALLBACK_BYTES_PER_PIXEL)

    def translate_batch(self, batch: dict[str, Any], seed: int | None = 0) -> torch.Tensor:
        """Same contract as :meth:`Translator.translate_batch`: NCHW in [-1, 1] of the inputs' size."""
        batch = {k: v.cpu() if torch.is_tensor(v) else v for k, v in batch.items()}
        scaled: Sequence[int] | None
        if self.fixed_size is None:
            padded, size = pad_batch(batch, self.size_multiple)
            scaled = size
        else:
            padded, size, scaled = fit_batch(batch, self.fixed_size)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            graph = self.method.export_module(padded)
        outs = self.runner(graph.inputs)
        out = graph.finish(outs, padded) if graph.finish is not None else outs[0]
        if size is not None:
            assert scaled is not None
            out = out[..., : scaled[0], : scaled[1]]
            if tuple(scaled) != tuple(size):
                out = F.interpolate(out.float(), size=tuple(size), mode="bilinear", align_corners=False)
        return out.float().clamp(-1, 1)
