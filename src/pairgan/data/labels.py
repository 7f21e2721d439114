"""Semantic label maps with instance maps: the pix2pixHD / Cityscapes layout (``labels``).

Layout (detected automatically when ``ROOT/{split}_label/`` exists)::

    ROOT/train_label/   class ids, 1-channel PNG (8 or 16 bit), or colour-coded RGB + data.palette
    ROOT/train_inst/    instance ids (read when data.instance): 16- or 32-bit PNG, Cityscapes
                        convention: id < 1000 is a class id, else class = id // 1000
    ROOT/train_img/     photos (a split without this folder has labels only: translation works,
                        training does not)
    ROOT/test_label/ ...

Partners are matched by file stem after removing a known suffix (``_gtFine_labelIds``,
``_gtFine_instanceIds``, ``_leftImg8bit``, ``_label``, ``_inst``, ``_img``, ...), so real
Cityscapes file names pair up as they are.

An item is ``{"label": LongTensor[1,H,W], "inst": LongTensor[1,H,W] (with data.instance),
"image": FloatTensor[output_nc,H,W] in [-1, 1] (when the split has photos), "A_path", "B_path"
(the photo or ""), "index"}``. Label, instance map and photo share one augmentation draw
(:class:`~pairgan.data.transforms.PairedTransform`, seeded by ``(seed, epoch, index)`` as every
pairgan data set): ids are resampled with nearest neighbour, photos bicubic. Every read checks
that ids are below ``data.label_nc`` and names the file, the value and label_nc otherwise.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pairgan.config import DataConfig
from pairgan.data.datasets import PairedImageDataset, SampleFiles, load_side, on_disk, split_aligned
from pairgan.data.io import list_images, read_image
from pairgan.data.splits import parse_split, select_items
from pairgan.data.palettes import (
    BUILTIN_PALETTES,
    DEFAULT_MAX_DISTANCE,
    MATCH_MODES,
    Palette,
    builtin_palette,
    encode_label_ids,
    nearest_ids,
    palette_from_colors,
)
from pairgan.data.tonemap import apply_target_transform
from pairgan.data.transforms import PairedTransform, to_tensor
from pairgan.errors import ConfigError, DataError
from pairgan.registry import register

__all__ = [
    "SUFFIXES",
    "AlignedLabelDataset",
    "ColourDecoding",
    "LabelMapDataset",
    "PaletteFit",
    "colorize",
    "colour_decoding",
    "connected_components",
    "dataset_classes",
    "decode_colours",
    "default_palette",
    "derive_instances",
    "find_partner",
    "instance_to_class",
    "label_ids",
    "load_palette",
    "match_key",
    "read_instance_map",
    "read_label_map",
    "resolve_palette",
]

#: File-name suffixes removed before matching label, instance and photo files (longest first).
SUFFIXES: tuple[str, ...] = (
    "_gtFine_instanceIds", "_gtCoarse_instanceIds", "_gtFine_labelIds", "_gtCoarse_labelIds",
    "_leftImg8bit", "_instanceIds", "_labelIds", "_label", "_inst", "_img",
)

LAYOUT_HELP = (
    "expected the labels layout ROOT/{split}_label/ (class ids), ROOT/{split}_inst/ (instance ids, "
    "with data.instance) and ROOT/{split}_img/ (photos), partners matched by file stem "
    "(Cityscapes suffixes such as _gtFine_labelIds / _leftImg8bit are ignored)"
)
_EXACT_FLOAT = 1 << 24  # ids below this are exact in float32 (the resampling works on floats)


def match_key(path: str | os.PathLike) -> str:
    """The file stem without a known suffix: the key label, instance and photo files share."""
    stem = Path(path).stem
    for suffix in SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


# --------------------------------------------------------------------------- palettes


_PALETTES: dict[tuple[str, int], np.ndarray] = {}


def load_palette(path: str | os.PathLike) -> np.ndarray:
    """A palette file or built-in palette name -> ``K x 3`` uint8 array, colour ``i`` is class id ``i``.

    Built-in names (:data:`~pairgan.data.palettes.BUILTIN_PALETTES`: ``cityscapes``,
    ``cityscapes-35``) give their display colours. JSON: ``{"palette": [[r, g, b], ...]}`` (the
    synthetic scenes' ``classes.json``; a ``label_nc`` there must equal the number of colours)
    or a plain list ``[[r, g, b], ...]``. Colours must be 3 integers in 0..255 and distinct.
    """
    builtin = builtin_palette(str(path))
    if builtin is not None:
        return builtin.colors
    path = Path(path).expanduser()
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise DataError(f"{path}: palette file not found (data.palette; built-in palettes: "
                        f"{', '.join(BUILTIN_PALETTES)})") from None
    if key in _PALETTES:
        return _PALETTES[key]
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable palette ({exc}); expected JSON "
                        '{"palette": [[r, g, b], ...]} or [[r, g, b], ...]') from None
    entries = doc.get("palette") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path}: no palette; expected JSON {{\"palette\": [[r, g, b], ...]}} or [[r, g, b], ...]")
    for i, c in enumerate(entries):
        if (not isinstance(c, (list, tuple)) or len(c) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in c)):
            raise DataError(f"{path}: palette entry {i} is {c!r}, expected [r, g, b] with integers 0..255")
    pal = np.asarray(entries, dtype=np.uint8).reshape(-1, 3)
    seen: dict[tuple[int, ...], int] = {}
    for i, c in enumerate(map(tuple, pal.tolist())):
        if c in seen:
            raise DataError(f"{path}: colour {c} is given for ids {seen[c]} and {i}; expected distinct colours")
        seen[c] = i
    if isinstance(doc, dict) and "label_nc" in doc and doc["label_nc"] != len(pal):
        raise DataError(f"{path}: label_nc {doc['label_nc']} but {len(pal)} palette colours; expected equal")
    _PALETTES[key] = pal
    return pal


def _palette_path(cfg: DataConfig) -> Path | None:
    """``data.palette`` as a path: as given (absolute or relative to the working folder), else
    relative to the data set root. None for no palette and for a built-in palette name."""
    if not cfg.palette or builtin_palette(cfg.palette) is not None:
        return None
    p = Path(cfg.palette).expanduser()
    if p.is_file() or p.is_absolute() or not cfg.path:
        return p
    q = Path(cfg.path) / p
    if q.is_file():
        return q
    raise DataError(f"data.palette: {p} not found (looked in the working folder and in {cfg.path}; "
                    f"built-in palettes: {', '.join(BUILTIN_PALETTES)})")


def palette_file(cfg: DataConfig) -> str | None:
    """``data.palette`` for inference: a built-in name as it is; a file as given, else relative to
    the data set root when it is there. Unlike training (:func:`_palette_path`), a missing file is
    not an error here: a checkpoint's data root need not exist where it is used, and reading the
    file reports it."""
    if not cfg.palette:
        return None
    if builtin_palette(cfg.palette) is not None:
        return cfg.palette
    p = Path(cfg.palette).expanduser()
    if not p.is_file() and not p.is_absolute() and cfg.path and (Path(cfg.path) / p).is_file():
        p = Path(cfg.path) / p
    return str(p)


def resolve_palette(spec: str | os.PathLike | np.ndarray | Palette) -> Palette:
    """A built-in palette name, a palette file, a ``K x 3`` array or a :class:`Palette` -> Palette."""
    if isinstance(spec, Palette):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        builtin = builtin_palette(str(spec))
        if builtin is not None:
            return builtin
        return palette_from_colors(load_palette(spec), name=str(spec))
    return palette_from_colors(spec)


@dataclass(frozen=True)
class ColourDecoding:
    """How colour-coded label pixels become ids: the palette, ``exact`` or ``nearest`` matching,
    and for ``nearest`` the maximum distance and the void id far pixels get."""

    palette: Palette
    match: str = "exact"
    max_distance: float = DEFAULT_MAX_DISTANCE
    void_id: int | None = None


def colour_decoding(cfg: DataConfig, palette: Any = None) -> ColourDecoding | None:
    """The colour decoding ``cfg`` asks for (``data.palette``, ``palette_match``,
    ``palette_max_distance``, ``palette_void_id``), or None without a palette. ``palette``
    overrides ``data.palette`` (an already resolved file path, array or Palette).

    ``nearest`` needs a void id: ``data.palette_void_id`` when >= 0, else the built-in palette's
    (``cityscapes``: 19, ``cityscapes-35``: 0); a palette file without ``palette_void_id`` is a
    ConfigError."""
    if palette is None:
        if not cfg.palette:
            return None
        path = _palette_path(cfg)
        palette = path if path is not None else cfg.palette
    pal = resolve_palette(palette)
    if cfg.palette_match not in MATCH_MODES:
        raise ConfigError(f"data.palette_match: {cfg.palette_match!r}, expected one of {', '.join(MATCH_MODES)}")
    void = cfg.palette_void_id if cfg.palette_void_id >= 0 else pal.void_id
    if cfg.palette_match == "nearest" and void is None:
        raise ConfigError(f"data.palette_match=nearest with palette {pal.name or 'array'}: far pixels need a "
                          "void id; set data.palette_void_id (an id below data.label_nc) or use a built-in "
                          f"palette ({', '.join(BUILTIN_PALETTES)})")
    return ColourDecoding(pal, cfg.palette_match, float(cfg.palette_max_distance), void)


def default_palette(n: int) -> np.ndarray:
    """``n`` distinct colours (``n x 3`` uint8): id bits spread over the high bits of R, G and B,
    so that small ids differ strongly (id 0 is black)."""
    ids = np.arange(max(int(n), 0), dtype=np.int64)
    out = np.zeros((len(ids), 3), dtype=np.int64)
    c = ids.copy()
    for j in range(8):
        for ch in range(3):
            out[:, ch] |= ((c >> ch) & 1) << (7 - j)
        c >>= 3
    return out.astype(np.uint8)


def colorize(ids: torch.Tensor | np.ndarray, palette: Any = None) -> torch.Tensor:
    """Class ids ``[N,1,H,W]`` or ``[N,H,W]`` (or ``[H,W]``) -> colours ``[N,3,H,W]`` in [-1, 1].

    ``palette``: ``K x 3`` colours, a palette file (:func:`load_palette`) or None (a default,
    distinct palette); ids beyond the palette get default colours. For showing label inputs.
    """
    t = torch.as_tensor(ids)
    if t.dim() == 4:
        if t.shape[1] != 1:
            raise ValueError(f"ids of shape {tuple(t.shape)}, expected N x 1 x H x W (ids, not one-hot)")
        t = t[:, 0]
    elif t.dim() == 2:
        t = t[None]
    elif t.dim() != 3:
        raise ValueError(f"ids of shape {tuple(t.shape)}, expected N x 1 x H x W or N x H x W")
    t = t.long().clamp_min(0)
    if isinstance(palette, (str, os.PathLike)):
        palette = load_palette(palette)
    user = np.zeros((0, 3), np.uint8) if palette is None else np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    n = max(int(t.max()) + 1 if t.numel() else 1, len(user))
    table = default_palette(n)
    table[: len(user)] = user
    lut = torch.as_tensor(table, dtype=torch.float32, device=t.device) / 127.5 - 1.0
    return lut[t].permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------- reading


def instance_to_class(inst: Any) -> Any:
    """Class ids of a Cityscapes-convention instance map: ``id // 1000`` for ids >= 1000, else the
    id itself. NumPy arrays give int64 arrays, tensors give tensors."""
    if torch.is_tensor(inst):
        return torch.where(inst >= 1000, torch.div(inst, 1000, rounding_mode="floor"), inst)
    a = np.asarray(inst).astype(np.int64)
    return np.where(a >= 1000, a // 1000, a)


def _integral(arr: np.ndarray, path: Any, what: str) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        return arr.astype(np.int64)
    raise DataError(f"{path}: {what} of dtype {arr.dtype} with non-integer values, expected integer ids")


def decode_colours(rgb: np.ndarray, decoding: ColourDecoding, path: Any) -> tuple[np.ndarray, int]:
    """``H x W x 3`` uint8 colours -> (int64 ``H x W`` ids, number of far pixels decoded to void).

    ``exact``: every colour must be in the palette's decode table (a DataError names the most
    frequent unknown colour); ``nearest``: :func:`~pairgan.data.palettes.nearest_ids`."""
    if rgb.dtype != np.uint8:
        raise DataError(f"{path}: colour-coded label image of dtype {rgb.dtype}, expected 8-bit RGB")
    pal = decoding.palette
    if decoding.match == "nearest":
        assert decoding.void_id is not None  # colour_decoding refuses nearest without one
        ids, far = nearest_ids(rgb, pal, decoding.max_distance, decoding.void_id)
        return ids, int(far.sum())
    keys = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    uniq, inverse, counts = np.unique(keys.ravel(), return_inverse=True, return_counts=True)
    dc = pal.decode_colors
    pal_keys = (dc[:, 0].astype(np.int64) << 16) | (dc[:, 1].astype(np.int64) << 8) | dc[:, 2]
    lookup: dict[int, int] = {}
    for k, i in zip(pal_keys.tolist(), pal.decode_ids.tolist()):
        lookup.setdefault(int(k), int(i))  # a shared colour decodes to the id listed first
    ids = np.array([lookup.get(int(k), -1) for k in uniq], dtype=np.int64)
    if (ids < 0).any():
        bad = np.flatnonzero(ids < 0)
        bad = bad[np.argsort(-counts[bad], kind="stable")]
        first = int(uniq[bad[0]])
        colour = ((first >> 16) & 255, (first >> 8) & 255, first & 255)
        more = f" (and {len(bad) - 1} more unknown colours)" if len(bad) > 1 else ""
        src = f" {pal.name}" if pal.name else ""
        raise DataError(
            f"{path}: colour {colour} ({int(counts[bad[0]])} pixels) is not in the palette{src} "
            f"({len(dc)} colours){more}; expected only palette colours (a JPEG or a resized "
            "label image blends colours: keep label images as PNG at their size, or set "
            "data.palette_match=nearest)"
        )
    return ids[inverse].reshape(keys.shape), 0


def label_ids(arr: np.ndarray, path: Any, label_nc: int, palette: np.ndarray | Palette | ColourDecoding | None = None,
              palette_name: str = "", encoding: str = "ids") -> np.ndarray:
    """Decoded label pixels (``read_image(..., palette_indices=True)``) -> int64 ``H x W`` ids,
    in ``encoding`` (``data.label_encoding``: :func:`~pairgan.data.palettes.encode_label_ids`),
    checked against ``label_nc`` (``label_nc <= 0``: not checked).

    Colour (RGB) pixels are decoded through ``palette``: a :class:`ColourDecoding` (the data
    config's rule, :func:`colour_decoding`), or a palette (array or :class:`Palette`) matched
    exactly."""
    decoded_by = ""  # the palette the ids came through, if any (its name decides the encoding step)
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[2]
    if c in (1, 2):  # ids (+ an alpha channel, ignored)
        ids = _integral(arr[..., 0], path, "label map")
    elif c in (3, 4):
        rgb = arr[..., :3]
        if palette is not None:
            if not isinstance(palette, ColourDecoding):
                pal = resolve_palette(palette)
                if palette_name:
                    pal = replace(pal, name=palette_name)
                palette = ColourDecoding(pal)
            ids, _ = decode_colours(rgb, palette, path)
            decoded_by = palette.palette.name
        elif (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
            ids = _integral(rgb[..., 0], path, "label map")  # ids stored as grey RGB
        else:
            raise DataError(f"{path}: colour-coded (RGB) label image but no palette; set data.palette "
                            "to a JSON palette file mapping colours to ids, or store ids as a 1-channel PNG")
    else:
        raise DataError(f"{path}: {c} channels, expected a 1-channel id map (or RGB with data.palette)")
    ids = encode_label_ids(ids, encoding, decoded_by)
    if ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0:
            raise DataError(f"{path}: label id {lo}, expected ids >= 0")
        if label_nc > 0 and hi >= label_nc:
            n = int((ids >= label_nc).sum())
            raise DataError(
                f"{path}: label id {hi} >= data.label_nc {label_nc} ({n} pixels); expected ids "
                f"0..{label_nc - 1}: set data.label_nc to at least {hi + 1} or fix the label map"
            )
    return ids


def read_label_map(path: str | os.PathLike, label_nc: int, palette: Any = None, encoding: str = "ids") -> np.ndarray:
    """A label image -> int64 ``H x W`` class ids, every id checked to be below ``label_nc``.

    1-channel images (8/16-bit, palette-mode PNG indices, integer ``.npy``) are the ids; RGB
    images are mapped through ``palette`` (a :class:`ColourDecoding`, or an array, palette file or
    built-in name matched exactly); an unknown colour or an id ``>= label_nc`` raises DataError
    naming the file and the value."""
    if palette is not None and not isinstance(palette, ColourDecoding):
        palette = ColourDecoding(resolve_palette(palette))
    arr = read_image(path, palette_indices=True)
    return label_ids(arr, path, label_nc, palette, encoding=encoding)


def read_instance_map(path: str | os.PathLike, *, data: bytes | None = None) -> np.ndarray:
    """An instance map (8/16/32-bit 1-channel PNG or integer ``.npy``) -> int64 ``H x W`` ids
    (``data``: the file's bytes, already read, as :func:`~pairgan.data.io.read_image`)."""
    arr = read_image(path, palette_indices=True, data=data)
    if arr.ndim == 3 and arr.shape[2] not in (1, 2):
        raise DataError(f"{path}: instance map with {arr.shape[2]} channels, expected a 1-channel id map "
                        "(16- or 32-bit PNG)")
    ids = _integral(arr[..., 0] if arr.ndim == 3 else arr, path, "instance map")
    if ids.size and int(ids.min()) < 0:
        raise DataError(f"{path}: instance id {int(ids.min())}, expected ids >= 0")
    return ids


class PaletteFit:
    """How well colour-coded label maps fit a palette, summed over files (``pairgan data check``):
    pixels within the maximum distance of a palette colour, far pixels (decoded to void) and
    pixels per class id."""

    def __init__(self, decoding: ColourDecoding, label_nc: int = 0) -> None:
        self.decoding = decoding
        n = max(int(label_nc), decoding.palette.num_classes, int(decoding.palette.decode_ids.max()) + 1)
        if decoding.void_id is not None:
            n = max(n, decoding.void_id + 1)
        self.class_pixels = np.zeros(n, dtype=np.int64)
        self.pixels = 0
        self.far = 0
        self.files = 0

    def measure(self, arr: np.ndarray) -> tuple[int, int, np.ndarray] | None:
        """(pixels, far pixels, pixels per id) of one decoded label image; None for id images
        (1 channel: nothing to fit) and for colours that do not decode (exact mode)."""
        if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
            return None
        try:
            ids, far = decode_colours(arr[..., :3], self.decoding, "")
        except DataError:
            return None
        counts = np.bincount(ids.ravel(), minlength=len(self.class_pixels))
        return int(ids.size), far, counts

    def add(self, pixels: int, far: int, counts: np.ndarray) -> None:
        """Add one file's :meth:`measure`."""
        if len(counts) > len(self.class_pixels):
            self.class_pixels = np.pad(self.class_pixels, (0, len(counts) - len(self.class_pixels)))
        self.class_pixels[: len(counts)] += counts
        self.pixels += pixels
        self.far += far
        self.files += 1

    def summary(self) -> dict[str, Any]:
        """``{"palette", "match", "max_distance", "void_id", "files", "pixels", "within", "far",
        "within_share", "far_share", "classes": [{"id", "name", "pixels", "share"}, ...]}``."""
        d, total = self.decoding, max(self.pixels, 1)
        names = d.palette.class_names or ()
        return {
            "palette": d.palette.name, "match": d.match, "max_distance": d.max_distance, "void_id": d.void_id,
            "files": self.files, "pixels": self.pixels, "within": self.pixels - self.far, "far": self.far,
            "within_share": (self.pixels - self.far) / total, "far_share": self.far / total,
            "classes": [{"id": i, "name": names[i] if i < len(names) else str(i), "pixels": int(c),
                         "share": int(c) / total} for i, c in enumerate(self.class_pixels.tolist())],
        }

    def notes(self) -> list[str]:
        """The summary as report lines."""
        s = self.summary()
        rule = (f"nearest, max distance {s['max_distance']:g}, far -> void id {s['void_id']}"
                if s["match"] == "nearest" else "exact")
        present = sorted((c for c in s["classes"] if c["pixels"]), key=lambda c: -c["pixels"])
        return [
            f"palette {s['palette']} ({rule}) over {s['files']} label maps, {s['pixels']} pixels: "
            f"{100 * s['within_share']:.2f}% within distance, {100 * s['far_share']:.2f}% far (void)",
            "pixels per class: " + ", ".join(f"{c['id']} {c['name']} {c['pixels']} ({100 * c['share']:.2f}%)"
                                             for c in present),
        ]


# --------------------------------------------------------------------------- matching


_INDEX: dict[tuple[str, int], tuple[dict[str, Path], list[tuple[str, str]]]] = {}


def _index(folder: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """``{key: file}`` of a folder and (file, problem) for files sharing a key (cached per mtime)."""
    try:
        ck = (str(folder.resolve()), folder.stat().st_mtime_ns)
    except FileNotFoundError:
        return {}, []
    if ck in _INDEX:
        return _INDEX[ck]
    files: dict[str, Path] = {}
    problems: list[tuple[str, str]] = []
    for f in list_images(folder):
        k = match_key(f)
        if k in files:
            problems.append((str(f), f"same name key {k!r} as {files[k].name}; expected one file per key"))
        else:
            files[k] = f
    if len(_INDEX) > 64:
        _INDEX.clear()
    _INDEX[ck] = (files, problems)
    return files, problems


def _split_of(label_folder: Path) -> str | None:
    name = label_folder.name
    return name[: -len("_label")] if name.endswith("_label") and len(name) > len("_label") else None


def find_partner(label_path: str | os.PathLike, kind: str) -> Path | None:
    """The instance map (``kind="inst"``) or photo (``"img"``) of a label file in
    ``ROOT/{split}_label/``: the file with the same key in ``ROOT/{split}_{kind}/``, or None."""
    if kind not in ("inst", "img"):
        raise ValueError(f"kind {kind!r}, expected 'inst' or 'img'")
    label_path = Path(label_path)
    split = _split_of(label_path.parent)
    if split is None:
        return None
    folder = label_path.parent.parent / f"{split}_{kind}"
    if not folder.is_dir():
        return None
    return _index(folder)[0].get(match_key(label_path))


def _match(root: Path, split: str, instance: bool) -> tuple[
        list[tuple[Path, Path | None, Path | None]], list[tuple[str, str]], bool]:
    """(label, inst or None, photo or None) triples, (file, problem) list, whether photos exist."""
    label_dir, inst_dir, img_dir = (root / f"{split}_{k}" for k in ("label", "inst", "img"))
    labels, problems = _index(label_dir)
    problems = list(problems)
    has_images = img_dir.is_dir()
    imgs, img_problems = _index(img_dir) if has_images else ({}, [])
    problems += img_problems
    insts: dict[str, Path] = {}
    if instance:
        if not inst_dir.is_dir():
            problems.append((str(inst_dir), "folder not found; data.instance is true and needs instance maps "
                                            "(set data.instance=false to train without them)"))
        else:
            insts, inst_problems = _index(inst_dir)
            problems += inst_problems
    items: list[tuple[Path, Path | None, Path | None]] = []
    for key in sorted(labels):
        f = labels[key]
        inst = insts.get(key)
        img = imgs.get(key)
        ok = True
        if instance and inst_dir.is_dir() and inst is None:
            problems.append((str(f), f"no instance map for {key!r} in {inst_dir}"))
            ok = False
        if has_images and img is None:
            problems.append((str(f), f"no photo for {key!r} in {img_dir}"))
            ok = False
        if ok:
            items.append((f, inst, img))
    for key, f in sorted(imgs.items()):
        if key not in labels:
            problems.append((str(f), f"no label map for {key!r} in {label_dir}"))
    for key, f in sorted(insts.items()):
        if key not in labels:
            problems.append((str(f), f"no label map for {key!r} in {label_dir}"))
    return items, problems, has_images


# --------------------------------------------------------------------------- the data set


def _need_label_nc(cfg: DataConfig) -> None:
    if cfg.label_nc <= 0:
        raise ConfigError(
            f"data.label_nc is {cfg.label_nc}; the labels layout needs the number of classes "
            "(e.g. --set data.label_nc=35 for Cityscapes labelIds, 9 for the synthetic scenes)"
        )


@register("dataset", "labels")
class LabelMapDataset(PairedImageDataset):
    """``ROOT/{split}_label`` (+ ``_inst``, ``_img``): label maps, instance maps and photos.

    ``ds[index]`` or ``ds[(epoch, index)]`` -> ``{"label", "inst" (with data.instance), "image"
    (when the split has photos), "A_path", "B_path", "index"}``; see the module docstring.
    """

    layout = "labels"
    file_layout = "labels"

    def __init__(
        self,
        root: str | Path,
        split: str,
        cfg: DataConfig,
        *,
        train: bool,
        size_multiple: int = 1,
        seed: int = 0,
    ) -> None:
        self._setup(root, split, f"{split}_label", cfg, train=train, size_multiple=size_multiple, seed=seed)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: folder not found; {LAYOUT_HELP.format(split=split)}")
        items, problems, self.has_images = _match(self.root, split, cfg.instance)
        if problems:
            shown = "; ".join(f"{f}: {p}" for f, p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DataError(f"{self.root} ({split}): {len(problems)} unpaired or duplicate files: {shown}{more}")
        if cfg.max_items > 0:
            items = items[: cfg.max_items]
        if not items:
            raise DataError(f"{self.folder}: no label maps; {LAYOUT_HELP.format(split=split)}")
        self.pairs: list[tuple[Path, Path | None]] = [(lab, img) for lab, _, img in items]
        self.insts: list[Path | None] = [inst for _, inst, _ in items]

    def _setup_reading(self, cfg: DataConfig, *, train: bool, size_multiple: int, seed: int) -> None:
        super()._setup_reading(cfg, train=train, size_multiple=size_multiple, seed=seed)
        _need_label_nc(cfg)
        if cfg.direction != "AtoB":
            raise ConfigError("data.direction: the labels layout translates label maps into photos; "
                              f"expected AtoB, got {cfg.direction}")
        self.decoding = colour_decoding(cfg)
        self.palette_path = self.decoding.palette.name if self.decoding is not None else ""
        self.insts = []
        self.has_images = True

    def sample_files(self, index: int) -> dict[str, Path]:
        label_path, img_path = self.pairs[index]
        inst_path = self.insts[index]
        return {"label": label_path, **({"inst": inst_path} if inst_path is not None else {}),
                **({"image": img_path} if img_path is not None else {})}

    def _read_pair(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray, Path, Path]:
        raise NotImplementedError("LabelMapDataset items are read by decode")

    @staticmethod
    def _paths(files: SampleFiles) -> tuple[Path, Path | None]:
        """The label map's and the photo's path (None: labels only) of a sample's files."""
        return files["label"].path, files["image"].path if "image" in files else None

    def read_raw(self, index: int) -> dict[str, Any]:
        """Un-augmented arrays of item ``index``: ``label`` / ``inst`` (int64 HxW) and ``image``
        (float32 HxWxC in [0, 1]) as present."""
        return self.raw_from(on_disk(self.sample_files(index)))

    def raw_from(self, files: SampleFiles) -> dict[str, Any]:
        """Un-augmented arrays of a sample's files (see :meth:`read_raw`)."""
        cfg = self.cfg
        label = files["label"]
        label_path = label.path
        out: dict[str, Any] = {"label": label_ids(label.read(palette_indices=True), label_path,
                                                  cfg.label_nc, self.decoding, encoding=cfg.label_encoding)}
        h, w = out["label"].shape
        if cfg.instance and "inst" in files:
            inst_path = files["inst"].path
            inst = read_instance_map(inst_path, data=files["inst"].data)
            if inst.shape != (h, w):
                raise DataError(f"{inst_path} is {inst.shape[1]}x{inst.shape[0]} but its label map {label_path} "
                                f"is {w}x{h}; expected the same size")
            if inst.size and int(inst.max()) >= _EXACT_FLOAT:
                raise DataError(f"{inst_path}: instance id {int(inst.max())}, expected ids < {_EXACT_FLOAT}")
            out["inst"] = inst
        if "image" in files:
            img_path = files["image"].path
            img = load_side(img_path, "image", cfg.output_nc, "data.output_nc", files["image"].read())
            if img.shape[:2] != (h, w):
                raise DataError(f"{img_path} is {img.shape[1]}x{img.shape[0]} but its label map {label_path} "
                                f"is {w}x{h}; expected the same size")
            out["image"] = img
        return out

    def decode(self, files: SampleFiles, extra: dict[str, Any], epoch: int, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, epoch, index])
        label_path, img_path = self._paths(files)
        raw = self.raw_from(files)
        ids = np.stack([raw["label"]] + ([raw["inst"]] if "inst" in raw else []), axis=-1).astype(np.float32)
        try:
            if "image" in raw:
                ids, img = self.transform(ids, raw["image"], rng, nearest_a=True, nearest_b=False)
            else:  # labels only: the same draw, nothing to pair with
                ids, _ = self.transform(ids, ids[..., :1], rng, nearest_a=True, nearest_b=True)
                img = None
        except ValueError as exc:
            raise DataError(f"{label_path}: {exc}") from None
        ids_t = torch.from_numpy(np.ascontiguousarray(np.rint(ids).astype(np.int64).transpose(2, 0, 1)))
        item: dict[str, Any] = {"label": ids_t[:1]}
        if "inst" in raw:
            item["inst"] = ids_t[1:2]
        if img is not None:
            item["image"] = to_tensor(apply_target_transform(img, self.cfg.target_transform))
        item["A_path"] = str(label_path)
        item["B_path"] = str(img_path) if img_path is not None else ""
        item["index"] = index
        return item

    def describe(self) -> str:
        cfg, t = self.cfg, self.transform
        aug = f"preprocess {cfg.preprocess} (load {cfg.load_size}, crop {cfg.crop_size})"
        if t.size_multiple > 1:
            aug += f", sizes rounded to multiples of {t.size_multiple}"
        if self.train and cfg.flip:
            aug += ", random flip"
        if cfg.target_transform != "none":
            aug += f", {cfg.target_transform} targets"
        what = f"label_nc {cfg.label_nc}" + (", instances" if cfg.instance else ", no instances")
        if cfg.label_encoding != "ids":
            what += f", encoding {cfg.label_encoding}"
        if self.decoding is not None:
            what += f", palette {self.palette_path} ({self.decoding.match}"
            what += (f", void {self.decoding.void_id} beyond distance {self.decoding.max_distance:g})"
                     if self.decoding.match == "nearest" else ")")
        photos = f"photos {cfg.output_nc}ch" if self.has_images else "no photos (labels only)"
        return (f"labels: {len(self)} label maps in {self.folder} ({what}; {photos}), {aug}, "
                f"{'train' if self.train else 'eval'} mode, seed {self.seed}")

    # -- layout hooks used by detect_layout / split_exists / data check
    @classmethod
    def detect(cls, root: Path, split: str) -> bool:
        return (Path(root) / f"{split}_label").is_dir()

    @classmethod
    def split_exists(cls, root: Path, split: str) -> bool:
        folder = Path(root) / f"{split}_label"
        try:
            return folder.is_dir() and bool(list_images(folder))
        except DataError:
            return False

    @classmethod
    def check_split(cls, cfg: DataConfig, root: Path, split: str, size_multiple: int = 1) -> tuple[
            dict[str, Any], list[tuple[str, str]]]:
        """Row updates for :class:`~pairgan.data.check.CheckReport` and (file, problem) pairs.

        Every file is decoded; ids are checked against label_nc (and the palette), sizes of
        label / instance map / photo must agree, photos must have convertible channels and fit
        the crop. A split without ``{split}_img/`` is a note (labels only), a problem only for
        the training split. The row gets ``notes`` (a list of strings) besides the usual keys.
        """
        split = parse_split(split)[0]  # a slice NAME[START:STOP] is checked as its whole folder
        root = Path(root)
        row: dict[str, Any] = {"layout": "labels", "n_pairs": 0, "min_size": None, "max_size": None,
                               "channels_A": [], "channels_B": [], "notes": []}
        problems: list[tuple[str, str]] = []
        label_dir = root / f"{split}_label"
        try:
            _need_label_nc(cfg)
            decoding = colour_decoding(cfg)
        except (ConfigError, DataError) as exc:
            problems.append((str(label_dir), str(exc)))
            return row, problems
        if not label_dir.is_dir():
            problems.append((str(label_dir), f"folder not found; {LAYOUT_HELP.format(split=split)}"))
            return row, problems
        items, pair_problems, has_images = _match(root, split, cfg.instance)
        problems += pair_problems
        if not has_images:
            msg = (f"no {split}_img/ folder: labels only (translation works; nothing to train on or to "
                   "score against)")
            if split == cfg.train_split:
                problems.append((str(root / f"{split}_img"), "folder not found; the training split needs photos"))
            else:
                row["notes"].append(msg)
        if cfg.max_items > 0:
            items = items[: cfg.max_items]
        if not items and not problems:
            problems.append((str(label_dir), f"no label maps; {LAYOUT_HELP.format(split=split)}"))
        row["n_pairs"] = len(items)
        transform = PairedTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip,
                                    train=(split == cfg.train_split), size_multiple=size_multiple)
        fit = PaletteFit(decoding, cfg.label_nc) if decoding is not None else None

        def one(item: tuple[Path, Path | None, Path | None]) -> tuple[list, Any]:
            lab, inst, img = item
            found: list[tuple[str, str]] = []
            info: dict[str, Any] = {}
            try:
                arr = read_image(lab, palette_indices=True)
                info["label_channels"] = arr.shape[2] if arr.ndim == 3 else 1
                ids = label_ids(arr, lab, cfg.label_nc, decoding, encoding=cfg.label_encoding)
                if fit is not None:
                    info["fit"] = fit.measure(arr)
                info["size"] = (ids.shape[1], ids.shape[0])
                info["max_id"] = int(ids.max()) if ids.size else 0
            except DataError as exc:
                found.append((str(lab), _strip(lab, exc)))
                return found, None
            w, h = info["size"]
            if cfg.instance and inst is not None:
                try:
                    iarr = read_instance_map(inst)
                    if iarr.shape != (h, w):
                        found.append((str(inst), f"size {iarr.shape[1]}x{iarr.shape[0]} differs from its label "
                                                  f"map {lab} ({w}x{h}), expected the same size"))
                    elif iarr.size and int(iarr.max()) >= _EXACT_FLOAT:
                        found.append((str(inst), f"instance id {int(iarr.max())}, expected ids < {_EXACT_FLOAT}"))
                except DataError as exc:
                    found.append((str(inst), _strip(inst, exc)))
            if img is not None:
                try:
                    parr = read_image(img)
                    info["image_channels"] = parr.shape[2]
                    load_side(img, "image", cfg.output_nc, "data.output_nc", parr[:1, :1])
                    if parr.shape[:2] != (h, w):
                        found.append((str(img), f"size {parr.shape[1]}x{parr.shape[0]} differs from its label "
                                                f"map {lab} ({w}x{h}), expected the same size"))
                except DataError as exc:
                    found.append((str(img), _strip(img, exc)))
            try:
                transform.plan(w, h)
            except ValueError as exc:
                found.append((str(lab), str(exc)))
            return found, info

        workers = max(1, min(8, os.cpu_count() or 1))
        sizes, ch_a, ch_b, max_id = [], set(), set(), -1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found, info in pool.map(one, items):
                problems += found
                if info is None:
                    continue
                sizes.append(info["size"])
                ch_a.add(info["label_channels"])
                if "image_channels" in info:
                    ch_b.add(info["image_channels"])
                max_id = max(max_id, info["max_id"])
                if fit is not None and info.get("fit") is not None:
                    fit.add(*info["fit"])
        if fit is not None and fit.pixels:
            row["palette_fit"] = fit.summary()
            row["notes"] += fit.notes()
        if sizes:
            row["min_size"] = (min(s[0] for s in sizes), min(s[1] for s in sizes))
            row["max_size"] = (max(s[0] for s in sizes), max(s[1] for s in sizes))
            row["notes"].append(f"class ids up to {max_id} (data.label_nc {cfg.label_nc})")
        row["channels_A"], row["channels_B"] = sorted(ch_a), sorted(ch_b)
        return row, problems


@register("dataset", "aligned-labels")
class AlignedLabelDataset(LabelMapDataset):
    """``ROOT/{split}/*`` with a label map and its photo side by side in one file (the pix2pix
    Cityscapes set: photo | colour label map, ``data.direction=BtoA``): items as
    :class:`LabelMapDataset` (``label``, ``image``, no instance maps).

    The label half (``A`` after ``data.direction``) is decoded to ids at its native resolution
    (``data.palette`` with ``data.palette_match``; ids stored as grey levels need no palette),
    before any resize; ids are then resampled with nearest neighbour, photos bicubic. Used for the
    aligned layout whenever the inputs are label maps (``data.input_kind=label`` and
    ``data.label_nc`` > 0); see :func:`~pairgan.data.datasets.resolve_layout`.
    """

    layout = "aligned-labels"
    file_layout = "aligned"

    def __init__(self, root: str | Path, split: str, cfg: DataConfig, *, train: bool, size_multiple: int = 1,
                 seed: int = 0) -> None:
        self._setup(root, split, split, cfg, train=train, size_multiple=size_multiple, seed=seed)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: split folder not found; expected ROOT/{split}/*.jpg (each file "
                            "holds a photo and its label map side by side)")
        files = list_images(self.folder)
        if cfg.max_items > 0:
            files = files[: cfg.max_items]
        if not files:
            raise DataError(f"{self.folder}: no images; expected ROOT/{split}/*.jpg (A|B side by side)")
        self.pairs = [(f, f) for f in files]
        self.insts = [None] * len(files)

    def _setup_reading(self, cfg: DataConfig, *, train: bool, size_multiple: int, seed: int) -> None:
        PairedImageDataset._setup_reading(self, cfg, train=train, size_multiple=size_multiple, seed=seed)
        _need_label_nc(cfg)
        if cfg.instance:
            raise ConfigError("data.instance: the aligned layout holds no instance maps; expected "
                              "data.instance=false (or the labels layout with ROOT/{split}_inst/)")
        self.decoding = colour_decoding(cfg)
        self.palette_path = self.decoding.palette.name if self.decoding is not None else ""
        self.insts = []
        self.has_images = True

    def sample_files(self, index: int) -> dict[str, Path]:
        return {"pair": self.pairs[index][0]}

    @staticmethod
    def _paths(files: SampleFiles) -> tuple[Path, Path | None]:
        return files["pair"].path, files["pair"].path

    def raw_from(self, files: SampleFiles) -> dict[str, Any]:
        cfg = self.cfg
        f = files["pair"]
        path = f.path
        a, b = split_aligned(f.read(), path)
        label_arr, photo = (a, b) if cfg.direction == "AtoB" else (b, a)
        ids = label_ids(label_arr, path, cfg.label_nc, self.decoding, encoding=cfg.label_encoding)
        image = load_side(path, "image", cfg.output_nc, "data.output_nc", photo)
        return {"label": ids, "image": image}

    def describe(self) -> str:
        return "aligned-" + super().describe().replace(f"in {self.folder}", f"in {self.folder} ({self.cfg.direction})")

    @classmethod
    def detect(cls, root: Path, split: str) -> bool:
        return False  # chosen by resolve_layout for aligned files with label inputs, never detected

    @classmethod
    def split_exists(cls, root: Path, split: str) -> bool:
        folder = Path(root) / split
        try:
            return folder.is_dir() and bool(list_images(folder))
        except DataError:
            return False

    @classmethod
    def check_split(cls, cfg: DataConfig, root: Path, split: str, size_multiple: int = 1) -> tuple[
            dict[str, Any], list[tuple[str, str]]]:
        """Row updates for :class:`~pairgan.data.check.CheckReport` and (file, problem) pairs: every
        file decoded, its label half decoded to ids (checked against label_nc), the crop fit, and
        the palette fit (``row["palette_fit"]`` and notes) when a palette is configured."""
        root = Path(root)
        row: dict[str, Any] = {"layout": "aligned-labels", "n_pairs": 0, "min_size": None, "max_size": None,
                               "channels_A": [], "channels_B": [], "notes": []}
        problems: list[tuple[str, str]] = []
        folder = root / parse_split(split)[0]
        try:
            _need_label_nc(cfg)
            decoding = colour_decoding(cfg)
            files = select_items(list_images(folder), split, folder)
        except (ConfigError, DataError) as exc:
            problems.append((str(folder), _strip(folder, exc)))
            return row, problems
        if cfg.max_items > 0:
            files = files[: cfg.max_items]
        row["n_pairs"] = len(files)
        if not files:
            problems.append((str(folder), "no images; expected ROOT/{split}/*.jpg (A|B side by side)"))
            return row, problems
        transform = PairedTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip,
                                    train=(split == cfg.train_split), size_multiple=size_multiple)
        fit = PaletteFit(decoding, cfg.label_nc) if decoding is not None else None

        def one(path: Path) -> tuple[list, Any]:
            found: list[tuple[str, str]] = []
            try:
                a, b = split_aligned(read_image(path), path)
                label_arr, photo = (a, b) if cfg.direction == "AtoB" else (b, a)
                ids = label_ids(label_arr, path, cfg.label_nc, decoding, encoding=cfg.label_encoding)
                load_side(path, "image", cfg.output_nc, "data.output_nc", photo[:1, :1])
                transform.plan(ids.shape[1], ids.shape[0])
            except DataError as exc:
                found.append((str(path), _strip(path, exc)))
                return found, None
            except ValueError as exc:
                found.append((str(path), str(exc)))
                return found, None
            info = {"size": (ids.shape[1], ids.shape[0]), "max_id": int(ids.max()) if ids.size else 0,
                    "channels": (a.shape[2], b.shape[2]),
                    "fit": fit.measure(label_arr) if fit is not None else None}
            return found, info

        workers = max(1, min(8, os.cpu_count() or 1))
        sizes, ch_a, ch_b, max_id = [], set(), set(), -1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found, info in pool.map(one, files):
                problems += found
                if info is None:
                    continue
                sizes.append(info["size"])
                ch_a.add(info["channels"][0])
                ch_b.add(info["channels"][1])
                max_id = max(max_id, info["max_id"])
                if fit is not None and info["fit"] is not None:
                    fit.add(*info["fit"])
        if sizes:
            row["min_size"] = (min(s[0] for s in sizes), min(s[1] for s in sizes))
            row["max_size"] = (max(s[0] for s in sizes), max(s[1] for s in sizes))
            row["notes"].append(f"class ids up to {max_id} (data.label_nc {cfg.label_nc})")
        if fit is not None and fit.pixels:
            row["palette_fit"] = fit.summary()
            row["notes"] += fit.notes()
        row["channels_A"], row["channels_B"] = sorted(ch_a), sorted(ch_b)
        return row, problems


def _strip(path: Any, exc: Exception) -> str:
    msg = str(exc)
    prefix = f"{path}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg



def random_label_batch(batch_size: int, height: int, width: int, label_nc: int, *, instance: bool,
                       output_nc: int, target_key: str = "B") -> dict[str, torch.Tensor]:
    """A random label-map training batch (benchmarks, export tracing): blocky label maps of 8x8
    cells, instance ids in the Cityscapes convention (class * 1000 + index, a few instances per
    class, constant over each cell) when ``instance``, and photos in [-1, 1] under ``target_key``."""
    cells = torch.randint(0, label_nc, (batch_size, 1, height // 8 + 1, width // 8 + 1))
    label = cells.repeat_interleave(8, 2).repeat_interleave(8, 3)[..., :height, :width].contiguous()
    batch = {"label": label}
    if instance:
        blocks = torch.arange(cells[0, 0].numel()).reshape(cells.shape[-2:]) % 3
        blocks = blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)[:height, :width]
        batch["inst"] = torch.where(label > 0, label * 1000 + blocks, label)
    batch[target_key] = torch.rand(batch_size, output_nc, height, width) * 2 - 1
    return batch


def read_label_input(path: str | os.PathLike, label_nc: int, data: DataConfig) -> dict[str, torch.Tensor]:
    """An inference item for a label-map method: ``{"label": 1xHxW ids}`` read from ``path``
    (ids, or colours through ``data.palette``), plus ``"inst"`` (1xHxW instance ids, found by
    :func:`find_partner`) when ``data.instance``. Errors name the file and what was expected."""
    path = Path(path)
    pal = palette_file(data)
    label = torch.as_tensor(read_label_map(path, label_nc, colour_decoding(data, pal) if pal else None,
                                           encoding=data.label_encoding)).long()
    label = label.reshape(1, *label.shape[-2:])
    item = {"label": label}
    if data.instance:
        inst_path = find_partner(path, "inst")
        if inst_path is None:
            raise DataError(f"{path}: no instance map found (data.instance is on); expected it in the "
                            "matching *_inst folder, or translate with --set data.instance=false")
        inst = torch.as_tensor(read_instance_map(inst_path)).long()
        inst = inst.reshape(1, *inst.shape[-2:])
        if inst.shape != label.shape:
            raise DataError(f"{inst_path}: instance map {tuple(inst.shape[-2:])} but label map "
                            f"{path} is {tuple(label.shape[-2:])}; expected the same size")
        item["inst"] = inst
    return item


def partner_photo_path(path: str | os.PathLike) -> Path:
    """The photo that belongs to label map ``path`` (``--aligned`` targets), or a DataError."""
    img_path = find_partner(Path(path), "img")
    if img_path is None:
        raise DataError(f"{path}: no photo found for --aligned (expected it in the matching *_img folder)")
    return img_path


def _encoded_palette(data: DataConfig) -> Palette | None:
    """The palette of the classes ``data.label_encoding`` produces (``cityscapes-train``: the
    built-in ``cityscapes``), or None when the encoding keeps the stored ids."""
    return builtin_palette("cityscapes") if data.label_encoding == "cityscapes-train" else None


def display_labels(label: torch.Tensor, data: DataConfig) -> torch.Tensor:
    """Label ids (N x 1 x H x W) as colour pictures in [-1, 1] on their device (sample grids)."""
    encoded = _encoded_palette(data)
    return colorize(label, encoded.colors if encoded is not None else palette_file(data)).to(label.device)


def dataset_classes(data: DataConfig) -> dict[str, Any]:
    """A data set's class palette and names: ``{"palette": [[r, g, b], ...] (colour i = class i) or
    None, "classes": names or None, "thing_ids": ids of countable classes or None}``.

    From ``data.palette`` when set; else a ``classes.json`` in the data set root or its parent (the
    synthetic scenes write one there, so a pix2pix model trained on their colour-coded aligned
    layout gets their palette); else, for label maps (``data.label_nc`` > 0), the default palette
    of :func:`default_palette`. None for image data without one. An unreadable file is skipped: a
    model is still served or exported without its palette.
    """
    builtin = _encoded_palette(data) or (builtin_palette(data.palette) if data.palette else None)
    if builtin is not None:
        colours = builtin.colors
        if data.label_nc > 0 and len(colours) < data.label_nc:
            colours = np.concatenate([colours, default_palette(data.label_nc)[len(colours):]])
        return {"palette": colours.tolist(), "classes": list(builtin.class_names or ()) or None,
                "thing_ids": list(builtin.thing_ids) if builtin.thing_ids is not None else None}
    candidates: list[Path] = []
    if data.palette:
        p = Path(data.palette).expanduser()
        candidates += [p] + ([Path(data.path) / p] if data.path and not p.is_absolute() else [])
    if data.path:
        candidates += [Path(data.path) / "classes.json", Path(data.path).parent / "classes.json"]
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
        if data.label_nc > 0 and len(pal) < data.label_nc:
            pal = np.concatenate([pal, default_palette(data.label_nc)[len(pal):]])
        return {"palette": pal.tolist(), "classes": names, "thing_ids": things}
    if data.label_nc > 0:
        return {"palette": default_palette(data.label_nc).tolist(), "classes": None, "thing_ids": None}
    return {"palette": None, "classes": None, "thing_ids": None}


def connected_components(ids: np.ndarray) -> np.ndarray:
    """4-connected regions of equal value: each pixel's region root (the smallest flat index in it)."""
    h, w = ids.shape
    flat = ids.ravel()
    idx = np.arange(h * w).reshape(h, w)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    keep = flat[a] == flat[b]
    a, b = a[keep], b[keep]
    root = np.arange(h * w)
    while True:  # hook the larger root of every edge onto the smaller, then compress fully
        ra, rb = root[a], root[b]
        differ = ra != rb
        if not differ.any():
            return root.reshape(h, w)
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(root, hi, lo)
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt


def derive_instances(ids: np.ndarray, thing_ids: list[int] | None = None) -> np.ndarray:
    """An instance map for a label map painted without one (Cityscapes convention): each
    4-connected region of a countable class (``thing_ids``; all classes when unknown) is one
    instance ``class * 1000 + k``; other classes (and class 0) keep their class id (no instances)."""
    roots = connected_components(ids).ravel()
    flat = ids.ravel().astype(np.int64)
    out = flat.copy()
    for c in np.unique(flat):
        if int(c) == 0 or (thing_ids is not None and int(c) not in thing_ids):
            continue  # class 0 cannot carry instances: ids below 1000 are class ids
        mask = flat == c
        _, k = np.unique(roots[mask], return_inverse=True)
        out[mask] = int(c) * 1000 + k
    return out.reshape(ids.shape)
