"""Inference: the Translator, a method ready to translate tensors, images, files and folders of any size.

The model comes from :func:`pairgan.methods.build.load_method` (a checkpoint alone rebuilds it).
Inputs are reflect-padded up to the network's size multiple (a U-Net with 8 downsamplings needs
multiples of 256) and the output is cropped back, so a 300x517 photo comes back 300x517; large
images can be translated in overlapping tiles.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from pairgan.config import Config
from pairgan.data.io import IMAGE_EXTENSIONS, list_images, match_channels, to_unit_float, write_image
from pairgan.data.transforms import to_array, to_tensor
from pairgan.methods.base import Method
from pairgan.methods.build import load_method
from pairgan.padding import pad_batch
from pairgan.runtime import resolve_device
from pairgan.visual import write_gallery

__all__ = ["TranslatedItem", "Translator", "expand_inputs"]


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

    #: What runs the network: ``torch`` here, ``onnxruntime`` or ``torchscript`` for exported files.
    backend: str = "torch"
    #: The one input size (height, width) the network takes, or None for any multiple of
    #: :attr:`size_multiple` (exported files without ``--dynamic-size`` have one).
    fixed_size: tuple[int, int] | None = None
    #: An exported file's metadata (None here).
    meta: dict[str, Any] | None = None

    def __init__(self, cfg: Config | None, method: Method, device: torch.device,
                 checkpoint: Path | None = None) -> None:
        self.cfg = cfg
        self.method = method
        self.device = device
        #: The checkpoint folder of the weights (the method's, unless given).
        self.checkpoint = checkpoint if checkpoint is not None else method.checkpoint

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "auto", mode: str | None = None) -> "Translator":
        """Rebuild the method's inference networks from a checkpoint (config + safetensors)."""
        dev = resolve_device(device)
        method = load_method(path, dev, mode)
        return cls(method.run_config, method, dev, method.checkpoint)

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
        """
        batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        padded, size = pad_batch(batch, self.method.size_multiple)
        tensors = [k for k, v in padded.items() if torch.is_tensor(v)]
        n = padded[tensors[0]].shape[0]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if seed is not None:
                torch.manual_seed(seed)
            if self.method.per_image_inference and n > 1:
                outs = [
                    self.method.translate({k: (v[i : i + 1] if k in tensors else v) for k, v in padded.items()})
                    for i in range(n)
                ]
                out = torch.cat(outs)
            else:
                out = self.method.translate(padded)
        if size is not None:
            out = out[..., : size[0], : size[1]]
        return out.float().clamp(-1, 1)

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
    def translate(self, image: Any, seed: int | None = 0) -> Any:
        """Translate a PIL image, a NumPy array (HWC or HW; uint8, uint16 or float in [0, 1]) or a
        tensor (CHW/NCHW in [-1, 1]); returns the same kind of object."""
        if torch.is_tensor(image):
            out = self.translate_tensor(image, seed).to(image.device)
            return out.squeeze(0) if image.dim() == 3 else out
        is_pil = isinstance(image, Image.Image)
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        arr = match_channels(to_unit_float(arr), self.cfg.data.input_nc, "<array>")
        out = to_array(self.translate_tensor(to_tensor(arr), seed)[0].cpu())
        if is_pil:
            u8 = (out * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
            return Image.fromarray(u8[:, :, 0] if u8.shape[2] == 1 else u8)
        return out

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
        tile: int = 0,
        overlap: int = 32,
    ) -> list[Path]:
        """Translate ``files`` into ``out_dir`` (``NAME.png``) and write ``index.html``.

        Each file is read by the method (:meth:`Method.load_inference_input`); items of equal
        size are batched together; outputs are written atomically. ``options`` are the method's
        inference options (e.g. pix2pixHD's feature mode), passed in the batch.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        names = _unique_names(files)
        written: list[Path] = []
        rows: list[dict[str, str]] = []
        pending: list[tuple[str, dict[str, Any], torch.Tensor | None]] = []
        opts = dict(options or {})
        # Methods with several outputs per input (CRN's k variants) write them all unless one is
        # asked for: NAME_v0.png ... with one gallery column each.
        multi = self.method.num_variants > 1 and opts.get("variant") is None
        if multi:
            opts["variant"] = "all"
        out_columns: list[str] = ["output"]

        def signature(item: dict[str, Any]) -> tuple:
            return tuple((k, tuple(v.shape)) for k, v in item.items() if torch.is_tensor(v))

        def flush() -> None:
            if not pending:
                return
            keys = [k for k, v in pending[0][1].items() if torch.is_tensor(v)]
            batch = {k: torch.stack([p[1][k] for p in pending]) for k in keys} | opts
            if tile:
                y = torch.cat([
                    self.translate_tiled({k: v[i : i + 1] if torch.is_tensor(v) else v for k, v in batch.items()},
                                         tile, overlap, seed)
                    for i in range(len(pending))
                ])
            else:
                y = self.translate_batch(batch, seed).cpu()
            parts = self.method.split_outputs(y) if multi else {"output": y}
            out_columns[:] = list(parts)
            shown = self.method.display_input({k: batch[k] for k in keys}).cpu()
            for j, ((name, _, tgt), inp) in enumerate(zip(pending, shown)):
                row = {"name": name}
                for column, outs in parts.items():
                    path = out_dir / (f"{name}_{column}.png" if multi else f"{name}.png")
                    write_image(path, to_array(outs[j]), bit_depth=bit_depth)
                    written.append(path)
                    row[column] = path.name
                if gallery:
                    (out_dir / "inputs").mkdir(exist_ok=True)
                    write_image(out_dir / "inputs" / f"{name}.png", to_array(inp))
                    row["input"] = f"inputs/{name}.png"
                    if tgt is not None:
                        (out_dir / "targets").mkdir(exist_ok=True)
                        write_image(out_dir / "targets" / f"{name}.png", to_array(tgt))
                        row["target"] = f"targets/{name}.png"
                rows.append(row)
            pending.clear()

        for f, name in zip(files, names):
            item, target = self.method.load_inference_input(f, aligned=aligned, options=opts)
            if pending and (signature(item) != signature(pending[0][1]) or len(pending) >= batch_size):
                flush()
            pending.append((name, item, target))
        flush()
        if gallery:
            write_gallery(
                out_dir,
                rows,
                ["input", *out_columns] + (["target"] if any("target" in r for r in rows) else []),
                title=f"pairgan translate — {self.cfg.method}",
                notes=f"checkpoint: {self.checkpoint}; mode: {self.mode}; {len(rows)} images",
            )
        return written


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
