"""Large data sets as WebDataset shards: ``pairgan data pack`` and training from tar shards.

Packing (:func:`pack_shards`). Any split of any layout pairgan reads (``aligned``, ``folders``,
``labels`` with instance maps, ``poses``; slices such as ``train[:100]`` too) becomes tar shards
``OUT/NAME-000000.tar ...`` written with WebDataset's ``TarWriter``. One sample is the pair's
ORIGINAL file bytes (nothing is re-encoded), each stored as ``KEY.ROLE.EXT`` (``pair.jpg``;
``a.png`` + ``b.png``; ``label.png`` + ``inst.png`` + ``image.png``; ``source.jpg`` +
``target.jpg``) plus ``KEY.json``: the sample's index in the split, the layout, the original
relative path of every file by role and what else the layout needs (a pose pair's keypoints).
Shards close before they would pass ``--shard-size``. Each shard is written to a hidden temporary
and renamed into place (:mod:`pairgan.fsutil`), and the manifest ``OUT/NAME.json`` — layout, roles,
samples per shard, shard sizes and sha256, pairgan version, source root and split — is written
last: a pack killed at any moment leaves no shard under its real name that is not complete, and
no manifest.

Reading (:class:`ShardDataset`). ``data.path`` may be a manifest (a path, or a URL WebDataset
opens), a shard pattern ``DIR/train-{000000..000009}.tar``, ``pipe:COMMAND`` or another URL;
patterns and URLs go to WebDataset unchanged (its brace expansion and ``gopen``). Without a
manifest the samples per shard are counted in one pass first. Every sample is decoded by the
layout's own per-sample function (:meth:`pairgan.data.datasets.PairedImageDataset.decode`) with the
augmentation drawn from ``(seed, epoch, index)``: a folder and its shards give identical tensors.

Order. Each epoch's stream is the shards in an order drawn from ``(seed, epoch)`` (in manifest
order with ``data.shuffle=false``), one sample after another. Ranks x loader workers make
``S`` slots; slot ``s`` takes the ``s``-th contiguous run of ``Q`` samples of that stream (reading
only the shards its run overlaps, skipping without decoding the samples before its run in the
first one), then shuffles it through a buffer of ``data.shuffle_buffer`` raw samples seeded by
``(seed, epoch, slot)``. With one slot ``Q`` is the data set's size and the last batch may be
short, exactly as the folder data set; with more, ``Q`` is the data set's size over ``S`` rounded
up to whole batches, and the stream wraps around to fill it: every sample once per epoch plus at
most ``S x batch - 1`` repeats from the start of the epoch's stream, so every worker of every rank
yields the same number of full batches (GAN steps under torchrun need as much).

Resume. Exact at epoch boundaries. Within an epoch a checkpoint's position (batches of this rank)
fixes how many batches each slot has given, so a resumed run skips exactly those samples of each
slot's stream (reading, not decoding, them) and continues bit for bit — when the ranks, loader
workers and batch size are those of the interrupted run. With another layout the epoch continues
at the same share of its batches, but its slots hold other samples: some samples of that epoch
are then seen twice and some not at all (logged); from the next epoch on the order is exact again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from pairgan import __version__
from pairgan.config import DataConfig
from pairgan.data.datasets import (
    ALIGNED_LABELS,
    PairedImageDataset,
    SampleFile,
    SampleFiles,
    build_dataset,
    detect_layout,
)
from pairgan.data.splits import parse_split
from pairgan.errors import ConfigError, DataError
from pairgan.fsutil import atomic_write, atomic_write_text
from pairgan.registry import lookup, register

log = logging.getLogger(__name__)

__all__ = [
    "EXTRA_HINT",
    "MANIFEST_FORMAT",
    "ShardDataset",
    "ShardOrder",
    "ShardSet",
    "first_items",
    "open_shards",
    "pack_shards",
    "parse_size",
    "require_webdataset",
]

MANIFEST_FORMAT = "pairgan-shards"
MANIFEST_VERSION = 1
#: The one line a missing optional extra gets.
EXTRA_HINT = "pip install 'pairgan[webdataset]'"
#: tar stores every member as a 512-byte header plus its data padded to 512 bytes, ends with two
#: empty blocks, and Python's tarfile pads the whole archive to 20-block records.
_TAR_BLOCK = 512
_TAR_RECORD = 20 * _TAR_BLOCK


def require_webdataset() -> Any:
    """The ``webdataset`` module, or a DataError naming the extra to install."""
    try:
        import webdataset  # optional extra: pairgan[webdataset]
    except ImportError:
        raise DataError(f"WebDataset shards need the webdataset package: {EXTRA_HINT}") from None
    return webdataset


# --------------------------------------------------------------------------- sizes


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int) -> int:
    """``"1GB"`` -> 10**9, ``"500MB"``, ``"1.5GiB"``, ``"4096"`` (bytes); DataError otherwise."""
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        m = _SIZE.match(str(text))
        if m is None or (m.group(2) or "").lower() not in _UNITS:
            raise DataError(f"--shard-size {text!r}: expected a size such as 1GB, 500MB, 2GiB or a number of bytes")
        value, unit = float(m.group(1)), (m.group(2) or "").lower()
    size = int(value * _UNITS[unit])
    if size < 4096:
        raise DataError(f"--shard-size {text!r}: {size} bytes; expected at least 4096 bytes (shards are read whole; 100MB-1GB is typical)")
    return size


# --------------------------------------------------------------------------- packing


def _tar_bytes(n: int) -> int:
    """Bytes a member of ``n`` bytes takes in a tar."""
    return _TAR_BLOCK + math.ceil(n / _TAR_BLOCK) * _TAR_BLOCK


def _archive_bytes(members: int) -> int:
    """Bytes of a tar whose members take ``members`` bytes."""
    return math.ceil((members + 2 * _TAR_BLOCK) / _TAR_RECORD) * _TAR_RECORD


class _HashingFile:
    """A write-only file wrapper that hashes and counts what passes through (the shard's sha256
    without reading it back)."""

    def __init__(self, f: Any) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0
        #: Set when the file is closed: a tar writer abandoned by an error flushes nothing more.
        self.done = False

    def write(self, b: bytes) -> int:
        if self.done:
            return len(b)
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self) -> None:
        self.f.flush()


def _packing_dataset(root: Path, split: str, layout: str, max_items: int) -> PairedImageDataset:
    """The split's data set, built only to list its files (nothing is decoded)."""
    if not root.is_dir():
        raise DataError(f"{root}: data set folder not found")
    folder, _ = parse_split(split)
    if layout == "auto":
        layout = detect_layout(root, folder)
    cfg = DataConfig(path=str(root), layout=layout, max_items=max_items)
    if layout == "labels":
        # Ids are never decoded while packing; every instance map present is stored.
        cfg = dataclasses.replace(cfg, label_nc=1, instance=(root / f"{folder}_inst").is_dir())
    elif layout == ALIGNED_LABELS:
        cfg = dataclasses.replace(cfg, layout="aligned")
    elif layout not in ("aligned", "folders", "poses"):
        raise DataError(f"--layout {layout!r}: expected auto, aligned, folders, labels or poses")
    return build_dataset(cfg, split, train=False)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _member(role: str, rel: str) -> str:
    """A file's name inside its sample: role and extension (WebDataset lower-cases both)."""
    return f"{role.lower()}{Path(rel).suffix.lower()}"


def _write_shard(wds: Any, tmp: Path, samples: list[tuple[dict[str, Path], bytes, int]], indices: list[int],
                 root: Path) -> dict[str, Any]:
    """Write ``samples`` (files by role, JSON) as one tar at ``tmp``; its sha256 and size."""
    with open(tmp, "wb") as raw:
        f = _HashingFile(raw)
        try:
            # Fixed owner and time stamps: the same input gives the same bytes (and sha256); an
            # integer time, as a float would cost every member an extended (pax) header.
            writer = wds.TarWriter(f, user="pairgan", group="pairgan", mtime=0, encoder=False)
            for i, (files, text, _) in zip(indices, samples):
                sample: dict[str, Any] = {"__key__": f"{i:09d}", "json": text}
                for role, p in files.items():
                    try:
                        sample[_member(role, _relative(p, root))] = Path(p).read_bytes()
                    except OSError as exc:
                        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
                writer.write(sample)
            writer.close()
        finally:
            f.done = True  # an abandoned writer must not flush into the closed file later
    return {"sha256": f.sha.hexdigest(), "bytes": f.size}


def _shard_names(out: Path, name: str) -> list[Path]:
    return sorted(p for p in out.glob(f"{name}-*.tar") if re.fullmatch(rf"{re.escape(name)}-\d{{6}}\.tar", p.name))


def pack_shards(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str = "train",
    layout: str = "auto",
    shard_size: int | str = "1GB",
    name: str | None = None,
    max_items: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``split`` of the data set at ``root`` as WebDataset shards ``OUT/NAME-NNNNNN.tar`` and
    the manifest ``OUT/NAME.json``; returns the manifest (see the module docstring).

    ``name`` defaults to the split's folder name; ``max_items`` keeps the first N samples (after a
    slice); ``overwrite`` replaces an earlier pack of the same name (its manifest is removed first,
    its leftover shards last). ``progress(done, total)`` is called after every shard."""
    wds = require_webdataset()
    root, out = Path(root), Path(out)
    limit = parse_size(shard_size)
    folder, _ = parse_split(split)
    name = name or folder
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DataError(f"--name {name!r}: expected letters, digits, '.', '_' or '-' (it names the shard files)")
    ds = _packing_dataset(root, split, layout, max_items)
    manifest_path = out / f"{name}.json"
    old = _shard_names(out, name) if out.is_dir() else []
    if (manifest_path.exists() or old) and not overwrite:
        raise DataError(f"{manifest_path if manifest_path.exists() else old[0]}: already exists; expected a new "
                        "output (pass --overwrite to replace that pack, or --name for another one)")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        manifest_path.unlink(missing_ok=True)  # a kill from here on leaves no manifest naming stale shards
    n = len(ds)
    # (files by role, the sample's JSON, its bytes in a tar), known before anything is written
    samples: list[tuple[dict[str, Path], bytes, int]] = []
    for i in range(n):
        files = ds.sample_files(i)
        meta = {"index": i, "layout": ds.file_layout, "files": {r: _relative(p, root) for r, p in files.items()},
                "extra": ds.sample_extra(i)}
        text = json.dumps(meta, sort_keys=True).encode()
        try:
            size = sum(_tar_bytes(os.path.getsize(p)) for p in files.values()) + _tar_bytes(len(text))
        except OSError as exc:
            raise DataError(f"{exc.filename}: cannot read ({exc.strerror})") from None
        samples.append((files, text, size))
    # Shards close before passing the limit (a single larger sample gets a shard of its own).
    plan: list[list[int]] = [[]]
    used = 0
    for i, (_, _, size) in enumerate(samples):
        if plan[-1] and _archive_bytes(used + size) > limit:
            plan.append([])
            used = 0
        plan[-1].append(i)
        used += size
    roles = sorted({role for files, _, _ in samples for role in files})
    shards: list[dict[str, Any]] = []
    for k, members in enumerate(plan):
        path = out / f"{name}-{k:06d}.tar"
        info: dict[str, Any] = {}

        def write(tmp: Path, members: list[int] = members, info: dict[str, Any] = info) -> None:
            info.update(_write_shard(wds, tmp, [samples[i] for i in members], members, root))

        atomic_write(path, write)
        shards.append({"name": path.name, "samples": len(members), "first_index": members[0],
                       "bytes": info["bytes"], "sha256": info["sha256"]})
        if progress is not None:
            progress(k + 1, len(plan))
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "pairgan": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "layout": ds.file_layout,
        "roles": roles,
        "samples": n,
        "shard_size_limit": limit,
        "source": {"root": str(root.resolve()), "split": split, "max_items": max_items},
        "shards": shards,
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    keep = {s["name"] for s in shards}
    for p in old:
        if p.name not in keep:
            p.unlink(missing_ok=True)
    log.info("packed %d samples of %s (%s) into %d shards in %s", n, root / folder, ds.file_layout, len(shards), out)
    return manifest


# --------------------------------------------------------------------------- finding shards


def _has_scheme(spec: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", spec)) and not re.match(r"^[A-Za-z]:[\\/]", spec)


@dataclass
class ShardSet:
    """Shards to read: their URLs (as WebDataset opens them), samples per shard, the layout."""

    spec: str
    urls: list[str]
    counts: list[int]
    layout: str
    roles: list[str]
    manifest: dict[str, Any] | None = None
    #: How the counts were found: ``manifest`` or ``counted``.
    counted_by: str = "manifest"
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(self.counts)


def _read_text(spec: str) -> str:
    if not _has_scheme(spec):
        try:
            return Path(spec).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{spec}: manifest not found; expected the NAME.json that `pairgan data pack` wrote") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{spec}: unreadable manifest ({exc})") from None
    wds = require_webdataset()
    try:
        with wds.gopen(spec, "rb") as f:
            return f.read().decode("utf-8")
    except Exception as exc:  # gopen's errors are of every kind (ValueError, OSError, a failed command)
        raise DataError(f"{spec}: cannot read the manifest through WebDataset ({exc})") from None


def _parse_manifest(spec: str, text: str) -> dict[str, Any]:
    try:
        m = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{spec}: not a shard manifest (invalid JSON: {exc})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise DataError(f"{spec}: not a shard manifest (expected format {MANIFEST_FORMAT!r}, written by "
                        "`pairgan data pack`)")
    if m.get("version") != MANIFEST_VERSION:
        raise DataError(f"{spec}: manifest version {m.get('version')!r}; this pairgan reads version {MANIFEST_VERSION}")
    shards = m.get("shards")
    if not isinstance(shards, list) or not shards or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("samples"), int)
            and s["samples"] > 0 for s in shards):
        raise DataError(f"{spec}: manifest without a valid shard list (expected name and samples > 0 per shard)")
    if m.get("layout") not in ("aligned", "folders", "labels", "poses"):
        raise DataError(f"{spec}: manifest layout {m.get('layout')!r}; expected aligned, folders, labels or poses")
    return m


def _from_manifest(spec: str) -> ShardSet:
    m = _parse_manifest(spec, _read_text(spec))
    remote = _has_scheme(spec)
    base = spec.rsplit("/", 1)[0] + "/" if remote and "/" in spec else ""
    folder = Path(spec).parent
    urls = [base + s["name"] if remote else str(folder / s["name"]) for s in m["shards"]]
    if not remote:
        missing = [s["name"] for s, u in zip(m["shards"], urls) if not Path(u).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"{spec}: names missing shards: {folder / missing[0]}{more}; expected every shard "
                            "beside the manifest (copy them, or pack again)")
        for s, u in zip(m["shards"], urls):
            size = os.path.getsize(u)
            if isinstance(s.get("bytes"), int) and size != s["bytes"]:
                raise DataError(f"{u}: {size} bytes, the manifest says {s['bytes']}; the shard is damaged or "
                                "from another pack (pack again)")
    return ShardSet(spec=spec, urls=urls, counts=[s["samples"] for s in m["shards"]], layout=m["layout"],
                    roles=list(m.get("roles", [])), manifest=m, source=dict(m.get("source", {})))


def _manifest_beside(urls: list[str]) -> dict[str, Any] | None:
    """A manifest in the shards' folder that lists every one of them (local shards only)."""
    if any(_has_scheme(u) for u in urls):
        return None
    folders = {Path(u).parent for u in urls}
    if len(folders) != 1:
        return None
    names = {Path(u).name for u in urls}
    for p in sorted(next(iter(folders)).glob("*.json")):
        try:
            m = _parse_manifest(str(p), p.read_text(encoding="utf-8"))
        except (DataError, OSError, UnicodeDecodeError):
            continue
        if names <= {s["name"] for s in m["shards"]}:
            return m
    return None


def _raw_samples(url: str) -> Iterator[dict[str, Any]]:
    """The samples of one shard as WebDataset groups them (``__key__``, ``json``, ``ROLE.EXT``)."""
    wds = require_webdataset()
    try:
        yield from wds.tariterators.tarfile_samples([{"url": url}])
    except DataError:
        raise
    except Exception as exc:  # tarfile, gopen and a failed pipe: report them as a damaged shard
        what = str(exc.args[0]) if exc.args else type(exc).__name__
        if "no gopen handler" in what:
            raise DataError(f"{url}: WebDataset cannot open this URL scheme here; read it through a pipe, e.g. "
                            "'pipe:aws s3 cp s3://BUCKET/train-{000000..000009}.tar -'") from None
        raise DataError(f"{url}: not a readable tar shard ({type(exc).__name__}: {what.split(' @ ')[0]})") from None


def _from_urls(spec: str) -> ShardSet:
    wds = require_webdataset()
    urls = list(wds.shardlists.expand_urls(spec))
    for u in urls:
        if not _has_scheme(u) and not Path(u).is_file():
            raise DataError(f"{u}: shard not found (from data.path {spec!r})")
    m = _manifest_beside(urls)
    if m is not None:
        by_name = {s["name"]: s["samples"] for s in m["shards"]}
        return ShardSet(spec=spec, urls=urls, counts=[by_name[Path(u).name] for u in urls], layout=m["layout"],
                        roles=list(m.get("roles", [])), manifest=m, source=dict(m.get("source", {})))
    t0 = time.perf_counter()
    counts, first = [], None
    for u in urls:
        k = 0
        for sample in _raw_samples(u):
            if first is None:
                first = _meta(sample, u)
            k += 1
        if k == 0:
            raise DataError(f"{u}: no samples; expected a shard written by `pairgan data pack`")
        counts.append(k)
    assert first is not None
    log.warning("%s: no manifest, so the samples were counted first (%d in %d shards, %.1f s); pass the manifest "
                "NAME.json as data.path to skip this", spec, sum(counts), len(urls), time.perf_counter() - t0)
    return ShardSet(spec=spec, urls=urls, counts=counts, layout=first["layout"], roles=sorted(first["files"]),
                    counted_by="counted")


def open_shards(spec: str | os.PathLike) -> ShardSet:
    """The shards ``data.path`` names (see :func:`is_shard_spec`), with their sample counts."""
    spec = str(spec).strip()
    require_webdataset()
    return _from_manifest(spec) if spec.endswith(".json") else _from_urls(spec)


def _meta(sample: dict[str, Any], url: str) -> dict[str, Any]:
    try:
        meta = json.loads(sample["json"])
        if not (isinstance(meta, dict) and isinstance(meta.get("index"), int) and isinstance(meta.get("files"), dict)):
            raise ValueError("expected index and files")
        return meta
    except (KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{url}: sample {sample.get('__key__')!r} has no valid pairgan JSON ({exc}); expected "
                        "shards written by `pairgan data pack`") from None


# --------------------------------------------------------------------------- reading


def _reader_class(layout: str, cfg: DataConfig) -> type:
    """The layout class that decodes a shard's samples, as :func:`resolve_layout` picks it for a folder."""
    if layout == "aligned" and cfg.input_kind == "label" and cfg.label_nc > 0:
        layout = ALIGNED_LABELS
    return lookup("dataset", layout)


@register("dataset", "shards")
class ShardDataset(IterableDataset):
    """Training samples streamed from WebDataset shards (see the module docstring for the order).

    ``len(ds)`` is the number of samples; :meth:`order` says how this rank's loader batches them;
    items are those of the folder data set of the same layout, decoded by its :meth:`decode`.
    ``build_dataset`` builds it when ``data.path`` names shards (``split``: the training split).
    """

    layout = "shards"

    def __init__(self, spec: str | os.PathLike, split: str, cfg: DataConfig, *, train: bool, size_multiple: int = 1,
                 seed: int = 0) -> None:
        self.split = split
        self.shards = open_shards(spec)
        self.cfg, self.train, self.seed = cfg, train, int(seed)
        file_layout = self.shards.layout
        if cfg.layout not in ("auto", file_layout) and not (cfg.layout == ALIGNED_LABELS and file_layout == "aligned"):
            raise ConfigError(f"data.layout: {cfg.layout!r}, but the shards of {self.shards.spec} hold the "
                              f"{file_layout} layout; expected auto or {file_layout}")
        self.reader = _reader_class(file_layout, cfg).reader(cfg, train=train, size_multiple=size_multiple, seed=seed)
        if cfg.instance and file_layout == "labels" and "inst" not in self.shards.roles:
            raise DataError(f"{self.shards.spec}: data.instance is true but the shards hold no instance maps (packed "
                            "from a split without ROOT/{split}_inst/); set data.instance=false")
        counts = list(self.shards.counts)
        if cfg.max_items > 0:  # the first N samples in stored order
            left, kept = cfg.max_items, []
            for c in counts:
                if left <= 0:
                    break
                kept.append(min(c, left))
                left -= kept[-1]
            counts = kept
        self.counts = counts
        self.urls = self.shards.urls[: len(counts)]
        self.n = sum(counts)
        # How the loader takes the samples (set by order(); the defaults: one process, one slot).
        self.batch_size, self.world_size, self.rank, self.workers = 1, 1, 0, 0
        self.shuffle = bool(cfg.shuffle and train)
        self.buffer = int(cfg.shuffle_buffer) if self.shuffle else 0
        self.epoch, self.start_batch = 0, 0

    def __len__(self) -> int:
        return self.n

    # ------------------------------------------------------------- the order
    def order(self, *, batch_size: int, world_size: int = 1, rank: int = 0, workers: int = 0) -> "ShardOrder":
        """Configure this rank's slots and return the :class:`ShardOrder` that positions them."""
        self.batch_size, self.world_size, self.rank, self.workers = batch_size, world_size, rank, workers
        return ShardOrder(self)

    @property
    def slots(self) -> int:
        """(rank, loader worker) slots: every one reads its own run of each epoch's stream."""
        return self.world_size * max(1, self.workers)

    @property
    def per_slot(self) -> int:
        """Samples each slot yields per epoch (see the module docstring)."""
        if self.slots == 1:
            return self.n
        return math.ceil(self.n / (self.slots * self.batch_size)) * self.batch_size

    def shard_order(self, epoch: int) -> np.ndarray:
        """The shards' indices in ``epoch``'s reading order."""
        k = len(self.counts)
        return np.random.default_rng([self.seed, epoch, 0x5A4D]).permutation(k) if self.shuffle else np.arange(k)

    def segments(self, epoch: int, slot: int) -> list[tuple[int, int, int]]:
        """``(shard, first, stop)`` runs of sample positions inside shards that ``slot`` reads in ``epoch``."""
        order = self.shard_order(epoch)
        counts = np.asarray(self.counts)[order]
        starts = np.concatenate([[0], np.cumsum(counts)])
        q = self.per_slot
        pos, end = slot * q, (slot + 1) * q
        runs: list[tuple[int, int, int]] = []
        while pos < end:
            p = pos % self.n
            j = int(np.searchsorted(starts, p, side="right") - 1)
            take = min(end - pos, int(starts[j + 1]) - p)
            first = p - int(starts[j])
            runs.append((int(order[j]), first, first + take))
            pos += take
        return runs

    def _slot_stream(self, epoch: int, slot: int) -> Iterator[dict[str, Any]]:
        """The raw samples of ``slot`` in ``epoch``: its runs, then the shuffle buffer."""

        def runs() -> Iterator[dict[str, Any]]:
            for shard, first, stop in self.segments(epoch, slot):
                url = self.urls[shard]
                got = 0
                it = _raw_samples(url)
                try:
                    for sample in islice(it, first, stop):  # before `first`: read, not decoded
                        got += 1
                        yield sample
                finally:
                    it.close()
                if got < stop - first:
                    raise DataError(f"{url}: ended after {first + got} samples, the manifest says "
                                    f"{self.counts[shard]}; the shard is damaged (pack again)")

        stream = runs()
        if self.buffer > 0:
            wds = require_webdataset()
            state = np.random.SeedSequence([self.seed, epoch, slot, 0xB0FF]).generate_state(2)
            rng = random.Random(int(state[0]) << 32 | int(state[1]))
            stream = wds.filters.shuffle(self.buffer, initial=self.buffer, rng=rng)(stream)
        return stream

    def decode(self, raw: dict[str, Any], epoch: int) -> dict[str, Any]:
        """A raw shard sample -> the item the layout's folder data set gives for its (epoch, index)."""
        url = raw.get("__url__", self.shards.spec)
        meta = _meta(raw, url)
        files: SampleFiles = {}
        for role, rel in meta["files"].items():
            member = _member(role, rel)
            if member not in raw:
                raise DataError(f"{url}: sample {raw.get('__key__')!r} lacks its {role} file {member!r}")
            files[role] = SampleFile(Path(f"{url}:{rel}"), raw[member])
        return self.reader.decode(files, meta.get("extra") or {}, epoch, int(meta["index"]))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        workers = max(1, self.workers)
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if nw != workers:
            raise RuntimeError(f"ShardDataset ordered for {workers} loader workers, iterated by {nw}")
        # Resuming at batch b: the loader takes batches from its workers in turn, starting with
        # worker 0, so worker w plays slot (w + b) % workers, whose next batch comes next.
        logical = (wid + self.start_batch) % workers
        done = self.start_batch // workers + (1 if logical < self.start_batch % workers else 0)
        epoch = self.epoch
        stream = self._slot_stream(epoch, self.rank * workers + logical)
        for raw in islice(stream, done * self.batch_size, None):  # skipped samples are not decoded
            yield self.decode(raw, epoch)

    # ------------------------------------------------------------- without a loader
    def head(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` samples in stored order, decoded for epoch 0 (sample grids)."""
        out: list[dict[str, Any]] = []
        for raw in self.head_raw(n):
            out.append(self.decode(raw, 0))
        return out

    def head_raw(self, n: int) -> Iterator[dict[str, Any]]:
        """The first ``n`` raw samples in stored order."""
        left = min(n, self.n)
        for url, c in zip(self.urls, self.counts):
            if left <= 0:
                return
            it = _raw_samples(url)
            try:
                for raw in islice(it, min(c, left)):
                    left -= 1
                    yield raw
            finally:
                it.close()

    def head_files(self, n: int) -> Iterator[SampleFiles]:
        """The files of the first ``n`` samples in stored order (input profiles)."""
        for raw in self.head_raw(n):
            url = raw.get("__url__", self.shards.spec)
            meta = _meta(raw, url)
            yield {role: SampleFile(Path(f"{url}:{rel}"), raw.get(_member(role, rel)))
                   for role, rel in meta["files"].items()}

    def describe(self) -> str:
        cfg = self.cfg
        how = (f"shards in an order from (seed, epoch), buffer {self.buffer}" if self.shuffle
               else "shards and samples in stored order")
        return (f"shards ({self.shards.layout}, read as {self.reader.layout}): {self.n} samples in "
                f"{len(self.urls)} shards of {self.shards.spec} ({how}); preprocess {cfg.preprocess} "
                f"(load {cfg.load_size}, crop {cfg.crop_size}), {'train' if self.train else 'eval'} mode, seed {self.seed}")

    def __repr__(self) -> str:
        return f"ShardDataset({self.describe()})"

    @classmethod
    def detect(cls, root: Path, split: str) -> bool:
        return False  # chosen by data.path (is_shard_spec), never detected in a folder


class ShardOrder:
    """The epoch order of a :class:`ShardDataset` on this rank, as a training loop positions it:
    ``len(order)`` batches per epoch, ``global_batch`` items per step over all ranks,
    ``set_position(epoch, batch)`` before a loader iteration starts."""

    def __init__(self, dataset: ShardDataset) -> None:
        self.dataset = dataset

    @property
    def global_batch(self) -> int:
        return self.dataset.batch_size * self.dataset.world_size

    def __len__(self) -> int:
        ds = self.dataset
        if ds.slots == 1:
            return math.ceil(ds.n / ds.batch_size)
        return max(1, ds.workers) * ds.per_slot // ds.batch_size

    def set_position(self, epoch: int, start_batch: int) -> None:
        # The loader copies the data set into its worker processes when an iteration starts, so
        # workers must not persist across epochs (each epoch's iteration carries its position).
        self.dataset.epoch, self.dataset.start_batch = epoch, start_batch

    def describe(self) -> dict[str, Any]:
        """What fixes the order besides (seed, epoch): a resume with other values is not exact."""
        ds = self.dataset
        return {"kind": "shards", "slots": ds.slots, "workers": max(1, ds.workers), "world_size": ds.world_size,
                "batch_size": ds.batch_size, "shuffle": ds.shuffle, "buffer": ds.buffer}


def first_items(dataset: Any, n: int) -> list[dict[str, Any]]:
    """The first ``n`` items of a data set: by index, or the first samples of a shard stream."""
    if isinstance(dataset, ShardDataset):
        return dataset.head(n)
    return [dataset[i] for i in range(min(n, len(dataset)))]
