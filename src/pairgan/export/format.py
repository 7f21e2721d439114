"""The exported-file format: what ``pairgan export`` writes beside the graph, and reading it back.

An exported file is an ONNX model (metadata property ``pairgan``) or a TorchScript archive (extra
file ``pairgan.json``) whose metadata is one JSON object: the checkpoint's config, the input and
output spec, the size rules, the method's extra state (:meth:`~pairgan.methods.base.Method.extra_state`:
its class palette, pix2pixHD's feature clusters) and where it came from. With it the file alone
rebuilds the method's pre- and post-processing (:class:`pairgan.export.ExportedTranslator`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from pairgan.compiled import quiet
from pairgan.config import Config
from pairgan.errors import ExportError

__all__ = ["FORMAT_VERSION", "METADATA_KEY", "TORCHSCRIPT_EXTRA", "build_metadata", "quiet", "read_metadata"]

#: Version of the metadata layout.
FORMAT_VERSION = 1
#: The ONNX metadata property holding the JSON metadata.
METADATA_KEY = "pairgan"
#: The TorchScript archive's extra file holding the JSON metadata.
TORCHSCRIPT_EXTRA = "pairgan.json"


def input_spec(inputs: Mapping[str, torch.Tensor], dynamic_size: bool) -> dict[str, list[Any]]:
    """Each graph input's shape with its symbolic dimensions named (``batch``, ``height``, ``width``)."""
    spec: dict[str, list[Any]] = {}
    for k, v in inputs.items():
        shape: list[Any] = ["batch", *v.shape[1:]]
        if dynamic_size and v.dim() == 4:
            shape[2], shape[3] = "height", "width"
        spec[k] = shape
    return spec


def build_metadata(
    cfg: Config,
    inputs: Mapping[str, torch.Tensor],
    output_names: tuple[str, ...] | list[str],
    *,
    size_multiple: int,
    dynamic_size: bool,
    size: tuple[int, int],
    extra_state: Mapping[str, Any],
    source: str,
    opset: int | None,
    weights: str = "raw",
) -> dict[str, Any]:
    """The metadata an exported file carries (plain JSON values)."""
    return {
        "format_version": FORMAT_VERSION,
        "method": cfg.method,
        "config": cfg.to_dict(),
        "inputs": input_spec(inputs, dynamic_size),
        "input_dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in inputs.items()},
        "outputs": list(output_names),
        "size_multiple": int(size_multiple),
        "dynamic_size": bool(dynamic_size),
        "size": [int(size[0]), int(size[1])],
        "mode": "eval",
        **extra_state,
        "checkpoint": source,
        "weights": weights,
        "torch": torch.__version__,
        "opset": opset,
    }


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``pairgan`` metadata of an exported file (ONNX or TorchScript), with ``format`` set to
    ``onnx`` or ``torchscript``."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such exported file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        files = {TORCHSCRIPT_EXTRA: ""}
        try:
            with quiet():
                torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except Exception as exc:
            raise ExportError(f"{path}: not a readable TorchScript file ({exc})") from None
        raw: str | bytes = files[TORCHSCRIPT_EXTRA]
        fmt = "torchscript"
    else:
        try:
            import onnx  # deferred: an optional dependency (the onnx extra)
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
