"""Inference: the Translator, a method ready to translate tensors, images, files and folders of any size.

The model comes from :func:`pairgan.methods.build.load_method` (a checkpoint alone rebuilds it).
Inputs are reflect-padded up to the network's size multiple (a U-Net with 8 downsamplings needs
multiples of 256) and the output is cropped back, so a 300x517 photo comes back 300x517; large
images can be translated in overlapping tiles.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from pairgan.checkpoint import load_input_profile
from pairgan.compiled import (
    BACKENDS,
    KINDS,
    TOLERANCE,
    CompiledGraph,
    GraphCache,
    graph_key,
    max_abs_diff,
    onnxruntime_missing,
    preferred_memory_format,
    stochastic_modules,
    weights_fingerprint,
)
from pairgan.config import Config
from pairgan.data.io import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    match_channels,
    read_image,
    to_unit_float,
    write_image,
)
from pairgan.data.profile import (
    InputProfile,
    check_input,
    colour_channels,
    describe_mismatch,
)
from pairgan.data.transforms import resize, to_array, to_tensor
from pairgan.errors import DataError
from pairgan.fsutil import is_disk_full
from pairgan.methods.base import Method
from pairgan.methods.build import load_method
from pairgan.padding import pad_batch
from pairgan.runtime import resolve_device
from pairgan.visual import printable, write_gallery

__all__ = ["BACKENDS", "SCALES", "CompiledEntry", "MemoryLimit", "OutputWriteError", "TranslatedItem", "Translator", "available_memory", "expand_inputs"]

log = logging.getLogger(__name__)

#: Memory a forward pass may plan to use, as a fraction of what is available when it starts.
MEMORY_FRACTION = 0.5
#: Bytes per pixel of the whole-image buffers around the network (the decoded file, its float
#: tensor, the output and its conversion to a file), added to the network's measured share.
IO_BYTES_PER_PIXEL = 64
#: Bytes per pixel assumed when the network cannot be measured (an exported graph has no modules
#: to watch): more than any of pairgan's generators measures at float32.
FALLBACK_BYTES_PER_PIXEL = 8192
#: Single-channel inputs up to this many pixels are decoded to check their kind (a label-id map
#: given to a model trained on colour images).
KIND_CHECK_PIXELS = 4096 * 4096
#: Forward passes up to this many pixels are never checked (no probe runs for small inputs).
UNCHECKED_PIXELS = 512 * 512
#: Where inputs are translated: ``training`` resizes each input to the size the model was trained
#: at (the data config's evaluation geometry, as ``evaluate`` reads a split) and returns the output
#: at that size; ``keep`` does the same and resizes the output back to the input's size (bicubic);
#: ``native`` translates the input at its own size (inputs are only padded to the size multiple).
SCALES = ("training", "keep", "native")


def _check_scale(scale: str) -> None:
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r}: expected one of {', '.join(SCALES)}")


def _resize_output(out: torch.Tensor, size: tuple[int, int], nearest: bool = False) -> torch.Tensor:
    """A CxHxW output in [-1, 1] resized to ``size`` (h, w) (``keep``): bicubic, or nearest when
    the outputs are colour-coded label maps (a segmenter's), whose colours must stay exact."""
    if tuple(out.shape[-2:]) == tuple(size):
        return out
    return to_tensor(resize(to_array(out), (size[1], size[0]), nearest))


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can use now: free GPU memory on CUDA, else the system's
    ``MemAvailable`` (``/proc/meminfo``), else free physical pages; None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class MemoryLimit:
    """The most pixels one forward pass may take, and where that number came from."""

    max_pixels: int
    #: Estimated bytes per forward-pass pixel (0 when the limit was given, not derived).
    bytes_per_pixel: float
    #: For messages: ``--max-pixels`` or the memory it was derived from.
    source: str


class OutputWriteError(OSError):
    """Writing an output failed (a full disk, no permission): ``errno`` says why and
    ``filename`` names the output (outputs finished before it are whole: writes are atomic)."""


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a list of image files."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
            if not matches:
                raise FileNotFoundError(f"{item}: no such file, folder or matching images")
            files += matches
    return files


@dataclass
class CompiledEntry:
    """A compiled graph in use for one input shape (see :mod:`pairgan.compiled`)."""

    graph: CompiledGraph
    key: str
    #: Its cache file (None when it could not be stored).
    path: Path | None
    #: Loaded from the cache (True) or compiled in this process (False).
    cached: bool
    #: Its first use's largest difference from eager PyTorch.
    max_abs_diff: float
    #: Seconds to compile or load it, check it and run its first batch.
    seconds: float


@dataclass
class TranslatedItem:
    name: str
    source: Path
    input: torch.Tensor  # CHW in [-1, 1]
    output: torch.Tensor  # CHW in [-1, 1]
    target: torch.Tensor | None = None


class Translator:
    """A trained generator ready to translate: ``pairgan.load(ckpt).translate(image)``.

    The PyTorch backend; :class:`pairgan.export.ExportedTranslator` runs an exported file with the
    same interface (``backend``, ``mode``, ``size_multiple``, ``fixed_size``, ``meta``).
    """

    #: What runs the network: ``torch`` (eager PyTorch) or ``torchscript`` (a compiled graph,
    #: :mod:`pairgan.compiled`) here; ``onnxruntime`` or ``torchscript`` for exported files.
    backend: str = "torch"
    #: The one input size (height, width) the network takes, or None for any multiple of
    #: :attr:`size_multiple` (exported files without ``--dynamic-size`` have one).
    fixed_size: tuple[int, int] | None = None
    #: An exported file's metadata (None here).
    meta: dict[str, Any] | None = None

    def __init__(self, cfg: Config | None, method: Method, device: torch.device,
                 checkpoint: Path | None = None, *, backend: str = "torch") -> None:
        self.cfg = cfg
        self.method = method
        self.device = device
        #: The checkpoint folder of the weights (the method's, unless given).
        self.checkpoint = checkpoint if checkpoint is not None else method.checkpoint
        #: The training inputs' profile saved with the checkpoint (None for older checkpoints and
        #: exported files: the config's input kind is then all that inputs are checked against).
        self.input_profile: InputProfile | None = (
            load_input_profile(self.checkpoint) if self.checkpoint is not None else None)
        self._scale_logged = False
        #: Why :attr:`backend` was chosen (one line, for messages and records).
        self.backend_reason = ""
        self.backend = self._resolve_backend(backend)
        #: Compiled graphs by input signature; None where compiling failed or disagreed with eager.
        self.graphs: dict[tuple, CompiledEntry | None] = {}
        self._fallback: str | None = None
        self._fingerprint: str | None = None
        self._cache = GraphCache.for_checkpoint(self.checkpoint) if self.backend in KINDS else None

    def _resolve_backend(self, backend: str) -> str:
        """``auto`` -> a compiled graph where one is exact for the mode and device (``onnxruntime``
        on the CPU when installed, else ``torchscript``), else ``torch``; ``torchscript`` and
        ``onnxruntime`` are refused (ValueError) where they would not be exact or cannot run."""
        if backend not in BACKENDS:
            raise ValueError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if backend == "torch":
            return "torch"
        why_not = None
        if self.device.type not in ("cpu", "cuda"):
            why_not = f"no compiled graphs on {self.device.type}"
        elif self.mode != "eval":
            random_parts = stochastic_modules(self.method.nets)
            if random_parts:
                shown = ", ".join(random_parts[:3]) + (", ..." if len(random_parts) > 3 else "")
                why_not = (f"{self.mode} mode uses batch statistics or dropout ({shown}): exact only eagerly; "
                           "--mode eval compiles")
        if why_not is not None:
            if backend != "auto":
                raise ValueError(f"--backend {backend}: {why_not}")
            self.backend_reason = why_not
            return "torch"
        missing = onnxruntime_missing() if self.device.type == "cpu" else "onnxruntime runs on the CPU here"
        if backend == "onnxruntime" and missing:
            raise ValueError(f"--backend onnxruntime: {missing}")
        kind = backend if backend in KINDS else ("onnxruntime" if missing is None else "torchscript")
        self.backend_reason = ("compiled graph: batch norms folded, " +
                               ("exported to ONNX" if kind == "onnxruntime" else "traced and frozen") +
                               ", checked against eager on first use")
        return kind

    def describe_backend(self) -> str:
        """What ran the network, in one line: the backend, why, and for compiled graphs where they
        are cached and how far their first use was from eager PyTorch."""
        if self._fallback is not None:
            return f"torch (eager): {self._fallback}"
        if self.backend not in KINDS or self._cache is None:
            return f"{self.backend}" + (f" ({self.backend_reason})" if self.backend_reason else "")
        used = [g for g in self.graphs.values() if g is not None]
        if not used:
            return f"{self.backend} ({self.backend_reason})"
        where = sorted({str(g.path.parent) for g in used if g.path is not None})
        return (f"{self.backend} (compiled graph{'s' if len(used) > 1 else ''}: "
                f"{sum(g.cached for g in used)} from the cache, {sum(not g.cached for g in used)} compiled; "
                f"max abs diff vs eager {max(g.max_abs_diff for g in used):.2g}; "
                + (f"cached in {', '.join(printable(w) for w in where)})" if where else "not cached: no writable folder)"))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", mode: str | None = None, *,
                        weights: str = "auto", backend: str = "auto") -> "Translator":
        """Rebuild the method's inference networks from a checkpoint (config + safetensors);
        ``weights``: ``auto`` (the moving average of ``train.ema`` when the run kept one), ``ema``
        or ``raw`` (see :func:`pairgan.methods.build.load_method`); ``backend``: ``auto`` (a
        compiled graph where it is exact for the mode, else eager), ``torch`` or ``torchscript``
        (:mod:`pairgan.compiled`)."""
        dev = resolve_device(device)
        method = load_method(path, dev, mode, weights=weights)
        tr = cls(method.run_config, method, dev, method.checkpoint, backend=backend)
        if backend == "torch":
            tr.backend_reason = "eager, asked for with --backend torch"
        return tr

    @property
    def mode(self) -> str:
        return self.method.inference_mode

    @property
    def size_multiple(self) -> int:
        """Inputs are padded to multiples of this."""
        return int(self.method.size_multiple)

    # ----------------------------------------------------------------- tensors
    @torch.no_grad()
    def translate_batch(self, batch: dict[str, Any], seed: int | None = 0) -> torch.Tensor:
        """A batch dict of NCHW tensors (plus the method's inference options) -> NCHW in [-1, 1]
        of the inputs' height and width.

        When outputs depend on batch statistics (pix2pix's ``paper`` mode) each image is run
        alone, so its output never depends on what else is in the batch; ``seed`` fixes any
        randomness (dropout masks, random features) so that the same input gives the same output.
        With a compiled backend (``onnxruntime``, ``torchscript``) the network part runs as a
        compiled graph (:meth:`_run_compiled`).
        """
        return self._translate(batch, seed, compiled=self._cache is not None)

    def _translate(self, batch: dict[str, Any], seed: int | None, *, compiled: bool) -> torch.Tensor:
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        padded, size = pad_batch(batch, self.method.size_multiple)
        with self._seeded(seed):
            out = self._run_compiled(padded, seed) if compiled else None
            if out is None:
                out = self._run_eager(padded)
        if size is not None:
            out = out[..., : size[0], : size[1]]
        return out.float().clamp(-1, 1)

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """A forked RNG (the caller's stream untouched), seeded with ``seed`` unless None."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            yield

    def _run_eager(self, padded: dict[str, Any]) -> torch.Tensor:
        tensors = [k for k, v in padded.items() if torch.is_tensor(v)]
        n = padded[tensors[0]].shape[0]
        if self.method.per_image_inference and n > 1:
            outs = [
                self.method.translate({k: (v[i : i + 1] if k in tensors else v) for k, v in padded.items()})
                for i in range(n)
            ]
            return torch.cat(outs)
        return self.method.translate(padded)

    def _run_compiled(self, padded: dict[str, Any], seed: int | None) -> torch.Tensor | None:
        """The method's output for ``padded`` through its compiled graph, or None where eager
        PyTorch must run (the graph failed to compile or disagreed with eager on first use)."""
        try:
            with _eval_mode(self.method.nets):
                graph = self.method.export_module(padded)
        except Exception as exc:  # noqa: BLE001 - a method without an export graph runs eagerly
            if self._fallback is None:
                self._fallback = f"no inference graph to compile ({type(exc).__name__}: {str(exc)[:200]})"
                log.warning("warning: %s; eager PyTorch runs instead", self._fallback)
            return None
        signature = tuple((k, tuple(v.shape[1:]), v.dtype) for k, v in graph.inputs.items())
        if signature in self.graphs:
            entry = self.graphs[signature]
            if entry is None:
                return None
            outs = entry.graph(graph.inputs)
            return graph.finish(outs, padded) if graph.finish is not None else outs[0]
        entry, out = self._prepare_graph(graph, padded, seed)
        self.graphs[signature] = entry
        return out

    def _prepare_graph(self, graph: Any, padded: dict[str, Any], seed: int | None
                       ) -> tuple[CompiledEntry | None, torch.Tensor | None]:
        """Load or compile the graph for ``graph``'s inputs, run it on this batch and check it
        against eager PyTorch: (the entry, its output), or (None, None) to run eagerly."""
        t0 = time.perf_counter()
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(graph.module)
        kind = self.backend
        fmt = preferred_memory_format(self.device, kind)
        key = graph_key(self._fingerprint, graph.inputs, self.device, fmt, kind)
        assert self._cache is not None
        compiled = self._cache.load(key, kind, self.device, fmt)
        cached = compiled is not None
        try:
            if compiled is None:
                log.info("compiling %s's inference graph for %s (%s; once per checkpoint and input size)",
                         self.cfg.method if self.cfg is not None else "the", _shapes(graph.inputs), kind)
                compiled = self._cache.build(key, kind, graph.module, graph.inputs, graph.output_names,
                                             self.device, fmt)
            outs = compiled(graph.inputs)
            got = graph.finish(outs, padded) if graph.finish is not None else outs[0]
        except Exception as exc:  # noqa: BLE001 - any failure to compile falls back to the exact eager path
            self._fallback = f"compiling the inference graph failed ({type(exc).__name__}: {str(exc)[:200]})"
            log.warning("warning: %s; eager PyTorch runs instead", self._fallback)
            if cached:
                self._cache.remove(key, kind)
            return None, None
        with self._seeded(seed):  # the same draws as the compiled run's pre-processing
            expected = self._run_eager(padded)
        diff = max_abs_diff([got], [expected])
        if diff > TOLERANCE:
            self._fallback = (f"the compiled graph differs from eager PyTorch by {diff:.3g} (> {TOLERANCE:g}) "
                              f"on {_shapes(graph.inputs)} inputs")
            log.warning("warning: %s; eager PyTorch runs instead", self._fallback)
            self._cache.remove(key, kind)
            return None, None
        path = compiled.path if compiled.path.is_file() else None
        entry = CompiledEntry(compiled, key, path, cached, diff, time.perf_counter() - t0)
        log.info("compiled graph %s %s in %.1f s (max abs diff vs eager %.2g)%s", key,
                 "loaded" if entry.cached else "built", entry.seconds, diff,
                 f"; cached at {printable(str(path))}" if path is not None else "")
        return entry, got

    @torch.no_grad()
    def translate_tiled(
        self, batch: dict[str, Any], tile: int, overlap: int = 32, seed: int | None = 0
    ) -> torch.Tensor:
        """Translate an image too large for memory in ``tile`` x ``tile`` pieces that overlap by
        ``overlap`` pixels, blended with linear ramps across the overlaps (no visible seams).

        Each output pixel is the weighted mean of the tiles covering it, with weights that fall to
        nearly zero at a tile's inner edges, where its context is cut. Methods whose outputs use
        whole-image statistics (instance norm, pix2pix's ``paper`` mode) see only a tile's
        statistics: prefer ``--mode eval`` with batch-norm models for tiling.
        """
        tensors = {k: v for k, v in batch.items() if torch.is_tensor(v) and v.dim() == 4}
        h, w = next(iter(tensors.values())).shape[-2:]
        if tile >= h and tile >= w:
            return self.translate_batch(batch, seed)
        if not 0 <= overlap < tile:
            raise ValueError(f"--overlap {overlap}: expected 0 <= overlap < tile ({tile})")
        ys, xs = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
        out = weight = None
        for y0 in ys:
            for x0 in xs:
                piece = {
                    k: (v[..., y0 : y0 + tile, x0 : x0 + tile] if k in tensors else v) for k, v in batch.items()
                }
                y = self.translate_batch(piece, seed).cpu()
                th, tw = y.shape[-2:]
                ramp = _ramp(th, overlap, y0 > 0, y0 + th < h)[:, None] * _ramp(tw, overlap, x0 > 0, x0 + tw < w)[None]
                if out is None:
                    out = torch.zeros(*y.shape[:2], h, w)
                    weight = torch.zeros(h, w)
                out[..., y0 : y0 + th, x0 : x0 + tw] += y * ramp
                weight[y0 : y0 + th, x0 : x0 + tw] += ramp
        assert out is not None and weight is not None
        return out / weight

    def translate_tensor(self, x: torch.Tensor, seed: int | None = 0) -> torch.Tensor:
        """Image-input methods: NCHW (or CHW) in [-1, 1] -> NCHW in [-1, 1], same size."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        nc = self.cfg.data.input_nc
        if x.shape[1] != nc:
            raise ValueError(f"input has {x.shape[1]} channels, the model expects {nc} (data.input_nc)")
        return self.translate_batch({"A": x.to(torch.float32)}, seed)

    # ----------------------------------------------------------------- images
    def translate(self, image: Any, seed: int | None = 0, *, strict: bool = False, scale: str = "training") -> Any:
        """Translate a PIL image, a NumPy array (HWC or HW; uint8, uint16 or float in [0, 1]) or a
        tensor (CHW/NCHW in [-1, 1]); returns the same kind of object.

        ``scale`` (:data:`SCALES`): ``training`` (default) resizes the image to the size the model
        was trained at (:meth:`~pairgan.methods.base.Method.to_training_scale`) and returns the
        output at that size; ``keep`` returns it resized back to the image's size; ``native``
        translates the image at its own size. An image clearly of another kind than the training
        inputs (:meth:`array_mismatch`) is logged as a warning, or refused with a
        :class:`~pairgan.errors.DataError` when ``strict``."""
        _check_scale(scale)
        if torch.is_tensor(image):
            first = image if image.dim() == 3 else image[0]
            self._report_mismatch(self.array_mismatch(
                ((first.detach().float().cpu() + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy(), "<tensor>"), strict)
            batch = image if image.dim() == 4 else image.unsqueeze(0)
            fitted = torch.stack([self._fit_image(x.detach().float().cpu(), scale, "<tensor>") for x in batch])
            out = self.translate_tensor(fitted, seed).cpu()
            if scale == "keep":
                out = torch.stack([_resize_output(o, tuple(batch.shape[-2:]), self._labels_out) for o in out])
            out = out.to(image.device)
            return out.squeeze(0) if image.dim() == 3 else out
        is_pil = isinstance(image, Image.Image)
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        self._report_mismatch(self.array_mismatch(arr, "<image>" if is_pil else "<array>"), strict)
        arr = match_channels(to_unit_float(arr), self.cfg.data.input_nc, "<array>")
        x = self._fit_image(to_tensor(arr), scale, "<image>" if is_pil else "<array>")
        y = self.translate_tensor(x, seed)[0].cpu()
        if scale == "keep":
            y = _resize_output(y, arr.shape[:2], self._labels_out)
        out = to_array(y)
        if is_pil:
            u8 = (out * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
            return Image.fromarray(u8[:, :, 0] if u8.shape[2] == 1 else u8)
        return out

    @property
    def _labels_out(self) -> bool:
        """Whether outputs are colour-coded label maps (resized back with nearest neighbour):
        outputs are of the targets' kind."""
        return self.method.resample_nearest("target")

    def _fit_image(self, x: torch.Tensor, scale: str, where: str) -> torch.Tensor:
        """An image input (CHW in [-1, 1]) at the training scale unless ``scale`` is ``native``."""
        if scale == "native":
            return x
        item, _ = self.method.to_training_scale({"A": x}, None, size_multiple=self.size_multiple)
        self._log_scale(where, tuple(x.shape[-2:]), tuple(item["A"].shape[-2:]), scale)
        return item["A"]

    def _log_scale(self, where: str, size: tuple[int, int], fitted: tuple[int, int], scale: str) -> None:
        """Say once per Translator how inputs are fitted to the training scale."""
        if self._scale_logged or self.method.reads_at_training_scale:
            return
        self._scale_logged = True
        back = "; outputs resized back to each input's size" if scale == "keep" else ""
        log.info("inputs read at the training scale, %s (e.g. %s: %dx%d -> %dx%d)%s; --native-size (scale='native') "
                 "translates them at their own size", self.method.inference_geometry(self.size_multiple).describe(),
                 where, size[1], size[0], fitted[1], fitted[0], back)

    @staticmethod
    def _report_mismatch(mismatch: str | None, strict: bool) -> None:
        if mismatch and strict:
            raise DataError(mismatch + " (strict=True)")
        if mismatch:
            log.warning("warning: %s", mismatch)

    def translate_files(
        self,
        files: Sequence[Path],
        out_dir: str | os.PathLike,
        *,
        aligned: bool = False,
        batch_size: int = 4,
        bit_depth: int = 8,
        gallery: bool = True,
        seed: int | None = 0,
        options: dict[str, Any] | None = None,
        tile: int | str = 0,
        overlap: int = 32,
        overwrite: bool = False,
        max_pixels: int | None = None,
        strict: bool = False,
        scale: str = "training",
    ) -> list[Path]:
        """Translate ``files`` into ``out_dir`` (``NAME.png``) and write ``index.html``.

        Each file is read by the method (:meth:`Method.load_inference_input`) and, with ``scale``
        ``training`` (the default) or ``keep``, resized to the size the model was trained at
        (:meth:`Method.to_training_scale`: the data config's evaluation geometry, nearest for label
        ids and colour labels, bicubic for photos); outputs are written at that size, or with
        ``keep`` resized back to each input's size; ``native`` translates inputs at their own size.
        Items of equal size are batched together; outputs are written atomically. ``options`` are the method's
        inference options (e.g. pix2pixHD's feature mode), passed in the batch.

        Before anything is written: an output that would land on an input file is refused
        (always), and so is an existing file in ``out_dir`` unless ``overwrite``
        (:class:`~pairgan.errors.DataError`). Each input's size is read from its header and its
        forward pass checked against ``max_pixels`` (None: derived from the available memory, see
        :meth:`memory_limit`); above it a DataError suggests tiles, or ``tile="auto"`` picks the
        largest tile that fits. A write that fails (a full disk) raises :class:`OutputWriteError`
        naming the output. An input that is clearly of another kind than the training inputs (see
        :meth:`input_mismatch`) is logged as a warning, once, or, when ``strict``, refused with a
        DataError before anything is written.
        """
        _check_scale(scale)
        out_dir = Path(out_dir)
        names = _unique_names(files)
        opts = dict(options or {})
        # Methods with several outputs per input (CRN's k variants) write them all unless one is
        # asked for: NAME_v0.png ... with one gallery column each.
        multi = self.method.num_variants > 1 and opts.get("variant") is None
        if multi:
            opts["variant"] = "all"
        auto_tile = tile == "auto"
        if not auto_tile and not (isinstance(tile, int) and tile >= 0):
            raise ValueError(f"--tile {tile}: expected a size in pixels, 0 (whole images) or auto")
        planned = self._planned_outputs(names, out_dir, multi, aligned=aligned, gallery=gallery)
        _check_outputs(planned, files, out_dir, overwrite)
        input_sizes = [_header_size(f, aligned) for f in files]
        geometry = self.method.inference_geometry(self.size_multiple)
        fitted = scale != "native" or self.method.reads_at_training_scale
        # The size each forward pass takes: the training scale's unless inputs keep their own.
        sizes = [(geometry.plan(s[1], s[0])[2][::-1] if fitted and s else s) for s in input_sizes]
        limit = None if max_pixels is None else MemoryLimit(int(max_pixels), 0.0, "--max-pixels")
        biggest = max((self._forward_pixels(s, 0 if auto_tile else tile) for s in sizes if s), default=0)
        if limit is None and (biggest > UNCHECKED_PIXELS or any(s is None for s in sizes)):
            limit = self.memory_limit(opts)
        tiles = [self._tile_for(f, s, tile, overlap, limit) if s else (0 if auto_tile else tile)
                 for f, s in zip(files, sizes)]
        # Decoding for the check is bounded: larger files are not checked.
        mismatches = [m for f, s in zip(files, sizes) if s and s[0] * s[1] <= KIND_CHECK_PIXELS
                      for m in [self.input_mismatch(f, aligned=aligned)] if m]
        if mismatches and strict:
            more = f"; {len(mismatches) - 1} more input(s) like it" if len(mismatches) > 1 else ""
            raise DataError(f"{mismatches[0]} (--strict){more}; nothing was written")
        for mismatch in mismatches:
            log.warning("warning: %s", mismatch)

        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        rows: list[dict[str, str]] = []
        pending: list[tuple[str, dict[str, Any], torch.Tensor | None, tuple[int, int]]] = []
        pending_tile = [0]
        out_columns: list[str] = ["output"]

        def save(path: Path, arr: np.ndarray, depth: int = 8) -> None:
            try:
                write_image(path, arr, bit_depth=depth)
            except OSError as exc:
                raise _write_error(exc, path) from exc

        def signature(item: dict[str, Any]) -> tuple:
            return tuple((k, tuple(v.shape)) for k, v in item.items() if torch.is_tensor(v))

        def flush() -> None:
            if not pending:
                return
            keys = [k for k, v in pending[0][1].items() if torch.is_tensor(v)]
            batch = {k: torch.stack([p[1][k] for p in pending]) for k in keys} | opts
            if pending_tile[0]:
                y = torch.cat([
                    self.translate_tiled({k: v[i : i + 1] if torch.is_tensor(v) else v for k, v in batch.items()},
                                         pending_tile[0], overlap, seed)
                    for i in range(len(pending))
                ])
            else:
                y = self.translate_batch(batch, seed).cpu()
            parts = self.method.split_outputs(y) if multi else {"output": y}
            out_columns[:] = list(parts)
            shown = self.method.display_input({k: batch[k] for k in keys}).cpu()
            for j, ((name, _, tgt, input_size), inp) in enumerate(zip(pending, shown)):
                row = {"name": name}
                for column, outs in parts.items():
                    path = out_dir / (f"{name}_{column}.png" if multi else f"{name}.png")
                    out_j = _resize_output(outs[j], input_size, self._labels_out) if scale == "keep" else outs[j]
                    save(path, to_array(out_j), bit_depth)
                    written.append(path)
                    row[column] = path.name
                if gallery:
                    (out_dir / "inputs").mkdir(exist_ok=True)
                    save(out_dir / "inputs" / f"{name}.png", to_array(inp))
                    row["input"] = f"inputs/{name}.png"
                    if tgt is not None:
                        (out_dir / "targets").mkdir(exist_ok=True)
                        save(out_dir / "targets" / f"{name}.png", to_array(tgt))
                        row["target"] = f"targets/{name}.png"
                rows.append(row)
            pending.clear()

        def pixels(item: dict[str, Any], item_tile: int) -> int:
            h, w = next(v for v in item.values() if torch.is_tensor(v)).shape[-2:]
            return self._forward_pixels((int(h), int(w)), item_tile)

        for f, name, size, input_size, item_tile in zip(files, names, sizes, input_sizes, tiles):
            item, target = self.method.load_inference_input(f, aligned=aligned, options=opts)
            decoded = tuple(int(n) for n in next(v for v in item.values() if torch.is_tensor(v)).shape[-2:])
            if input_size is None:
                input_size = decoded
            if scale != "native":
                item, target = self.method.to_training_scale(item, target, size_multiple=self.size_multiple)
                now = tuple(int(n) for n in next(v for v in item.values() if torch.is_tensor(v)).shape[-2:])
                self._log_scale(printable(str(f)), decoded, now, scale)
            if size is None:  # no header to read: check the decoded size
                h, w = next(v for v in item.values() if torch.is_tensor(v)).shape[-2:]
                item_tile = self._tile_for(f, (int(h), int(w)), tile, overlap, limit)
            full = (limit is not None and pending
                    and sum(pixels(p[1], pending_tile[0]) for p in pending) + pixels(item, item_tile)
                    > limit.max_pixels)
            if pending and (signature(item) != signature(pending[0][1]) or len(pending) >= batch_size
                            or item_tile != pending_tile[0] or full):
                flush()
            pending_tile[0] = item_tile
            pending.append((name, item, target, input_size))
        flush()
        if gallery:
            try:
                write_gallery(
                    out_dir,
                    rows,
                    ["input", *out_columns] + (["target"] if any("target" in r for r in rows) else []),
                    title=f"pairgan translate — {self.cfg.method}",
                    notes=f"checkpoint: {printable(str(self.checkpoint))}; mode: {self.mode}; backend: {self.describe_backend()}; "
                          f"{len(rows)} images",
                )
            except OSError as exc:
                raise _write_error(exc, out_dir / "index.html") from exc
        return written

    def input_mismatch(self, path: Path, *, aligned: bool = False) -> str | None:
        """Why input file ``path`` is clearly not the kind of input the model was trained on (one
        line naming the file, what was seen and what the model was trained on), or None.

        With the checkpoint's input profile the file is decoded as training decoded its inputs (the
        input half of an A|B file when ``aligned``) and checked by
        :func:`pairgan.data.profile.check_input`: channels, value range, palette fit. Without one
        (older checkpoints, exported files) :meth:`input_kind_mismatch` is the check. A file the
        reader cannot decode is not judged here: translating it reports it.
        """
        if self.input_profile is None:
            return None if aligned else self.input_kind_mismatch(path)
        try:
            arr = read_image(path, palette_indices=self.input_profile.palette_indices)
        except DataError:
            return None
        if aligned:
            w = arr.shape[1] // 2
            d = self.cfg.data if self.cfg is not None else None
            arr = arr[:, w : 2 * w] if d is not None and d.direction == "BtoA" else arr[:, :w]
        return self.array_mismatch(arr, printable(str(path)))

    def array_mismatch(self, arr: np.ndarray, where: str) -> str | None:
        """:meth:`input_mismatch` for a decoded input (HxW or HxWxC, native dtype or float in [0, 1]);
        ``where`` names it in the message."""
        if self.input_profile is not None:
            try:
                problems = check_input(self.input_profile, arr)
            except DataError:
                return None  # not a readable kind of pixels: translating it says so
            return describe_mismatch(where, problems)
        arr = colour_channels(np.asarray(arr))
        if arr.shape[2] != 1:
            return None
        return self._id_map_mismatch(np.unique(arr), where)

    def input_kind_mismatch(self, path: Path) -> str | None:
        """The check for checkpoints without an input profile: why ``path`` is clearly not the kind
        of input the model was trained on, or None.

        Read from the run's saved ``data`` section: a model trained on 3-channel images
        (``input_kind: image``, e.g. colour-coded label maps) given a single-channel file whose
        values are few and small (a label-id map: ids 0..8 would be read as near-black grey). Only
        single-channel files (from the header) are decoded for the check.
        """
        d = self.cfg.data if self.cfg is not None else None
        if d is None or d.input_kind != "image" or d.input_nc != 3:
            return None
        try:
            with Image.open(path) as im:
                if im.mode not in ("L", "I", "I;16", "I;16B", "I;16L"):
                    return None
        except Exception:  # noqa: BLE001 - not a Pillow image: the reader reports it, not this check
            return None
        try:
            values = np.unique(read_image(path))
        except DataError:
            return None
        return self._id_map_mismatch(values, printable(str(path)))

    def _id_map_mismatch(self, values: np.ndarray, where: str) -> str | None:
        """A 1-channel input's distinct ``values`` look like label ids given to a 3-channel image
        model (no profile: the config's data section decides)."""
        d = self.cfg.data if self.cfg is not None else None
        if d is None or d.input_kind != "image" or d.input_nc != 3 or not len(values):
            return None
        scale = 65535 if values.dtype == np.uint16 else 255 if values.dtype == np.uint8 else 1
        if len(values) > 64 or values.max() > 64 / 255 * scale:
            return None
        return (f"{where}: a 1-channel image with {len(values)} values in "
                f"{values.min()}..{values.max()} (a label-id map?), but the model was trained on 3-channel "
                f"{d.input_kind}s (data.input_nc 3): it is read as near-black grey; give it in the training "
                f"inputs' form (e.g. colour-coded with their palette)")

    # ----------------------------------------------------------------- planning
    def _planned_outputs(self, names: Sequence[str], out_dir: Path, multi: bool, *, aligned: bool,
                         gallery: bool) -> list[Path]:
        """Every file :meth:`translate_files` will write for inputs ``names``."""
        if multi:
            c = self.cfg.data.output_nc
            columns = list(self.method.split_outputs(torch.zeros(1, c * self.method.num_variants, 1, 1)))
        planned = []
        for name in names:
            planned += [out_dir / f"{name}_{c}.png" for c in columns] if multi else [out_dir / f"{name}.png"]
            if gallery:
                planned.append(out_dir / "inputs" / f"{name}.png")
                if aligned:
                    planned.append(out_dir / "targets" / f"{name}.png")
        if gallery:
            planned.append(out_dir / "index.html")
        return planned

    def _forward_pixels(self, size: tuple[int, int], tile: int) -> int:
        """Pixels one forward pass takes for an image of ``size`` (h, w) translated whole
        (``tile`` 0) or in ``tile`` pieces, after padding to the size multiple."""
        if self.fixed_size is not None:
            return self.fixed_size[0] * self.fixed_size[1]
        h, w = size
        if tile:
            h, w = min(h, tile), min(w, tile)
        m = max(1, self.size_multiple)
        return math.ceil(h / m) * m * math.ceil(w / m) * m

    def measure_bytes_per_pixel(self, options: dict[str, Any] | None = None) -> float:
        """Bytes per pixel a forward pass needs, measured on a probe: the method's
        :meth:`Method.example_batch` of one image a few size multiples wide (no file is decoded),
        run with every leaf module's output counted.

        The sum of all leaf outputs over-counts the peak (without gradients most are freed as
        soon as the next layer has read them), so it is a conservative factor; the
        :data:`IO_BYTES_PER_PIXEL` of whole-image buffers is added. Graphs without modules to
        watch (exported files), or a probe the method cannot run, get
        :data:`FALLBACK_BYTES_PER_PIXEL`.
        """
        m = max(1, self.size_multiple)
        side = m * max(1, math.ceil(128 / m))
        total = [0]

        def count(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
            outs = output if isinstance(output, (tuple, list)) else (output,)
            total[0] += sum(o.numel() * o.element_size() for o in outs if torch.is_tensor(o))

        nets = self.method.nets
        leaves = [mod for mod in nets.modules() if not any(True for _ in mod.children())]
        if not leaves:
            return float(FALLBACK_BYTES_PER_PIXEL)
        # Batch norm in train mode (pix2pix's paper mode) updates running statistics: keep them.
        buffers = [(b, b.detach().clone()) for b in nets.buffers()]
        hooks = [mod.register_forward_hook(count) for mod in leaves]
        try:
            self._translate(self.method.example_batch(1, side, side) | dict(options or {}), 0, compiled=False)
        except Exception as exc:  # noqa: BLE001 - the probe only refines an estimate; never fail on it
            log.debug("memory probe failed (%s): assuming %d bytes per pixel", exc, FALLBACK_BYTES_PER_PIXEL)
            return float(FALLBACK_BYTES_PER_PIXEL)
        finally:
            for hook in hooks:
                hook.remove()
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
        if not total[0]:
            return float(FALLBACK_BYTES_PER_PIXEL)
        return total[0] / (side * side) + IO_BYTES_PER_PIXEL

    def memory_limit(self, options: dict[str, Any] | None = None) -> MemoryLimit | None:
        """The default ``max_pixels``: :data:`MEMORY_FRACTION` of :func:`available_memory` over
        :meth:`measure_bytes_per_pixel` (None when the available memory is unknown)."""
        free = available_memory(self.device)
        if free is None:
            return None
        per_pixel = self.measure_bytes_per_pixel(options)
        limit = int(free * MEMORY_FRACTION / per_pixel)
        log.debug("memory limit: %d pixels per forward pass (%.0f bytes/pixel, %s available)",
                  limit, per_pixel, _gb(free))
        return MemoryLimit(limit, per_pixel, f"derived from {_gb(free)} of available memory at about "
                                              f"{per_pixel:.0f} bytes per pixel; --max-pixels sets it")

    def _tile_for(self, path: Path, size: tuple[int, int], tile: int | str, overlap: int,
                  limit: MemoryLimit | None) -> int:
        """The tile size for one input: ``tile`` itself, or for ``"auto"`` 0 (whole) when it fits
        the limit and else the largest multiple of :attr:`size_multiple` that does. Raises
        DataError when the forward pass would not fit."""
        h, w = size
        if tile == "auto":
            if limit is None or self._forward_pixels(size, 0) <= limit.max_pixels:
                return 0
            m = max(1, self.size_multiple)
            side = math.isqrt(limit.max_pixels) // m * m
            if side <= overlap or side < m:
                raise DataError(
                    f"{printable(str(path))}: {w}x{h} pixels: even the smallest tile ({m} pixels, with --overlap "
                    f"{overlap}) is above the limit of {limit.max_pixels} pixels per forward pass ({limit.source})")
            log.info("%s: %dx%d pixels, translated in tiles of %d", printable(str(path)), w, h, side)
            return side
        assert isinstance(tile, int)
        need = self._forward_pixels(size, tile)
        if limit is not None and need > limit.max_pixels:
            estimate = f" need about {_gb(need * limit.bytes_per_pixel)} and" if limit.bytes_per_pixel else ""
            advice = ("use a smaller --tile (or --tile auto)" if tile else
                      "translate it in tiles with --tile 512 (or --tile auto)")
            what = f"tiles of {tile} pixels" if tile else "one forward pass"
            raise DataError(
                f"{printable(str(path))}: {w}x{h} pixels in {what}{estimate} are above the limit of "
                f"{limit.max_pixels} pixels per forward pass ({limit.source}); {advice}")
        return tile


def _shapes(inputs: dict[str, torch.Tensor]) -> str:
    """``A 2x3x256x256`` for messages."""
    return ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in inputs.items())


@contextlib.contextmanager
def _eval_mode(nets: torch.nn.ModuleDict) -> Iterator[None]:
    """The networks in eval mode (export graphs' semantics), their modes restored afterwards."""
    modes = {name: net.training for name, net in nets.items()}
    nets.eval()
    try:
        yield
    finally:
        for name, net in nets.items():
            net.train(modes[name])


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering [0, n): stride tile - overlap, the last tile flush with the end."""
    if tile >= n:
        return [0]
    stride = tile - overlap
    starts = list(range(0, n - tile, stride)) + [n - tile]
    return sorted(set(starts))


def _ramp(n: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights: rising over ``overlap`` pixels at inner edges, 1 elsewhere."""
    w = torch.ones(n)
    if overlap > 0:
        r = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if ramp_start:
            w[:overlap] = torch.minimum(w[:overlap], r)
        if ramp_end:
            w[n - overlap :] = torch.minimum(w[n - overlap :], r.flip(0))
    return w


def _header_size(path: Path, aligned: bool) -> tuple[int, int] | None:
    """An input's (height, width) from its header without decoding the pixels (the input half
    of an A|B file when ``aligned``); None when the header cannot tell (decoding will)."""
    try:
        w, h = image_size(path)
    except DataError:
        return None
    return (h, w // 2) if aligned else (h, w)


def _check_outputs(planned: Sequence[Path], files: Sequence[Path], out_dir: Path, overwrite: bool) -> None:
    """Refuse (DataError) an output that is an input file, by path after symlinks or by identity
    (hard links), and an existing output unless ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"--out {printable(str(out_dir))}: a file, expected a folder (or a new name)")
    by_path = {}
    by_id = {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        by_path[f.resolve()] = f
        by_id[(st.st_dev, st.st_ino)] = f
    for p in planned:
        source = by_path.get(p.resolve())
        if source is None and p.exists():
            st = p.stat()
            source = by_id.get((st.st_dev, st.st_ino))
        if source is not None:
            raise DataError(
                f"{printable(str(p))}: the output would replace the input {printable(str(source))}; "
                f"choose an --out folder apart from the inputs")
    if not overwrite:
        for p in planned:
            if p.exists() or p.is_symlink():
                raise DataError(
                    f"{printable(str(p))} exists and this run did not write it; --overwrite replaces it "
                    f"(or choose another --out)")


def _write_error(exc: OSError, path: Path) -> OutputWriteError:
    """``exc`` again, naming the output ``path`` (not the temporary the atomic writer used)."""
    if is_disk_full(exc):
        return OutputWriteError(errno.ENOSPC, "no space left on device", str(path))
    return OutputWriteError(exc.errno, exc.strerror or str(exc), str(path))


def _unique_names(files: Sequence[Path]) -> list[str]:
    """File stems, disambiguated with the parent folder when two inputs share a stem."""
    stems = [f.stem for f in files]
    out = []
    for f, s in zip(files, stems):
        out.append(f"{f.parent.name}_{s}" if stems.count(s) > 1 else s)
    seen: dict[str, int] = {}
    for i, n in enumerate(out):
        if n in seen:
            seen[n] += 1
            out[i] = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
    return out
