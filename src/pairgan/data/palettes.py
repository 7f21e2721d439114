"""Colour palettes of colour-coded label maps: the built-in named ones and the decoding rules.

A :class:`Palette` holds two tables:

* ``colors`` (``K x 3``): the display colour of each class id ``0..K-1`` (colour ``i`` is class
  ``i``) — what galleries, the server and exported models show;
* ``decode_colors`` / ``decode_ids``: the colours a label image may contain and the id each one
  decodes to. For a palette file both are the file's colours; a built-in palette may list more
  colours than classes (``cityscapes`` decodes the colours of the 16 non-training Cityscapes
  classes to its void id) and several colours may share an id.

Two decoding rules (``data.palette_match``):

* ``exact``: every pixel must be one of the decode colours (PNG label maps);
* ``nearest``: each pixel takes the id of the nearest decode colour (Euclidean distance in RGB on
  the 0..255 scale); a pixel farther than ``data.palette_max_distance`` from every colour gets
  the void id. This is for label maps that went through JPEG or a resize: flat regions carry
  compression noise and region borders are blended colours.

Measured on the pix2pix Cityscapes set (60 random training label maps, 3.9 M pixels): pixels
inside flat regions (5x5 neighbourhood of one nearest colour, 75% of pixels) lie within 10 of
their colour for 96%, within 30 for 99.9% and within 50 for 99.98%: that is the JPEG noise.
Border pixels (25%) spread evenly from 0 to 85 (median 21, 90% within 50): blends of two
classes. The default maximum distance, 50, keeps 97.5% of all pixels and voids the strongest
blends only.

Built-in palettes (:data:`BUILTIN_PALETTES`; ``data.palette: NAME``):

* ``cityscapes``: the 19 Cityscapes training classes (trainIds 0..18) with their official
  colours, plus ``void`` as id 19 (black). Black, every non-training class colour and every far
  pixel decode to 19: ``data.label_nc=20``.
* ``cityscapes-35``: the 34 labelIds 0..33 with their official colours (license plate, labelId
  -1, is left out; its colour is car's). Colours shared by several labelIds decode to the
  lowest of them: black (ids 0-4: unlabeled, ego vehicle, rectification border, out of roi,
  static) decodes to 0 ``unlabeled``, (153, 153, 153) (pole 17, polegroup 18) to 17 ``pole``.
  Far pixels decode to 0 ``unlabeled`` (the void id). ``data.label_nc=34`` (or the pix2pixHD
  presets' 35).

``data.label_encoding: cityscapes-train`` (:func:`encode_label_ids`) reads Cityscapes labelIds
(1-channel maps, or colours of ``cityscapes-35``) as the ``cityscapes`` palette's 19 classes +
void, through the same class table (:data:`CITYSCAPES_LABELIDS`): the CRN reference's input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BUILTIN_PALETTES",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELIDS",
    "CITYSCAPES_TRAIN_VOID",
    "DEFAULT_MAX_DISTANCE",
    "LABEL_ENCODINGS",
    "MATCH_MODES",
    "Palette",
    "builtin_palette",
    "cityscapes_train_ids",
    "encode_label_ids",
    "nearest_ids",
    "palette_from_colors",
]

#: The decoding rules of ``data.palette_match``.
MATCH_MODES: tuple[str, ...] = ("exact", "nearest")
#: ``data.palette_max_distance``'s default (see the module docstring for the measurement).
DEFAULT_MAX_DISTANCE = 50.0


@dataclass(frozen=True)
class Palette:
    """A label palette: display colours per id, the colour -> id decode table, class names and
    the void id far pixels decode to (None: the palette has none)."""

    name: str
    colors: np.ndarray
    decode_colors: np.ndarray
    decode_ids: np.ndarray
    class_names: tuple[str, ...] | None = None
    void_id: int | None = None
    #: Ids of countable classes (instances derived for painted label maps), None: unknown.
    thing_ids: tuple[int, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.colors)


def palette_from_colors(colors: np.ndarray | Sequence[Sequence[int]], name: str = "",
                        class_names: Sequence[str] | None = None, void_id: int | None = None) -> Palette:
    """A palette whose decode table is its display colours (colour ``i`` is class ``i``): palette
    files and arrays."""
    pal = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    return Palette(name=name, colors=pal, decode_colors=pal, decode_ids=np.arange(len(pal), dtype=np.int64),
                   class_names=tuple(class_names) if class_names is not None else None, void_id=void_id)


#: (labelId, name, colour, trainId or None) of the Cityscapes classes (license plate left out).
CITYSCAPES_LABELIDS: tuple[tuple[int, str, tuple[int, int, int], int | None], ...] = (
    (0, "unlabeled", (0, 0, 0), None),
    (1, "ego vehicle", (0, 0, 0), None),
    (2, "rectification border", (0, 0, 0), None),
    (3, "out of roi", (0, 0, 0), None),
    (4, "static", (0, 0, 0), None),
    (5, "dynamic", (111, 74, 0), None),
    (6, "ground", (81, 0, 81), None),
    (7, "road", (128, 64, 128), 0),
    (8, "sidewalk", (244, 35, 232), 1),
    (9, "parking", (250, 170, 160), None),
    (10, "rail track", (230, 150, 140), None),
    (11, "building", (70, 70, 70), 2),
    (12, "wall", (102, 102, 156), 3),
    (13, "fence", (190, 153, 153), 4),
    (14, "guard rail", (180, 165, 180), None),
    (15, "bridge", (150, 100, 100), None),
    (16, "tunnel", (150, 120, 90), None),
    (17, "pole", (153, 153, 153), 5),
    (18, "polegroup", (153, 153, 153), None),
    (19, "traffic light", (250, 170, 30), 6),
    (20, "traffic sign", (220, 220, 0), 7),
    (21, "vegetation", (107, 142, 35), 8),
    (22, "terrain", (152, 251, 152), 9),
    (23, "sky", (70, 130, 180), 10),
    (24, "person", (220, 20, 60), 11),
    (25, "rider", (255, 0, 0), 12),
    (26, "car", (0, 0, 142), 13),
    (27, "truck", (0, 0, 70), 14),
    (28, "bus", (0, 60, 100), 15),
    (29, "caravan", (0, 0, 90), None),
    (30, "trailer", (0, 0, 110), None),
    (31, "train", (0, 80, 100), 16),
    (32, "motorcycle", (0, 0, 230), 17),
    (33, "bicycle", (119, 11, 32), 18),
)

_THINGS = frozenset({"person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle",
                     "bicycle"})
_TRAIN = sorted((t, name, colour) for _, name, colour, t in CITYSCAPES_LABELIDS if t is not None)
#: The 19 Cityscapes training classes (trainIds 0..18) and ``void`` (19).
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(name for _, name, _ in _TRAIN) + ("void",)


def _cityscapes19() -> Palette:
    void = len(_TRAIN)
    colors = np.array([c for _, _, c in _TRAIN] + [(0, 0, 0)], dtype=np.uint8)
    # Every colour of a non-training class decodes to void, unless a training class has it
    # (polegroup's is pole's): a nearest match of those pixels would pick an unrelated class.
    train_colours = {c for _, _, c in _TRAIN}
    extra = sorted({c for _, _, c, t in CITYSCAPES_LABELIDS if t is None and c not in train_colours})
    decode = np.concatenate([colors, np.array(extra, dtype=np.uint8).reshape(-1, 3)])
    ids = np.concatenate([np.arange(void + 1), np.full(len(extra), void)]).astype(np.int64)
    things = tuple(i for i, name in enumerate(CITYSCAPES_CLASSES) if name in _THINGS)
    return Palette("cityscapes", colors, decode, ids, CITYSCAPES_CLASSES, void, things)


def _cityscapes35() -> Palette:
    colors = np.array([c for _, _, c, _ in CITYSCAPES_LABELIDS], dtype=np.uint8)
    names = tuple(name for _, name, _, _ in CITYSCAPES_LABELIDS)
    first: dict[tuple[int, int, int], int] = {}
    for i, _, c, _ in CITYSCAPES_LABELIDS:
        first.setdefault(c, i)  # a shared colour decodes to the lowest labelId that has it
    decode = np.array(list(first), dtype=np.uint8)
    ids = np.array(list(first.values()), dtype=np.int64)
    things = tuple(i for i, name in enumerate(names) if name in _THINGS)
    return Palette("cityscapes-35", colors, decode, ids, names, 0, things)


#: ``data.label_encoding`` choices: ids as stored, or Cityscapes labelIds -> trainIds + void.
LABEL_ENCODINGS: tuple[str, ...] = ("ids", "cityscapes-train")
#: The void class of the 19-class Cityscapes encoding (``cityscapes`` palette, ``cityscapes-train``).
CITYSCAPES_TRAIN_VOID = len(_TRAIN)
#: labelId -> trainId (void for the non-training classes), from :data:`CITYSCAPES_LABELIDS`.
_LABELID_TO_TRAIN = np.array([CITYSCAPES_TRAIN_VOID if t is None else t for _, _, _, t in CITYSCAPES_LABELIDS],
                             dtype=np.int64)


def cityscapes_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Cityscapes labelIds -> the 19 training classes (trainIds 0..18) + void (19), int64.

    The table is :data:`CITYSCAPES_LABELIDS`' trainId column: every non-training class, every id
    outside 0..33 (license plate -1, anything larger) becomes void, the CRN reference's 20th
    channel (``1 - sum`` of its 19 class channels)."""
    ids = np.asarray(label_ids).astype(np.int64, copy=False)
    known = (ids >= 0) & (ids < len(_LABELID_TO_TRAIN))
    return np.where(known, _LABELID_TO_TRAIN[np.where(known, ids, 0)], CITYSCAPES_TRAIN_VOID)


def encode_label_ids(ids: np.ndarray, encoding: str, palette_name: str = "") -> np.ndarray:
    """Decoded label ids as ``data.label_encoding`` wants them: ``ids`` unchanged;
    ``cityscapes-train``: labelIds -> trainIds + void (:func:`cityscapes_train_ids`), except ids
    decoded through the built-in ``cityscapes`` palette (``palette_name``), which are trainIds
    + void already."""
    if encoding == "ids" or (encoding == "cityscapes-train" and palette_name == "cityscapes"):
        return ids
    if encoding == "cityscapes-train":
        return cityscapes_train_ids(ids)
    raise ValueError(f"label encoding {encoding!r}, expected one of {', '.join(LABEL_ENCODINGS)}")


#: The built-in palettes by name (``data.palette: NAME``).
BUILTIN_PALETTES: dict[str, Palette] = {p.name: p for p in (_cityscapes19(), _cityscapes35())}


def builtin_palette(name: str) -> Palette | None:
    """The built-in palette called ``name`` (case-insensitive), or None."""
    return BUILTIN_PALETTES.get(str(name).strip().lower())


_UNKNOWN = 0xFFFF
_FAR = 0x8000
#: Per (decode table, max distance, void id): a 2^24-entry uint16 table over all 8-bit colours,
#: filled on first sight of a colour (id, bit 15 = far; 0xFFFF = not computed yet).
_LUTS: dict[tuple[bytes, bytes, float, int], np.ndarray] = {}


def _nearest_exact(keys: np.ndarray, palette: Palette, max_distance: float, void_id: int) -> np.ndarray:
    """The table entries of colours ``keys`` (``r << 16 | g << 8 | b``): the nearest colour's id,
    bit 15 set (and the id ``void_id``) beyond ``max_distance``."""
    x = np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], 1).astype(np.float32)
    p = palette.decode_colors.astype(np.float32)
    # |x|^2 - 2 x.p + |p|^2 in float32 is exact for 8-bit colours: every term is an integer < 2^24.
    d2 = (x * x).sum(1, keepdims=True) - 2.0 * (x @ p.T) + (p * p).sum(1)[None]
    nearest = d2.argmin(1)
    far = d2[np.arange(len(x)), nearest] > float(max_distance) ** 2
    return np.where(far, _FAR | int(void_id), palette.decode_ids[nearest]).astype(np.uint16)


def nearest_ids(rgb: np.ndarray, palette: Palette, max_distance: float,
                void_id: int) -> tuple[np.ndarray, np.ndarray]:
    """``H x W x 3`` uint8 colours -> (int64 ``H x W`` ids, bool ``H x W`` far mask): each pixel
    takes the id of its nearest decode colour (Euclidean RGB, 0..255; ties go to the colour
    listed first), or ``void_id`` when that colour is farther than ``max_distance``.

    Each distinct colour is computed once per process and kept in a lookup table over all 2^24
    colours (32 MB per palette and distance), so a 256x256 JPEG label map costs one table gather
    (about a millisecond) once its colours have been seen.
    """
    if not 0 <= int(void_id) < _FAR or int(palette.decode_ids.max()) >= _FAR:
        raise ValueError(f"ids up to {int(palette.decode_ids.max())} and void id {void_id}: expected ids < {_FAR}")
    key = (palette.decode_colors.tobytes(), palette.decode_ids.tobytes(), float(max_distance), int(void_id))
    lut = _LUTS.get(key)
    if lut is None:
        if len(_LUTS) >= 4:  # bounded memory: a few decodings per process at most
            _LUTS.clear()
        lut = _LUTS.setdefault(key, np.full(1 << 24, _UNKNOWN, dtype=np.uint16))
    c = rgb.astype(np.int32)
    keys = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    v = lut[keys]
    missing = v == _UNKNOWN
    if missing.any():
        new = np.unique(keys[missing])
        # Threads may fill the same entries at once: they write the same values.
        lut[new] = _nearest_exact(new, palette, max_distance, void_id)
        v = lut[keys]
    return (v & (_FAR - 1)).astype(np.int64), (v & _FAR) != 0
