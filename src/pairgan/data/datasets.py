"""Paired data sets: the ``aligned`` (A|B side by side) and ``folders`` (``A/``, ``B/``) layouts.

Every sample is a pure function of ``(seed, epoch, index)``: the augmentation draw comes from
``np.random.default_rng([seed, epoch, index])`` and nothing here touches a global RNG, so worker
processes, their number and a resumed run all see the same pairs bit for bit.

A layout reads a sample in two steps: ``sample_files(index)`` names its files by role (``pair``;
``A``, ``B``; ...) and ``sample_extra(index)`` gives what else it needs (pose keypoints); then
``decode(files, extra, epoch, index)`` — THE per-sample function — decodes and augments them.
``ds[(epoch, index)]`` feeds it the files on disk; a WebDataset shard (:mod:`pairgan.data.shards`)
feeds it the same files' bytes through :meth:`PairedImageDataset.reader`, so a folder and its
shards give identical tensors.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from pairgan.config import DataConfig
from pairgan.data.io import list_images, match_channels, read_image, to_unit_float
from pairgan.data.splits import parse_split, select_indices
from pairgan.data.tonemap import apply_target_transform
from pairgan.data.transforms import PairedTransform, to_tensor
from pairgan.errors import DataError
from pairgan.registry import available, lookup, register

LAYOUT_HELP = (
    "expected either the aligned layout ROOT/{split}/*.jpg (each file holds A|B side by side) "
    "or the folders layout ROOT/{split}/A/* and ROOT/{split}/B/* (partners share a file stem)"
)


def _layout_help(split: str) -> str:
    return LAYOUT_HELP.format(split=split)


#: The file names a WebDataset shard may have.
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def is_shard_spec(path: str | os.PathLike) -> bool:
    """Whether ``data.path`` names WebDataset shards (:mod:`pairgan.data.shards`): a manifest
    (``.json``), a shard or shard pattern (``.tar``, ``.tgz``, ``.tar.gz``), ``pipe:...`` or a URL
    (``s3://``, ``https://``, ...)."""
    spec = str(path).strip()
    if not spec:
        return False
    return spec.startswith("pipe:") or "://" in spec or spec.endswith((".json", *SHARD_SUFFIXES))


@dataclass(frozen=True)
class SampleFile:
    """One file of a sample. ``path`` names it: a file on disk, or ``SHARD:NAME`` for a file stored
    in a WebDataset shard (its extension picks the decoder, messages start with it); ``data`` holds
    its bytes when it was not read from disk."""

    path: Path
    data: bytes | None = None

    def read(self, *, palette_indices: bool = False) -> np.ndarray:
        """The decoded pixels (:func:`pairgan.data.io.read_image`)."""
        return read_image(self.path, palette_indices=palette_indices, data=self.data)


#: A sample's files by role (``pair``; ``A`` and ``B``; ``label``, ``inst``, ``image``; ``source``, ``target``).
SampleFiles = dict[str, SampleFile]


def on_disk(files: dict[str, Path]) -> SampleFiles:
    """Files on disk by role as :class:`SampleFile` s."""
    return {role: SampleFile(Path(p)) for role, p in files.items()}


def load_side(path: Path, kind: str, nc: int, key: str, arr: np.ndarray | None = None) -> np.ndarray:
    """One side as float32 HxWxC in [0, 1] with ``nc`` channels (``arr``: already decoded pixels)."""
    if arr is None:
        arr = read_image(path, palette_indices=(kind == "label" and nc == 1))
    return match_channels(to_unit_float(arr, label=(kind == "label"), path=path), nc, path, key)


def match_by_stem(a_files: list[Path], b_files: list[Path]) -> tuple[
        list[tuple[Path, Path]], list[tuple[str, str]]]:
    """Pairs of files with the same stem, and (file, problem) for duplicates and missing partners."""
    problems: list[tuple[str, str]] = []
    maps: list[dict[str, Path]] = []
    for files in (a_files, b_files):
        m: dict[str, Path] = {}
        for f in files:
            if f.stem in m:
                problems.append((str(f), f"same file stem as {m[f.stem]}, expected one file per stem"))
            else:
                m[f.stem] = f
        maps.append(m)
    a_map, b_map = maps
    for stem, f in a_map.items():
        if stem not in b_map:
            problems.append((str(f), f"no partner named {stem}.* in {f.parent.parent / 'B'} "
                                      "(A and B are matched by file stem)"))
    for stem, f in b_map.items():
        if stem not in a_map:
            problems.append((str(f), f"no partner named {stem}.* in {f.parent.parent / 'A'} "
                                      "(A and B are matched by file stem)"))
    pairs = [(a_map[s], b_map[s]) for s in sorted(a_map) if s in b_map]
    return pairs, problems


def sample_key(key: Any, n: int) -> tuple[int, int]:
    """``index`` or ``(epoch, index)`` -> ``(epoch, index)`` with a negative index counted from
    the end; errors for a malformed key or an index outside ``n`` items."""
    if isinstance(key, (tuple, list)):
        if len(key) != 2:
            raise TypeError(f"dataset key {key!r}: expected an index or (epoch, index)")
        epoch, index = operator.index(key[0]), operator.index(key[1])
    else:
        epoch, index = 0, operator.index(key)
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"index {index} out of range for {n} pairs")
    if epoch < 0:
        raise ValueError(f"epoch {epoch}, expected >= 0")
    return epoch, index


class PairedImageDataset(Dataset):
    """Base class: subclasses fill ``self.pairs`` and implement ``sample_files`` and ``_read_pair``.

    ``ds[index]`` or ``ds[(epoch, index)]`` -> ``{"A", "B", "A_path", "B_path", "index"}``; ``A``
    is the network input (after ``direction``), ``[input_nc, H, W]`` in [-1, 1]; ``B`` the target.
    """

    layout = "?"
    #: The file layout a shard of this data set records (``aligned-labels`` reads aligned files).
    file_layout = "?"

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
        self._setup(root, split, split, cfg, train=train, size_multiple=size_multiple, seed=seed)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: split folder not found; {_layout_help(split)}")
        self.pairs: list[tuple[Path, Path | None]] = self._find_pairs()
        if cfg.max_items > 0:
            self.pairs = self.pairs[: cfg.max_items]
        if not self.pairs:
            raise DataError(f"{self.folder}: empty split, no image pairs found; {_layout_help(split)}")

    def _setup(self, root: str | Path, split: str, folder: str, cfg: DataConfig, *, train: bool,
               size_multiple: int, seed: int) -> None:
        """What every layout's constructor sets first: root, split, its ``folder`` under root and
        what :meth:`_setup_reading` sets."""
        self.root = Path(root)
        self.split = split
        self.folder = self.root / folder
        self._setup_reading(cfg, train=train, size_multiple=size_multiple, seed=seed)

    def _setup_reading(self, cfg: DataConfig, *, train: bool, size_multiple: int, seed: int) -> None:
        """What decoding a sample needs (no file is touched): the seed (checked), the config and the
        shared augmentation (:class:`PairedTransform`); layouts add their own checks."""
        if seed < 0:
            raise ValueError(f"seed {seed}, expected a non-negative integer")
        self.cfg = cfg
        self.train = train
        self.seed = int(seed)
        self.transform = PairedTransform(
            cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, train=train,
            size_multiple=size_multiple,
        )

    @classmethod
    def reader(cls, cfg: DataConfig, *, train: bool, size_multiple: int = 1, seed: int = 0) -> "PairedImageDataset":
        """An instance of this layout that decodes samples handed to it (:meth:`decode`) without
        a folder: what a WebDataset shard's samples go through."""
        obj = cls.__new__(cls)
        obj.root = obj.folder = Path("")
        obj.split = ""
        obj.pairs = []
        obj._setup_reading(cfg, train=train, size_multiple=size_multiple, seed=seed)
        return obj

    # -- subclass hooks
    def _find_pairs(self) -> list[tuple[Path, Path | None]]:
        raise NotImplementedError

    def sample_files(self, index: int) -> dict[str, Path]:
        """Item ``index``'s files on disk by role (what a shard stores of it)."""
        raise NotImplementedError

    def sample_extra(self, index: int) -> dict[str, Any]:
        """What item ``index`` needs besides its files (JSON values; stored in its shard)."""
        return {}

    def _read_pair(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray, Path, Path]:
        """Native arrays and paths of the A side and the B side (before ``direction``)."""
        raise NotImplementedError

    # -- sampling
    def __len__(self) -> int:
        return len(self.pairs)

    def _key(self, key: Any) -> tuple[int, int]:
        return sample_key(key, len(self.pairs))

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = self._key(key)
        return self.decode(on_disk(self.sample_files(index)), self.sample_extra(index), epoch, index)

    def decode(self, files: SampleFiles, extra: dict[str, Any], epoch: int, index: int) -> dict[str, Any]:
        """THE per-sample function: item ``index`` of ``epoch`` from its files (on disk or from a
        shard), augmented with the draw of ``(seed, epoch, index)``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        cfg = self.cfg
        a_raw, b_raw, a_path, b_path = self._read_pair(files)
        if cfg.direction == "BtoA":
            a_raw, b_raw, a_path, b_path = b_raw, a_raw, b_path, a_path
        a = load_side(a_path, cfg.input_kind, cfg.input_nc, "data.input_nc", a_raw)
        b = load_side(b_path, cfg.output_kind, cfg.output_nc, "data.output_nc", b_raw)
        try:
            a, b = self.transform(a, b, rng, nearest_a=cfg.input_kind == "label",
                                  nearest_b=cfg.output_kind == "label")
        except ValueError as exc:
            where = str(a_path) if a_path == b_path else f"{a_path} / {b_path}"
            raise DataError(f"{where}: {exc}") from None
        if cfg.output_kind == "image":
            b = apply_target_transform(b, cfg.target_transform)
        return {
            "A": to_tensor(a),
            "B": to_tensor(b),
            "A_path": str(a_path),
            "B_path": str(b_path),
            "index": index,
        }

    def describe(self) -> str:
        cfg = self.cfg
        t = self.transform
        aug = f"preprocess {cfg.preprocess} (load {cfg.load_size}, crop {cfg.crop_size})"
        if t.size_multiple > 1:
            aug += f", sizes rounded to multiples of {t.size_multiple}"
        if self.train and cfg.flip:
            aug += ", random flip"
        return (
            f"{self.layout}: {len(self)} pairs in {self.folder} ({cfg.direction}, "
            f"input {cfg.input_nc}ch {cfg.input_kind}, output {cfg.output_nc}ch {cfg.output_kind}), "
            f"{aug}, {'train' if self.train else 'eval'} mode, seed {self.seed}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"


@register("dataset", "aligned")
class AlignedDataset(PairedImageDataset):
    """``ROOT/{split}/*``: each file holds A (left half) | B (right half); the width must be even."""

    layout = "aligned"
    file_layout = "aligned"

    def _find_pairs(self) -> list[tuple[Path, Path | None]]:
        return [(f, None) for f in list_images(self.folder)]

    def sample_files(self, index: int) -> dict[str, Path]:
        return {"pair": self.pairs[index][0]}

    def _read_pair(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray, Path, Path]:
        f = files["pair"]
        a, b = split_aligned(f.read(), f.path)
        return a, b, f.path, f.path


def split_aligned(both: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Left and right halves of an A|B image; an odd width raises DataError."""
    w = both.shape[1]
    if w % 2:
        raise DataError(f"{path}: width {w} is odd, expected an even width (A|B side by side)")
    return both[:, : w // 2], both[:, w // 2:]


@register("dataset", "folders")
class FoldersDataset(PairedImageDataset):
    """``ROOT/{split}/A/*`` and ``ROOT/{split}/B/*``, partners matched by file stem."""

    layout = "folders"
    file_layout = "folders"

    def _find_pairs(self) -> list[tuple[Path, Path | None]]:
        for side in ("A", "B"):
            if not (self.folder / side).is_dir():
                raise DataError(f"{self.folder / side}: folder not found; {_layout_help(self.split)}")
        pairs, problems = match_by_stem(list_images(self.folder / "A"), list_images(self.folder / "B"))
        if problems:
            shown = "; ".join(f"{f}: {p}" for f, p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise DataError(f"{self.folder}: {len(problems)} unpaired or duplicate files: {shown}{more}")
        return list(pairs)

    def sample_files(self, index: int) -> dict[str, Path]:
        a_path, b_path = self.pairs[index]
        assert b_path is not None
        return {"A": a_path, "B": b_path}

    def _read_pair(self, files: SampleFiles) -> tuple[np.ndarray, np.ndarray, Path, Path]:
        a_path, b_path = files["A"].path, files["B"].path
        cfg = self.cfg
        # Palette indices are wanted where that side ends up a 1-channel label input or output.
        a_kind, a_nc, b_kind, b_nc = cfg.input_kind, cfg.input_nc, cfg.output_kind, cfg.output_nc
        if cfg.direction == "BtoA":
            a_kind, a_nc, b_kind, b_nc = b_kind, b_nc, a_kind, a_nc
        a = files["A"].read(palette_indices=(a_kind == "label" and a_nc == 1))
        b = files["B"].read(palette_indices=(b_kind == "label" and b_nc == 1))
        if a.shape[:2] != b.shape[:2]:
            raise DataError(
                f"{a_path} is {a.shape[1]}x{a.shape[0]} but its partner {b_path} is "
                f"{b.shape[1]}x{b.shape[0]}; expected A and B of the same size"
            )
        return a, b, a_path, b_path


_LAYOUTS: dict[str, type[PairedImageDataset]] = {"aligned": AlignedDataset, "folders": FoldersDataset}


def _custom_layouts() -> dict[str, Any]:
    """Registered data set classes other than the two image-pair layouts defined here."""
    return {name: lookup("dataset", name) for name in available("dataset") if name not in _LAYOUTS}


def detect_layout(root: str | Path, split: str) -> str:
    """The layout of ``ROOT`` for ``split``.

    Registered data set classes with a ``detect(root, split) -> bool`` classmethod are asked
    first (label maps, pose pairs, ...); then ``"folders"`` when ``ROOT/split/A`` and
    ``ROOT/split/B`` exist, ``"aligned"`` when ``ROOT/split`` holds images; otherwise DataError
    describing both layouts."""
    for name, cls in _custom_layouts().items():
        detect = getattr(cls, "detect", None)
        if detect is not None and detect(Path(root), split):
            return name
    folder = Path(root) / split
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder not found; {_layout_help(split)}")
    has_a, has_b = (folder / "A").is_dir(), (folder / "B").is_dir()
    if has_a and has_b:
        return "folders"
    if list_images(folder):
        return "aligned"
    if has_a or has_b:
        missing = "B" if has_a else "A"
        raise DataError(f"{folder}: found {'A' if has_a else 'B'}/ but no {missing}/ folder; "
                        f"{_layout_help(split)}")
    raise DataError(f"{folder}: no images and no A/ and B/ folders; {_layout_help(split)}")


#: The layout the aligned files take when the inputs are label maps (registered by data/labels.py).
ALIGNED_LABELS = "aligned-labels"


def resolve_layout(cfg: DataConfig, split: str) -> str:
    """The layout that reads ``split``: ``data.layout`` (``auto``: :func:`detect_layout`), with
    ``aligned`` turned into ``aligned-labels`` when the inputs are label maps
    (``data.input_kind=label`` and ``data.label_nc`` > 0): the label half is decoded to class
    ids for the one-hot input of pix2pixHD, CRN and DRPAN. ``split`` may be a slice ``NAME[START:STOP]``."""
    if is_shard_spec(cfg.path):
        return "shards"
    split, _ = parse_split(split)
    layout = detect_layout(cfg.path, split) if cfg.layout == "auto" else cfg.layout
    if layout == "aligned" and cfg.input_kind == "label" and cfg.label_nc > 0:
        return ALIGNED_LABELS
    return layout


def _dataset_class(cfg: DataConfig, split: str) -> type[PairedImageDataset]:
    layout = resolve_layout(cfg, split)
    if layout in _LAYOUTS:
        return _LAYOUTS[layout]
    try:
        return lookup("dataset", layout)
    except KeyError as exc:
        raise DataError(f"data.layout: {exc.args[0]} (or 'auto')") from None


def build_dataset(
    cfg: DataConfig, split: str, *, train: bool, size_multiple: int = 1, seed: int = 0
) -> PairedImageDataset:
    """The data set for ``split`` of ``cfg.path`` (layout ``auto`` detects aligned or folders).

    ``split`` is a folder name or a slice of one, ``NAME[START:STOP]`` (:mod:`pairgan.data.splits`);
    ``data.max_items`` applies after the slice. When ``data.path`` names WebDataset shards
    (:func:`is_shard_spec`) they are the training split, read as a stream
    (:class:`pairgan.data.shards.ShardDataset`); another split is read from a folder."""
    if not cfg.path:
        raise DataError(f"data.path is empty; expected the data set root folder ({LAYOUT_HELP})")
    if is_shard_spec(cfg.path) and split != cfg.train_split:
        raise DataError(f"{cfg.path}: WebDataset shards hold the training split ({cfg.train_split}); split "
                        f"{split!r} is read from a data set folder")
    cls = _dataset_class(cfg, split)
    if is_shard_spec(cfg.path):
        return cls(cfg.path, split, cfg, train=train, size_multiple=size_multiple, seed=seed)
    folder, sl = parse_split(split)
    if sl is None:
        return cls(cfg.path, split, cfg, train=train, size_multiple=size_multiple, seed=seed)
    ds = cls(cfg.path, folder, dataclasses.replace(cfg, max_items=0), train=train, size_multiple=size_multiple,
             seed=seed)
    keep = select_indices(ds.pairs, split, Path(cfg.path) / folder)
    if cfg.max_items > 0:
        keep = keep[: cfg.max_items]
    n = len(ds.pairs)
    for attr in ("pairs", "insts"):  # ``insts``: the label layouts' instance maps, one per pair
        values = getattr(ds, attr, None)
        if isinstance(values, list) and len(values) == n:
            setattr(ds, attr, [values[i] for i in keep])
    ds.cfg = cfg
    ds.split = split
    return ds


def split_exists(cfg: DataConfig, split: str) -> bool:
    """Whether ``cfg.path/split`` exists and holds images in a recognised layout."""
    if not cfg.path or not split:
        return False
    if is_shard_spec(cfg.path):
        return split == cfg.train_split
    try:
        layout = resolve_layout(cfg, split)
        split, _ = parse_split(split)
    except DataError:
        return False
    if layout not in _LAYOUTS:
        custom = getattr(lookup("dataset", layout), "split_exists", None)
        return bool(custom(Path(cfg.path), split)) if custom is not None else True
    folder = Path(cfg.path) / split
    if not folder.is_dir():
        return False
    try:
        if layout == "folders":
            return bool(list_images(folder / "A"))
        if layout == "aligned":
            return bool(list_images(folder))
    except DataError:
        return False
    return False


__all__ = [
    "ALIGNED_LABELS",
    "AlignedDataset",
    "FoldersDataset",
    "PairedImageDataset",
    "SampleFile",
    "SampleFiles",
    "on_disk",
    "build_dataset",
    "detect_layout",
    "is_shard_spec",
    "load_side",
    "match_by_stem",
    "resolve_layout",
    "sample_key",
    "split_aligned",
    "split_exists",
]
