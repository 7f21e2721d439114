"""What the training inputs looked like, and whether an input given at translate time fits.

A model trained on colour-coded label maps reads a 1-channel id map (ids 0..8) as near-black grey
and writes nonsense without a word. At the start of training :func:`profile_inputs` samples up to
:data:`MAX_ITEMS` training inputs (spread evenly over the split, no randomness, on the CPU) as the
files decode, before any augmentation or one-hot encoding, and records an :class:`InputProfile`:
the channel count, per-channel statistics in [0, 1] units, and, when the inputs are drawn from a
few colours, that palette. The checkpoint keeps it as ``input_profile.json``; the Translator checks
each input with :func:`check_input` and warns (or, strict, refuses) when it is clearly of another
kind.

The checks have margins so that normal inputs never raise an alarm (see the constants): a photo
model given a greyscale or dark photo is quiet; a colour-label model given a 1-channel id map, or
colours far from every training colour on a large share of pixels, is not. JPEG-compressed label
maps (facades) decode to thousands of colours: such a run records no palette (its kind is
``image``), and only the channel, range and id-map checks apply to it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from pairgan.data.datasets import PairedImageDataset, SampleFiles, on_disk
from pairgan.data.io import to_unit_float
from pairgan.data.labels import LabelMapDataset
from pairgan.data.shards import ShardDataset

__all__ = [
    "ChannelStats",
    "InputProfile",
    "check_input",
    "colour_channels",
    "describe_mismatch",
    "profile_arrays",
    "profile_inputs",
    "raw_input",
]

log = logging.getLogger(__name__)

#: The most training inputs a profile reads (spread evenly over the split).
MAX_ITEMS = 64
#: Pixels per image used for statistics (a regular grid of them); bounds time and memory.
PIXELS_PER_IMAGE = 16384
#: Inputs drawn from at most this many colours have a palette.
MAX_PALETTE = 64
#: The :data:`MAX_PALETTE` most frequent colours that recur in two or more sampled items must
#: cover this share of the sampled pixels for the inputs to count as drawn from a palette
#: (anti-aliased or resized edges may add stray colours).
PALETTE_MIN_COVERAGE = 0.98
#: A pixel fits the palette when each channel lies within this distance (in [0, 1] units, about
#: 25 of 255 levels: JPEG noise and soft edges stay inside) of one training colour.
PALETTE_TOLERANCE = 0.1
#: An input misfits the palette when more than this share of its pixels fit no training colour.
PALETTE_MISFIT_SHARE = 0.2
#: "Too dark": every input value is below this fraction of the training inputs' 99th percentile
#: (e.g. ids 0..8 read as 0..0.03 against training values up to 1); checked only when the
#: training inputs reach at least :data:`RANGE_MIN_SPAN` above 0. "Too bright" mirrors it.
RANGE_FRACTION = 0.1
RANGE_MIN_SPAN = 0.5
#: "Out of scale": the input's 99th percentile exceeds the training maximum by this much (a photo
#: given to a model trained on small label ids).
RANGE_EXCESS = 0.5
#: A 1-channel input with at most this many distinct values, all at most ``ID_MAP_MAX / 255``, looks
#: like a label-id map.
ID_MAP_MAX = 64

KIND_IMAGE = "image"
KIND_LABEL_IDS = "label ids"
KIND_COLOUR_LABELS = "colour labels"


@dataclass
class ChannelStats:
    """One channel's statistics over the sampled pixels, in [0, 1] units."""

    mean: float
    std: float
    min: float
    max: float
    p1: float
    p99: float


@dataclass
class InputProfile:
    """The training inputs' kind and statistics (``input_profile.json`` in a checkpoint)."""

    #: ``image``, ``label ids`` (1 channel) or ``colour labels`` (colour-coded label maps).
    kind: str
    #: Colour channels of the files (alpha not counted): 1 or 3.
    channels: int
    stats: list[ChannelStats]
    #: How many distinct colours the sampled pixels hold (counted at 8 bits per channel).
    distinct_colours: int
    #: The training colours (0..255 per channel, sorted) when the inputs are drawn from at most
    #: :data:`MAX_PALETTE` shared by the items, else None; ``palette_coverage`` is the share of
    #: pixels they cover.
    palette: list[list[int]] | None
    palette_coverage: float | None
    #: Items and pixels sampled.
    items: int
    pixels: int
    #: Files were decoded to palette indices (1-channel label ids), as translate must decode them.
    palette_indices: bool = False
    #: The run's ``data.input_kind`` (what the config said, beside what the data showed).
    config_kind: str = "image"
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """A short phrase for messages: what the model was trained on."""
        if self.palette is not None:
            return f"{self.channels}-channel {self.kind} with {len(self.palette)} colours"
        lo = min(s.p1 for s in self.stats)
        hi = max(s.p99 for s in self.stats)
        return f"{self.channels}-channel {self.kind}s with values {lo:.2f}..{hi:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputProfile:
        """The profile from :meth:`to_dict`'s form; a malformed one raises ValueError."""
        if not isinstance(d, dict):
            raise ValueError("expected a JSON object")
        try:
            stats = [ChannelStats(**{k: float(s[k]) for k in ("mean", "std", "min", "max", "p1", "p99")})
                     for s in d["stats"]]
            palette = d.get("palette")
            profile = cls(
                kind=str(d["kind"]), channels=int(d["channels"]), stats=stats,
                distinct_colours=int(d["distinct_colours"]),
                palette=[[int(v) for v in c] for c in palette] if palette is not None else None,
                palette_coverage=float(d["palette_coverage"]) if d.get("palette_coverage") is not None else None,
                items=int(d["items"]), pixels=int(d["pixels"]), palette_indices=bool(d.get("palette_indices", False)),
                config_kind=str(d.get("config_kind", "image")), version=int(d.get("version", 1)),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an input profile ({type(exc).__name__}: {exc})") from None
        if profile.channels < 1 or len(profile.stats) != profile.channels:
            raise ValueError(f"not an input profile ({len(profile.stats)} channel statistics for "
                             f"{profile.channels} channels)")
        return profile


# --------------------------------------------------------------------------- computing


def colour_channels(arr: np.ndarray) -> np.ndarray:
    """``arr`` (HxW or HxWxC) as HxWx1 or HxWx3: alpha dropped (2 -> 1, 4 -> 3 channels)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] in (2, 4):
        arr = arr[..., : arr.shape[2] - 1]
    return arr


def _grid(arr: np.ndarray, pixels: int = PIXELS_PER_IMAGE) -> np.ndarray:
    """At most about ``pixels`` pixels of ``arr`` on a regular grid, as an N x C array."""
    h, w = arr.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / pixels)))
    return arr[::step, ::step].reshape(-1, arr.shape[2])


def _codes(pixels: np.ndarray) -> np.ndarray:
    """N x C pixels in [0, 1] -> one int64 code per pixel at 8 bits per channel."""
    q = np.rint(pixels * 255).astype(np.int64)
    code = np.zeros(len(q), np.int64)
    for c in range(q.shape[1]):
        code = (code << 8) | q[:, c]
    return code


def _decode(codes: np.ndarray, channels: int) -> np.ndarray:
    out = np.stack([(codes >> (8 * (channels - 1 - c))) & 255 for c in range(channels)], axis=1)
    return out.astype(np.int64)


def _unit(arr: np.ndarray) -> np.ndarray:
    """Decoded pixels -> float32 HxWx(1|3) in [0, 1] (integer ids scaled like 8-bit values)."""
    return colour_channels(to_unit_float(arr, label=True))


def profile_arrays(arrays: Sequence[np.ndarray], *, palette_indices: bool = False, config_kind: str = "image",
                   labels: bool = False) -> InputProfile:
    """The profile of decoded inputs ``arrays`` (native dtype, HxW or HxWxC); ``labels``: they are
    label maps whatever their colours (the labels layout)."""
    units = [_unit(a) for a in arrays]
    if not units:
        raise ValueError("no inputs to profile")
    counts = [u.shape[2] for u in units]
    channels = max(set(counts), key=counts.count)
    # A few grey files among colour ones (or the reverse) are counted in the majority's channels.
    grids = [_grid(u if u.shape[2] == channels else
                   (np.repeat(u, 3, axis=2) if channels == 3 else u.mean(axis=2, keepdims=True)))
             for u in units]
    pixels = np.concatenate(grids)
    stats = [ChannelStats(mean=float(ch.mean()), std=float(ch.std()), min=float(ch.min()), max=float(ch.max()),
                          p1=float(np.percentile(ch, 1)), p99=float(np.percentile(ch, 99)))
             for ch in pixels.T]
    values, freq = np.unique(_codes(pixels), return_counts=True)
    # A palette is colours the inputs share: a colour seen in one item only (random colours per
    # image) is no evidence of one, so only colours recurring in two or more items count.
    items_with = np.zeros(len(values), np.int64)
    for g in grids:
        items_with[np.searchsorted(values, np.unique(_codes(g)))] += 1
    shared = np.flatnonzero(items_with >= 2)
    order = shared[np.argsort(-freq[shared], kind="stable")][:MAX_PALETTE]
    coverage = float(freq[order].sum() / freq.sum())
    palette = None
    if len(units) >= 2 and coverage >= PALETTE_MIN_COVERAGE:
        palette = sorted(_decode(values[order], channels).tolist())
    if palette is not None or labels or config_kind == "label":
        kind = KIND_LABEL_IDS if channels == 1 else KIND_COLOUR_LABELS
    else:
        kind = KIND_IMAGE
    return InputProfile(
        kind=kind, channels=channels, stats=stats, distinct_colours=len(values), palette=palette,
        palette_coverage=round(coverage, 4) if palette is not None else None, items=len(units),
        pixels=len(pixels), palette_indices=palette_indices, config_kind=config_kind,
    )


def raw_input(dataset: Any, index: int) -> tuple[np.ndarray, bool] | None:
    """Item ``index``'s input as decoded from its file (no augmentation, no one-hot) and whether
    it was decoded to palette indices; None for data sets whose input is not one image (poses)."""
    if not isinstance(dataset, PairedImageDataset):
        return None
    return raw_input_of(dataset, on_disk(dataset.sample_files(index)))


def raw_input_of(dataset: Any, files: SampleFiles) -> tuple[np.ndarray, bool] | None:
    """:func:`raw_input` of a sample's files (on disk or from a shard) read by ``dataset``'s layout."""
    if isinstance(dataset, LabelMapDataset):
        return (files["label"] if "label" in files else files["pair"]).read(palette_indices=True), True
    if isinstance(dataset, PairedImageDataset):
        cfg = dataset.cfg
        # The layouts' own reader: the aligned halves or the A/B files, decoded as training reads them.
        a, b, _, _ = dataset._read_pair(files)
        decoded_ids = dataset.layout == "folders" and cfg.input_kind == "label" and cfg.input_nc == 1
        return (b if cfg.direction == "BtoA" else a), decoded_ids
    return None


def profile_inputs(dataset: Any, *, max_items: int = MAX_ITEMS) -> InputProfile | None:
    """The :class:`InputProfile` of up to ``max_items`` inputs of ``dataset`` (evenly spread, the
    same items every time; of WebDataset shards, the first ones in stored order); None when the
    data set's inputs are not single images."""
    n = len(dataset)
    if n == 0:
        return None
    if isinstance(dataset, ShardDataset):
        raws = (raw_input_of(dataset.reader, files) for files in dataset.head_files(max_items))
        cfg = dataset.cfg
        labels = isinstance(dataset.reader, LabelMapDataset)
    else:
        indices = sorted({int(i) for i in np.linspace(0, n - 1, min(n, max_items))})
        raws = (raw_input(dataset, i) for i in indices)
        cfg = getattr(dataset, "cfg", None)
        labels = isinstance(dataset, LabelMapDataset)
    arrays, decoded_ids = [], False
    for raw in raws:
        if raw is None:
            log.debug("%s: no input profile (inputs are not single images)", type(dataset).__name__)
            return None
        arrays.append(raw[0])
        decoded_ids = raw[1]
    return profile_arrays(arrays, palette_indices=decoded_ids,
                          config_kind=getattr(cfg, "input_kind", "image"), labels=labels)


# --------------------------------------------------------------------------- checking


def check_input(profile: InputProfile, array: np.ndarray) -> list[str]:
    """Why the decoded input ``array`` (native dtype, HxW or HxWxC) is clearly of another kind than
    the training inputs of ``profile``: one phrase per problem (what was seen, what the model was
    trained on), empty when it fits."""
    unit = _unit(array)
    c = unit.shape[2]
    px = _grid(unit, 65536)
    problems: list[str] = []
    trained = profile.summary()
    values = None
    if c == 1:
        values = np.unique(np.rint(px * 255).astype(np.int64))
    if c != profile.channels and profile.kind != KIND_IMAGE:
        seen = (f"a 1-channel image with {len(values)} values in {values.min()}..{values.max()} (a label-id map?)"
                if values is not None and len(values) <= ID_MAP_MAX else f"a {c}-channel image")
        problems.append(f"{seen}, but the model was trained on {trained}")
    elif (c == 1 and profile.kind != KIND_LABEL_IDS and values is not None and len(values) <= ID_MAP_MAX
          and values.max() <= ID_MAP_MAX):
        problems.append(f"a 1-channel image with {len(values)} values in {values.min()}..{values.max()} "
                        f"(a label-id map?), but the model was trained on {trained}")
    lo = min(s.p1 for s in profile.stats)
    hi = max(s.p99 for s in profile.stats)
    top = max(s.max for s in profile.stats)
    seen_max, seen_min, seen_p99 = float(px.max()), float(px.min()), float(np.percentile(px, 99))
    if not problems:
        if hi >= RANGE_MIN_SPAN and seen_max < RANGE_FRACTION * hi:
            problems.append(f"every value is below {seen_max:.3f} of full scale (near-black), but the training "
                            f"inputs reached {hi:.2f} ({trained})")
        elif lo <= 1 - RANGE_MIN_SPAN and seen_min > 1 - RANGE_FRACTION * (1 - lo):
            problems.append(f"every value is above {seen_min:.3f} of full scale (near-white), but the training "
                            f"inputs went down to {lo:.2f} ({trained})")
        elif seen_p99 > top + RANGE_EXCESS:
            problems.append(f"values up to {seen_p99:.2f} of full scale, but the training inputs stayed at or "
                            f"below {top:.2f} ({trained})")
    if not problems and profile.palette is not None and c == profile.channels:
        palette = np.asarray(profile.palette, np.float32) / 255.0
        share = _misfit_share(px, palette)
        if share > PALETTE_MISFIT_SHARE:
            problems.append(f"{share:.0%} of its pixels are far from every one of the {len(palette)} training "
                            f"colours (the model was trained on {trained})")
    return problems


def _misfit_share(pixels: np.ndarray, palette: np.ndarray) -> float:
    """The share of ``pixels`` (N x C) with no palette colour within :data:`PALETTE_TOLERANCE` in
    every channel."""
    fits = np.zeros(len(pixels), bool)
    for colour in palette:  # K <= 64 passes over N <= 65536 pixels
        fits |= (np.abs(pixels - colour) <= PALETTE_TOLERANCE + 1e-6).all(axis=1)
    return float(1.0 - fits.mean()) if len(pixels) else 0.0


def describe_mismatch(path: str, problems: Sequence[str]) -> str | None:
    """One line for an input with ``problems`` (None without)."""
    if not problems:
        return None
    return f"{path}: {'; '.join(problems)}"
