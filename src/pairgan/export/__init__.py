"""``pairgan export``: a checkpoint's inference graph as an ONNX or TorchScript file, checked against
eager PyTorch, and the backend that runs such files with the method's own pre- and post-processing.

``format.py`` is the file's metadata (what is written beside the graph, :func:`read_metadata`),
``writer.py`` the export and its verification (:func:`export_checkpoint`, :func:`export_method`),
``runtime.py`` the onnxruntime / TorchScript runners behind :class:`ExportedTranslator`.
"""

from pairgan.export.format import METADATA_KEY, TORCHSCRIPT_EXTRA, read_metadata
from pairgan.export.runtime import ExportedTranslator
from pairgan.export.writer import (
    DEFAULT_OPSET,
    FORMATS,
    TOLERANCE,
    ExportResult,
    default_size,
    export_checkpoint,
    export_method,
    parse_size,
)

__all__ = [
    "DEFAULT_OPSET",
    "FORMATS",
    "METADATA_KEY",
    "TOLERANCE",
    "TORCHSCRIPT_EXTRA",
    "ExportResult",
    "ExportedTranslator",
    "default_size",
    "export_checkpoint",
    "export_method",
    "parse_size",
    "read_metadata",
]
