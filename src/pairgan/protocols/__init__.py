"""Locked evaluation protocols: a named, versioned, immutable description of one evaluation.

A :class:`Protocol` pins everything a score depends on:

* the data: the split (``val``, or a slice such as ``train[2700:]``), its file manifest (file name
  -> sha256 of the file's bytes), how it is read (layout, direction, what the input is, the label
  palette's name);
* the evaluation resolution and the resize kernels (photos: the kernel and the library doing it;
  label maps: nearest);
* the metrics, the sha256 of each metric network's weights file (the pins of
  :mod:`pairgan.weights`: ``inception-fid``, ``lpips-vgg``), the KID subset size and count, the
  bootstrap resample counts;
* the segmenter of the segmentation score: the sha256 of its weights file (``S.safetensors``; null
  until it is trained and pinned), its class list and the recipe that trains it;
* the seed.

:attr:`Protocol.fingerprint` is one sha256 over the canonical JSON (sorted keys, no spaces, ASCII)
of those pinned items. The protocol's name, version and free-text description are labels, not
part of the fingerprint: two files that pin the same evaluation have the same fingerprint.

Built-in protocols are YAML files of this package (:data:`BUILTIN`): ``cityscapes-pix2pix-256``
(the pix2pix paper's 256x256 labels -> photo on the canonical Cityscapes val split),
``cityscapes-pix2pix-128`` (the same at a CPU size) and ``facades-heldout-256``. :func:`load_protocol`
takes a built-in name or the path of a YAML file a user wrote.

This module sits on the config floor: it imports only the ground floor and YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from pairgan.errors import ConfigError, DataError
from pairgan.fsutil import atomic_write_text

__all__ = [
    "BUILTIN",
    "CITYSCAPES_CLASSES",
    "ManifestProblem",
    "Protocol",
    "ResizeRule",
    "SegmenterPin",
    "builtin_names",
    "canonical_json",
    "check_manifest",
    "file_sha256",
    "load_protocol",
    "manifest_of_files",
    "protocol_from_dict",
    "save_protocol",
]

_HERE = Path(__file__).resolve().parent

#: Built-in protocol name -> its YAML file in this package.
BUILTIN: dict[str, Path] = {p.stem: p for p in sorted(_HERE.glob("*.yaml"))}

#: The 19 Cityscapes training classes (trainIds 0..18), the classes of the segmentation score.
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LAYOUTS = ("aligned", "folders", "labels")
_DIRECTIONS = ("AtoB", "BtoA")
_INPUTS = ("colour_label", "label_ids", "image")
_KERNELS = ("bicubic", "bilinear", "lanczos", "nearest", "box")


def _check_sha(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ConfigError(f"{what}: {value!r}, expected a sha256 (64 lower-case hex digits)")
    return value


@dataclass(frozen=True)
class ResizeRule:
    """How one kind of image is brought to the evaluation resolution."""

    #: ``bicubic``, ``bilinear``, ``lanczos``, ``nearest`` or ``box``.
    kernel: str
    #: What does it, exactly (the library, the call and its number format).
    library: str

    def __post_init__(self) -> None:
        if self.kernel not in _KERNELS:
            raise ConfigError(f"resize kernel {self.kernel!r}, expected one of {', '.join(_KERNELS)}")


@dataclass(frozen=True)
class SegmenterPin:
    """The segmenter of the segmentation score: its weights' sha256 (None: not pinned yet, and every
    card scored under the protocol is then marked not comparable), its classes and its recipe."""

    sha256: str | None
    classes: tuple[str, ...]
    #: The label id the scores ignore (the void id of the palette; -1: none).
    ignore_index: int = -1
    #: How ``pairgan segmenter train --protocol`` trains it: split, size, steps, batch_size, lr,
    #: net, ngf, num_downs, norm, flip (see :meth:`Protocol.segmenter_overrides`).
    recipe: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_sha(self.sha256, "segmenter.sha256", optional=True)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "recipe", _frozen(dict(self.recipe)))


class _FrozenDict(dict):
    """A dict that refuses changes: a protocol's mappings cannot drift after loading."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a protocol is immutable; write a new protocol file (and bump its version)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: str(kv[0]))))


def _frozen(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _FrozenDict({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _thawed(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class Protocol:
    """One locked evaluation (see the module docstring). Build it with :func:`load_protocol` or
    :func:`protocol_from_dict`; change it with :func:`dataclasses.replace` (a new protocol)."""

    name: str
    version: int
    #: The split spec (``val``, ``test``, ``train[2700:]``) of the data root given at evaluation.
    split: str
    #: File name -> sha256 of every file of the split; evaluation refuses a split that differs.
    manifest: Mapping[str, str]
    #: How the split is read: ``aligned`` (A|B in one file), ``folders`` or ``labels``.
    layout: str
    direction: str
    #: What the generator's input is: ``colour_label`` (a colour-coded label map), ``label_ids``
    #: or ``image``.
    input: str
    #: The label palette's name (``cityscapes``, ``facades``); "" when the input is not a label map.
    palette: str
    #: Evaluation resolution, ``(width, height)``: every image is scored at this size.
    resolution: tuple[int, int]
    resize_photo: ResizeRule
    resize_label: ResizeRule
    metrics: tuple[str, ...]
    #: Weights registry name (``inception-fid``, ``lpips-vgg``) -> sha256 of the file.
    weights: Mapping[str, str]
    kid_subset_size: int
    kid_subsets: int
    bootstrap_resamples: int
    fid_resamples: int
    segmenter: SegmenterPin | None
    seed: int = 0
    #: Free text (not pinned, not in the fingerprint).
    description: str = ""
    #: Colour label maps: pixels farther than this (Euclidean RGB, 0..255) from every palette colour
    #: are void (ignored by the segmentation score); the ground truth is decoded with the nearest
    #: palette colour at native size, then resized with nearest.
    palette_max_distance: float = 50.0

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"protocol name {self.name!r}: expected a non-empty string")
        if not isinstance(self.version, int) or self.version < 1:
            raise ConfigError(f"protocol {self.name}: version {self.version!r}, expected an integer >= 1")
        if self.layout not in _LAYOUTS:
            raise ConfigError(f"protocol {self.name}: layout {self.layout!r}, expected one of {', '.join(_LAYOUTS)}")
        if self.direction not in _DIRECTIONS:
            raise ConfigError(f"protocol {self.name}: direction {self.direction!r}, expected AtoB or BtoA")
        if self.input not in _INPUTS:
            raise ConfigError(f"protocol {self.name}: input {self.input!r}, expected one of {', '.join(_INPUTS)}")
        if self.resize_label.kernel != "nearest":
            raise ConfigError(f"protocol {self.name}: label maps are resized with nearest (ids must not blend), "
                              f"got {self.resize_label.kernel!r}")
        res = tuple(int(v) for v in self.resolution)
        if len(res) != 2 or min(res) < 1:
            raise ConfigError(f"protocol {self.name}: resolution {self.resolution!r}, expected [width, height] >= 1")
        object.__setattr__(self, "resolution", res)
        if not self.manifest:
            raise ConfigError(f"protocol {self.name}: an empty manifest; a protocol pins every file of its split")
        for name, digest in self.manifest.items():
            _check_sha(digest, f"protocol {self.name}: manifest entry {name}")
        for name, digest in self.weights.items():
            _check_sha(digest, f"protocol {self.name}: weights {name}")
        if not self.metrics:
            raise ConfigError(f"protocol {self.name}: no metrics")
        for key in ("kid_subset_size", "kid_subsets", "bootstrap_resamples", "fid_resamples"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"protocol {self.name}: {key} {getattr(self, key)!r}, expected >= 1")
        if "seg" in self.metrics and self.segmenter is None:
            raise ConfigError(f"protocol {self.name}: the seg metric needs a segmenter section")
        object.__setattr__(self, "manifest", _FrozenDict(sorted(self.manifest.items())))
        object.__setattr__(self, "weights", _FrozenDict(sorted(self.weights.items())))
        object.__setattr__(self, "metrics", tuple(self.metrics))

    # ----------------------------------------------------------------- the pinned part
    def pinned(self) -> dict[str, Any]:
        """Everything the fingerprint covers, as plain JSON values (no name, version or description)."""
        seg = None
        if self.segmenter is not None:
            seg = {"sha256": self.segmenter.sha256, "classes": list(self.segmenter.classes),
                   "ignore_index": self.segmenter.ignore_index, "recipe": _thawed(self.segmenter.recipe)}
        return {
            "data": {"split": self.split, "manifest": dict(self.manifest), "layout": self.layout,
                     "direction": self.direction, "input": self.input, "palette": self.palette,
                     "palette_max_distance": float(self.palette_max_distance)},
            "resolution": list(self.resolution),
            "resize": {"photo": {"kernel": self.resize_photo.kernel, "library": self.resize_photo.library},
                       "label": {"kernel": self.resize_label.kernel, "library": self.resize_label.library}},
            "metrics": list(self.metrics),
            "weights": dict(self.weights),
            "kid": {"subset_size": self.kid_subset_size, "subsets": self.kid_subsets},
            "bootstrap": {"resamples": self.bootstrap_resamples, "fid_resamples": self.fid_resamples},
            "segmenter": seg,
            "seed": self.seed,
        }

    @property
    def fingerprint(self) -> str:
        """sha256 (hex) of :func:`canonical_json` of :meth:`pinned`."""
        return hashlib.sha256(canonical_json(self.pinned()).encode("ascii")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The YAML document (``protocol_from_dict(p.to_dict()) == p``)."""
        return {"name": self.name, "version": self.version, "description": self.description} | self.pinned()

    def card_entry(self) -> dict[str, Any]:
        """What a result card records: ``{"name", "version", "fingerprint"}``."""
        return {"name": self.name, "version": self.version, "fingerprint": self.fingerprint}

    # ----------------------------------------------------------------- how to read the data
    def data_overrides(self) -> dict[str, Any]:
        """``data:`` settings that read the split as the protocol says, at its resolution, without
        augmentation (a square resolution: ``resize_and_crop`` to it; otherwise read at full size
        and resized by the evaluation)."""
        w, h = self.resolution
        d: dict[str, Any] = {"layout": self.layout, "direction": self.direction, "flip": False}
        if w == h:
            d |= {"preprocess": "resize_and_crop", "load_size": w, "crop_size": w}
        else:
            d |= {"preprocess": "none"}
        return d

    def segmenter_overrides(self, data: str | os.PathLike) -> list[str]:
        """``--set`` style overrides of the segmenter's config that make its recipe (see
        :class:`SegmenterPin`): deterministic on the CPU, no worker processes."""
        if self.segmenter is None:
            raise ConfigError(f"protocol {self.name} has no segmenter")
        r = dict(self.segmenter.recipe)
        size = int(r.get("size", self.resolution[0]))
        steps = int(r.get("steps", 1000))
        out = [
            f"data.path={data}", f"data.layout={self.layout}", f"data.direction={self.direction}",
            f"data.train_split={r.get('split', 'train')}", "data.preprocess=resize_and_crop",
            f"data.load_size={int(r.get('load_size', size))}", f"data.crop_size={size}",
            f"data.flip={str(bool(r.get('flip', True))).lower()}",
            f"train.max_steps={steps}", f"train.batch_size={int(r.get('batch_size', 4))}",
            f"train.lr={float(r.get('lr', 2e-4))}", f"train.lr_policy={r.get('lr_policy', 'cosine')}",
            "train.deterministic=true", "train.num_workers=0", "train.device=cpu",
            f"train.save_every={steps}", "train.save_epoch_every=0", f"train.sample_every={steps}",
            "train.val_every=0", f"seed={self.seed}",
            f"model.net={r.get('net', 'unet')}", f"model.ngf={int(r.get('ngf', 32))}",
            f"model.num_downs={int(r.get('num_downs', 7))}", f"model.norm={r.get('norm', 'instance')}",
            f"model.n_classes={len(self.segmenter.classes)}", f"model.ignore_index={self.segmenter.ignore_index}",
        ]
        if self.palette:
            out.append(f"model.palette={r.get('palette', self.palette)}")
        return out


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _need(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ConfigError(f"{where}: missing {key!r}")
    return d[key]


def protocol_from_dict(d: Mapping[str, Any], where: str = "protocol") -> Protocol:
    """A protocol from its YAML document (see ``protocols/*.yaml``); ConfigError naming ``where``
    and the key for a missing or malformed item."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__}")
    known = {"name", "version", "description", "data", "resolution", "resize", "metrics", "weights", "kid",
             "bootstrap", "segmenter", "seed"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    data = _need(d, "data", where)
    resize = _need(d, "resize", where)
    kid = _need(d, "kid", where)
    boot = d.get("bootstrap") or {}
    seg = d.get("segmenter")
    res = _need(d, "resolution", where)
    if isinstance(res, int):
        res = [res, res]
    try:
        return Protocol(
            name=str(_need(d, "name", where)),
            version=_need(d, "version", where),
            description=str(d.get("description") or "").strip(),
            split=str(_need(data, "split", f"{where} data")),
            manifest={str(k): str(v) for k, v in (_need(data, "manifest", f"{where} data") or {}).items()},
            layout=str(_need(data, "layout", f"{where} data")),
            direction=str(_need(data, "direction", f"{where} data")),
            input=str(_need(data, "input", f"{where} data")),
            palette=str(data.get("palette") or ""),
            resolution=tuple(res),
            resize_photo=ResizeRule(**_need(resize, "photo", f"{where} resize")),
            resize_label=ResizeRule(**_need(resize, "label", f"{where} resize")),
            metrics=tuple(str(m) for m in _need(d, "metrics", where)),
            weights={str(k): str(v) for k, v in (d.get("weights") or {}).items()},
            kid_subset_size=int(_need(kid, "subset_size", f"{where} kid")),
            kid_subsets=int(_need(kid, "subsets", f"{where} kid")),
            bootstrap_resamples=int(boot.get("resamples", 1000)),
            fid_resamples=int(boot.get("fid_resamples", 20)),
            segmenter=None if seg is None else SegmenterPin(
                sha256=seg.get("sha256"), classes=tuple(_need(seg, "classes", f"{where} segmenter")),
                ignore_index=int(seg.get("ignore_index", -1)), recipe=dict(seg.get("recipe") or {})),
            seed=int(d.get("seed", 0)),
            palette_max_distance=float(data.get("palette_max_distance", 50.0)),
        )
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def builtin_names() -> list[str]:
    """The built-in protocols' names."""
    return sorted(BUILTIN)


def load_protocol(name_or_path: str | os.PathLike) -> Protocol:
    """A built-in protocol by name, or a protocol YAML file by path (ConfigError otherwise)."""
    spec = str(name_or_path)
    path = BUILTIN.get(spec)
    if path is None:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(f"protocol {spec!r}: neither a built-in ({', '.join(builtin_names())}) nor a YAML file")
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: unreadable protocol file ({str(exc).splitlines()[0]})") from None
    return protocol_from_dict(doc, where=str(path))


def save_protocol(protocol: Protocol, path: str | os.PathLike) -> Path:
    """Write ``protocol`` as YAML (atomically); :func:`load_protocol` reads back an equal one."""
    text = yaml.safe_dump(protocol.to_dict(), sort_keys=False, allow_unicode=False, width=120)
    return atomic_write_text(Path(path), text)


# --------------------------------------------------------------------------- manifests


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def manifest_of_files(files: Sequence[str | os.PathLike]) -> dict[str, str]:
    """File name -> sha256 for ``files`` (names must be unique)."""
    out: dict[str, str] = {}
    for f in files:
        name = Path(f).name
        if name in out:
            raise DataError(f"{f}: two files named {name}; a manifest keys files by name")
        out[name] = file_sha256(f)
    return out


@dataclass(frozen=True)
class ManifestProblem:
    """How a split's files differ from a protocol's manifest."""

    missing: tuple[str, ...]
    changed: tuple[str, ...]
    extra: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed or self.extra)

    def message(self, where: str, protocol: str) -> str:
        """One line naming the first file of each kind and the counts."""
        parts = []
        if self.changed:
            parts.append(f"{self.changed[0]} has another sha256 than protocol {protocol} pins"
                         + (f" (and {len(self.changed) - 1} more files differ)" if len(self.changed) > 1 else ""))
        if self.missing:
            parts.append(f"{self.missing[0]} is missing" + (f" ({len(self.missing)} files)" if len(self.missing) > 1
                                                            else ""))
        if self.extra:
            parts.append(f"{self.extra[0]} is not in the manifest" + (f" ({len(self.extra)} such files)"
                                                                     if len(self.extra) > 1 else ""))
        return f"{where}: " + "; ".join(parts)


def check_manifest(files: Sequence[str | os.PathLike], manifest: Mapping[str, str]) -> ManifestProblem:
    """Compare the split's ``files`` with ``manifest`` (name -> sha256): files the manifest lists
    but the split lacks, files whose bytes differ, files the split has but the manifest lacks."""
    have = {Path(f).name: Path(f) for f in files}
    missing = tuple(n for n in manifest if n not in have)
    changed = tuple(n for n in manifest if n in have and file_sha256(have[n]) != manifest[n])
    extra = tuple(sorted(n for n in have if n not in manifest))
    return ManifestProblem(missing, changed, extra)

