"""Pose pairs: the pose-transfer layout (PG2, Deformable GAN, PATN), keypoints and heat maps.

Layout (``ROOT``)::

    images/NAME.png          the person images (any size; a pair's two images share one size)
    annotations.csv          name:keypoints_y:keypoints_x      (header line)
                             NAME.png: [y0, ..., y17]: [x0, ..., x17]
                             18 keypoints in COCO/OpenPose order, image pixel coordinates, -1 = missing
    pairs.csv                from,to                           (header line)
                             SOURCE.png,TARGET.png             two images of one person

Splits. The real sets (``deepfashion_pose``, ``market1501_pose``) have no split folders. A split is
read from its own pairs file when one exists — ``pairs-{split}.csv``, ``pairs_{split}.csv``,
``{split}_pairs.csv``, ``{split}-pairs.csv`` or the pose-gan style ``*-pairs-{split}.csv``
(``fashion-pairs-test.csv``), in that order. When the folder has no split files at all,
``pairs.csv`` is split by a deterministic hold-out (see :func:`holdout_components`): the pairs
form a graph on the images, each connected component (a person, since pairs are two images of
one person) goes to the held-out part when a CRC32 of its first image name falls in the lowest
10 % of hash values, so no image is both trained on and held out and the split does not depend
on file order. Then ``test`` and ``val`` both name the held-out pairs and ``train`` the rest.
``all`` is always every pair of ``pairs.csv``.

Every sample is a pure function of ``(seed, epoch, index)``: ONE draw from
``np.random.default_rng([seed, epoch, index])`` (crop x, crop y, flip, as
:class:`~pairgan.data.transforms.PairedTransform`) moves the source image, the target image and
both sets of keypoints alike; a flip mirrors x and swaps the left/right joints.
Pose maps are computed on the fly at the network resolution, one channel per joint, as
``data.pose_encoding`` says (:func:`pose_maps`): ``gaussian`` (the default): channel k is
``exp(-((y - y_k)^2 + (x - x_k)^2) / (2 sigma^2))`` with ``sigma = data.pose_sigma`` pixels of
the network input; ``disk``: 1 on the pixels within ``data.pose_disk_radius`` of the joint, 0
elsewhere (PG2's binary disks, radius 4). Pixel i's centre is at coordinate i; a missing joint
gives an all-zero channel.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pairgan.config import DataConfig
from pairgan.data.datasets import SampleFiles, on_disk, sample_key
from pairgan.data.splits import parse_split
from pairgan.data.io import (
    channels_convertible,
    match_channels,
    read_image,
    to_unit_float,
)
from pairgan.data.tonemap import apply_target_transform
from pairgan.data.transforms import PairedTransform, resize, to_tensor
from pairgan.errors import ConfigError, DataError
from pairgan.fsutil import atomic_write_bytes
from pairgan.registry import register

# --------------------------------------------------------------------------- the keypoint set

#: COCO-18 keypoints in OpenPose order (the order of the pose-transfer annotation files).
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
N_KEYPOINTS = len(KEYPOINT_NAMES)

#: Joint i of a horizontally mirrored person is joint FLIP_PERMUTATION[i] of the original.
FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

#: The OpenPose COCO skeleton: pairs of joints joined by a limb.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

#: OpenPose's joint colours (RGB, 0-255), used to draw poses.
JOINT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"
PAIRS_HEADER = "from,to"
IMAGES_DIR = "images"
ANNOTATIONS_FILE = "annotations.csv"
PAIRS_FILE = "pairs.csv"
#: Fraction of the people (pair-graph components) held out when there are no split files.
HOLDOUT_FRACTION = 0.1
#: Split names that mean "the held-out pairs" when ``pairs.csv`` is split by :func:`holdout_components`.
HOLDOUT_SPLITS = ("test", "val")

LAYOUT_HELP = (
    "expected the pose-pairs layout ROOT/images/*, ROOT/annotations.csv "
    f"({ANNOTATION_HEADER}, 18 COCO keypoints, -1 = missing) and ROOT/pairs.csv ({PAIRS_HEADER}) "
    "or per-split ROOT/pairs-{split}.csv"
)

# --------------------------------------------------------------------------- keypoint files


def _parse_list(text: str, where: str, what: str) -> list[float]:
    try:
        values = json.loads(text.strip())
    except ValueError:
        raise DataError(f"{where}: {what} {text.strip()[:60]!r} is not a bracketed list of numbers, "
                        "expected e.g. [12, -1, 40]") from None
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DataError(f"{where}: {what} {text.strip()[:60]!r} is not a list of numbers")
    return [float(v) for v in values]


def parse_annotation_line(line: str, where: str = "<annotation>") -> tuple[str, np.ndarray]:
    """``NAME: [y0, ...]: [x0, ...]`` -> (NAME, float32 array [18, 2] of (y, x), NaN = missing).

    A joint is missing when either coordinate is negative (the files use -1).
    """
    parts = line.strip().split(":")
    if len(parts) != 3:
        raise DataError(f"{where}: {len(parts)} ':'-separated fields, expected 3 "
                        f"(name:keypoints_y:keypoints_x), got {line.strip()[:80]!r}")
    name = parts[0].strip()
    if not name:
        raise DataError(f"{where}: empty image name")
    ys = _parse_list(parts[1], where, "keypoints_y")
    xs = _parse_list(parts[2], where, "keypoints_x")
    if len(ys) != N_KEYPOINTS or len(xs) != N_KEYPOINTS:
        raise DataError(f"{where}: {len(ys)} y and {len(xs)} x coordinates, expected {N_KEYPOINTS} of each "
                        "(COCO-18 keypoints)")
    kp = np.stack([np.asarray(ys, np.float32), np.asarray(xs, np.float32)], axis=1)
    kp[(kp < 0).any(axis=1)] = np.nan
    return name, kp


def format_annotation(name: str, kp: np.ndarray) -> str:
    """One annotation line (no newline); NaN joints are written as -1, coordinates rounded."""
    kp = np.asarray(kp, np.float64)
    missing = ~np.isfinite(kp).all(axis=1)
    vals = np.where(missing[:, None], -1, np.rint(np.nan_to_num(kp, nan=-1.0))).astype(np.int64)
    ys = ", ".join(str(v) for v in vals[:, 0])
    xs = ", ".join(str(v) for v in vals[:, 1])
    return f"{name}: [{ys}]: [{xs}]"


def parse_annotations(text: str, where: str = "<annotations>") -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """All rows of an annotations file -> ({name: keypoints}, [(where, problem)]).

    The header line is optional; blank lines are skipped; a name given twice is a problem.
    """
    out: dict[str, np.ndarray] = {}
    problems: list[tuple[str, str]] = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or (i == 1 and s.replace(" ", "") == ANNOTATION_HEADER):
            continue
        try:
            name, kp = parse_annotation_line(s, f"{where} line {i}")
        except DataError as exc:
            loc, _, msg = str(exc).partition(": ")
            problems.append((loc, msg))
            continue
        if name in out:
            problems.append((f"{where} line {i}", f"{name} is annotated twice, expected one row per image"))
            continue
        out[name] = kp
    return out, problems


_ANN_CACHE: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def read_annotations(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{name: float32 [18, 2] (y, x), NaN = missing}`` of an annotations file (cached by mtime).

    Raises DataError naming the file and line of the first malformed row.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: annotations file not found; {LAYOUT_HELP}") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _ANN_CACHE:
        rows, problems = parse_annotations(path.read_text(), str(path))
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise DataError(f"{problems[0][0]}: {problems[0][1]}{more}")
        if len(_ANN_CACHE) > 16:
            _ANN_CACHE.clear()
        _ANN_CACHE[key] = rows
    return _ANN_CACHE[key]


def write_annotations(path: str | os.PathLike, rows: dict[str, np.ndarray]) -> None:
    """Write ``{name: keypoints}`` as an annotations file with its header (atomically)."""
    text = "\n".join([ANNOTATION_HEADER, *(format_annotation(n, k) for n, k in rows.items())]) + "\n"
    atomic_write_bytes(Path(path), text.encode())


def parse_pairs(text: str, where: str = "<pairs>") -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Rows of a pairs file -> ([(from, to)], [(where, problem)]); the ``from,to`` header is optional."""
    pairs: list[tuple[str, str]] = []
    problems: list[tuple[str, str]] = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or (i == 1 and s.replace(" ", "") == PAIRS_HEADER):
            continue
        cols = [c.strip() for c in s.split(",")]
        if len(cols) != 2 or not all(cols):
            problems.append((f"{where} line {i}", f"{s[:80]!r}: expected two image names 'from,to'"))
            continue
        pairs.append((cols[0], cols[1]))
    return pairs, problems


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``[(from, to)]`` of a pairs file; DataError on a malformed row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found; {LAYOUT_HELP}")
    pairs, problems = parse_pairs(path.read_text(), str(path))
    if problems:
        raise DataError(f"{problems[0][0]}: {problems[0][1]}")
    return pairs


def write_pairs(path: str | os.PathLike, pairs: Iterable[tuple[str, str]]) -> None:
    text = "\n".join([PAIRS_HEADER, *(f"{a},{b}" for a, b in pairs)]) + "\n"
    atomic_write_bytes(Path(path), text.encode())


# --------------------------------------------------------------------------- splits


def _split_file_candidates(root: Path, split: str) -> list[Path]:
    names = [f"pairs-{split}.csv", f"pairs_{split}.csv", f"{split}_pairs.csv", f"{split}-pairs.csv"]
    out = [root / n for n in names]
    out += sorted(root.glob(f"*-pairs-{split}.csv"))
    return out


_SPLIT_FILE_RE = re.compile(r"^(?:pairs[-_](?P<a>.+)|(?P<b>.+)[-_]pairs|.+-pairs-(?P<c>.+))\.csv$")


def split_files(root: str | os.PathLike) -> dict[str, Path]:
    """``{split: pairs file}`` of the per-split pairs files in ``root`` (empty: hold-out mode)."""
    root = Path(root)
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    splits = set()
    for p in root.glob("*.csv"):
        m = _SPLIT_FILE_RE.match(p.name)
        if m:
            splits.add(m.group("a") or m.group("b") or m.group("c"))
    for s in sorted(splits):
        for cand in _split_file_candidates(root, s):
            if cand.is_file():
                found[s] = cand
                break
    return found


def holdout_components(pairs: Sequence[tuple[str, str]], fraction: float = HOLDOUT_FRACTION) -> set[str]:
    """Image names of the held-out people: connected components of the pair graph whose first
    (sorted) name has ``crc32(name) / 2**32 < fraction``; if that selects none but there are at
    least two components, the one with the smallest hash. Deterministic and order-free."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    comps: dict[str, list[str]] = {}
    for name in list(parent):
        comps.setdefault(find(name), []).append(name)
    if len(comps) < 2:
        return set()
    hashes = {root: zlib.crc32(min(names).encode()) / 2**32 for root, names in comps.items()}
    chosen = [r for r, h in hashes.items() if h < fraction] or [min(hashes, key=hashes.__getitem__)]
    if len(chosen) == len(comps):  # never hold out everything
        chosen = chosen[:-1]
    return {n for r in chosen for n in comps[r]}


def split_pairs(root: str | os.PathLike, split: str) -> list[tuple[str, str]]:
    """The (from, to) pairs of ``split`` (see the module docstring for the rules)."""
    root = Path(root)
    files = split_files(root)
    if split == "all":
        if (root / PAIRS_FILE).is_file():
            return read_pairs(root / PAIRS_FILE)
        return [p for f in files.values() for p in read_pairs(f)]
    if split in files:
        return read_pairs(files[split])
    if files:
        raise DataError(f"{root}: no pairs file for split {split!r}; found {', '.join(sorted(files))} "
                        f"({', '.join(p.name for p in files.values())}) and 'all' ({PAIRS_FILE})")
    pairs = read_pairs(root / PAIRS_FILE)
    held = holdout_components(pairs)
    if split in HOLDOUT_SPLITS:
        return [p for p in pairs if p[0] in held]
    if split == "train":
        return [p for p in pairs if p[0] not in held]
    raise DataError(f"{root}: split {split!r} not found; without per-split pairs files the splits are "
                    f"train, {', '.join(HOLDOUT_SPLITS)} (a deterministic hold-out of {PAIRS_FILE}) and all")


def available_splits(root: str | os.PathLike) -> list[str]:
    root = Path(root)
    files = split_files(root)
    if files:
        return sorted(files) + (["all"] if (root / PAIRS_FILE).is_file() else [])
    return ["train", *HOLDOUT_SPLITS, "all"]


def image_path(root: Path, name: str, split: str | None = None) -> Path:
    """``images/NAME``, else ``images/{split}/NAME`` (pose-gan keeps train/test image folders)."""
    p = root / IMAGES_DIR / name
    if not p.exists() and split:
        q = root / IMAGES_DIR / split / name
        if q.exists():
            return q
    return p


def is_pose_root(root: str | os.PathLike) -> bool:
    root = Path(root)
    return (
        (root / ANNOTATIONS_FILE).is_file()
        and (root / IMAGES_DIR).is_dir()
        and ((root / PAIRS_FILE).is_file() or bool(split_files(root)))
    )


# --------------------------------------------------------------------------- geometry


def heatmaps(kp: np.ndarray, height: int, width: int, sigma: float) -> np.ndarray:
    """Keypoints float [K, 2] (y, x; NaN = missing) -> float32 Gaussian heat maps [K, H, W].

    Separable: channel k = g_y(k) outer g_x(k), peak 1 at the keypoint (pixel i's centre is at i).
    """
    kp = np.asarray(kp, np.float32)
    if sigma <= 0:
        raise ValueError(f"pose sigma {sigma}, expected > 0")
    valid = np.isfinite(kp).all(axis=1)
    k = np.where(valid[:, None], kp, np.float32(-1e6))
    inv = np.float32(-0.5 / (sigma * sigma))
    gy = np.exp(((np.arange(height, dtype=np.float32)[None, :] - k[:, :1]) ** 2) * inv)
    gx = np.exp(((np.arange(width, dtype=np.float32)[None, :] - k[:, 1:]) ** 2) * inv)
    gy[~valid] = 0.0
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32, copy=False)


def disk_maps(kp: np.ndarray, height: int, width: int, radius: float) -> np.ndarray:
    """Keypoints float [K, 2] (y, x; NaN = missing) -> float32 binary disk maps [K, H, W]: 1 on
    the pixels whose centre lies within ``radius`` of the keypoint (PG2's pose encoding)."""
    kp = np.asarray(kp, np.float32)
    if radius <= 0:
        raise ValueError(f"pose disk radius {radius}, expected > 0")
    valid = np.isfinite(kp).all(axis=1)
    k = np.where(valid[:, None], kp, np.float32(-1e6))
    dy2 = (np.arange(height, dtype=np.float32)[None, :] - k[:, :1]) ** 2
    dx2 = (np.arange(width, dtype=np.float32)[None, :] - k[:, 1:]) ** 2
    inside = dy2[:, :, None] + dx2[:, None, :] <= np.float32(radius) ** 2
    inside[~valid] = False
    return inside.astype(np.float32)


POSE_ENCODINGS = ("gaussian", "disk")


def pose_maps(kp: np.ndarray, height: int, width: int, data: DataConfig) -> np.ndarray:
    """Keypoints [K, 2] -> the network's pose maps [K, H, W] as ``data.pose_encoding`` says:
    :func:`heatmaps` with ``data.pose_sigma`` or :func:`disk_maps` with ``data.pose_disk_radius``."""
    if data.pose_encoding == "disk":
        return disk_maps(kp, height, width, data.pose_disk_radius)
    if data.pose_encoding != "gaussian":
        raise ConfigError(f"data.pose_encoding: {data.pose_encoding!r}, expected one of {', '.join(POSE_ENCODINGS)}")
    return heatmaps(kp, height, width, data.pose_sigma)


def _resize_points(kp: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Move (y, x) points from an image of ``src`` = (w, h) to one of ``dst`` (pixel centres map
    like Pillow's resampling: x' = (x + 0.5) * W'/W - 0.5)."""
    if tuple(src) == tuple(dst):
        return kp
    sy, sx = dst[1] / src[1], dst[0] / src[0]
    return np.stack([(kp[:, 0] + 0.5) * sy - 0.5, (kp[:, 1] + 0.5) * sx - 0.5], axis=1).astype(np.float32)


def flip_keypoints(kp: np.ndarray, width: int) -> np.ndarray:
    """Mirror (y, x) keypoints of an image ``width`` wide and swap left/right joints."""
    out = np.asarray(kp, np.float32)[list(FLIP_PERMUTATION)].copy()
    out[:, 1] = (width - 1) - out[:, 1]
    return out


class PoseGeometry:
    """One draw of :class:`PairedTransform`'s geometry, applicable to images and keypoints alike."""

    def __init__(self, transform: PairedTransform, width: int, height: int, rng: np.random.Generator | None) -> None:
        self.src = (width, height)
        self.size, self.crop, self.final = transform.plan(width, height)
        self.x = self.y = 0
        self.flip = False
        if transform.train and rng is not None:  # the same draw, in the same order, as PairedTransform
            self.x = int(rng.integers(0, max(self.size[0] - (self.crop or 0), 0) + 1))
            self.y = int(rng.integers(0, max(self.size[1] - (self.crop or 0), 0) + 1))
            self.flip = bool(rng.random() < 0.5) and transform.flip

    @property
    def crop_size(self) -> tuple[int, int]:
        return (self.crop, self.crop) if self.crop is not None else self.size

    def image(self, arr: np.ndarray) -> np.ndarray:
        arr = resize(arr, self.size)
        if self.crop is not None:
            arr = arr[self.y:self.y + self.crop, self.x:self.x + self.crop]
        if self.flip:
            arr = arr[:, ::-1]
        return np.ascontiguousarray(resize(arr, self.final), dtype=np.float32)

    def keypoints(self, kp: np.ndarray, frame: tuple[int, int] | None = None) -> np.ndarray:
        """``kp`` given in an image of size ``frame`` (w, h; default: this geometry's input)."""
        kp = _resize_points(np.asarray(kp, np.float32), frame or self.src, self.src)
        kp = _resize_points(kp, self.src, self.size)
        if self.crop is not None:
            kp = kp - np.array([self.y, self.x], np.float32)
        if self.flip:
            kp = flip_keypoints(kp, self.crop_size[0])
        return _resize_points(kp, self.crop_size, self.final)


# --------------------------------------------------------------------------- masks and drawing


def _segment_distance(py: np.ndarray, px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from grid points (py [H,1], px [1,W]) to segments a->b ([S, 2] (y, x)) -> [S, H, W]."""
    ay, ax = a[:, 0, None, None], a[:, 1, None, None]
    dy, dx = (b[:, 0] - a[:, 0])[:, None, None], (b[:, 1] - a[:, 1])[:, None, None]
    den = np.maximum(dy * dy + dx * dx, 1e-9)
    t = np.clip(((py[None] - ay) * dy + (px[None] - ax) * dx) / den, 0.0, 1.0)
    return np.sqrt((py[None] - ay - t * dy) ** 2 + (px[None] - ax - t * dx) ** 2)


def person_mask(kp: np.ndarray, height: int, width: int, limb_radius: float = 0.06,
                dilate: float = 0.02) -> np.ndarray:
    """A person mask (bool [H, W]) from keypoints, for mask-SSIM.

    The union of: the torso polygon (shoulders and hips, when all four are present), a capsule
    of radius ``limb_radius * H`` around every limb whose two joints are present, and a head
    disc around the head joints; everything grown by ``dilate * H``. (PG2 derives its mask
    the same way, from limbs, then dilates it; the radii here are our choice.)
    """
    kp = np.asarray(kp, np.float32)
    valid = np.isfinite(kp).all(axis=1)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]
    r = (limb_radius + dilate) * height
    limbs = [(i, j) for i, j in LIMBS if valid[i] and valid[j]]
    mask = np.zeros((height, width), bool)
    if limbs:
        a = kp[[i for i, _ in limbs]]
        b = kp[[j for _, j in limbs]]
        mask |= (_segment_distance(yy, xx, a, b) <= r).any(axis=0)
    head = [k for k in (0, 14, 15, 16, 17) if valid[k]]
    if head:
        c = kp[head].mean(axis=0)
        hr = max(r * 1.5, float(np.max(np.linalg.norm(kp[head] - c, axis=1))) + r)
        mask |= (yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= hr * hr
    torso = [2, 5, 11, 8]  # r-shoulder, l-shoulder, l-hip, r-hip: a quadrilateral around the trunk
    if valid[torso].all():
        mask |= _inside_polygon(yy, xx, kp[torso])
    lone = [k for k in range(len(kp)) if valid[k]]
    if lone:  # isolated joints still mark the person
        p = kp[lone]
        mask |= ((yy[None] - p[:, 0, None, None]) ** 2 + (xx[None] - p[:, 1, None, None]) ** 2 <= r * r).any(axis=0)
    return mask


def _inside_polygon(yy: np.ndarray, xx: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon on a grid (poly [P, 2] of (y, x))."""
    inside = np.zeros(np.broadcast_shapes(yy.shape, xx.shape), bool)
    n = len(poly)
    for i in range(n):
        (y0, x0), (y1, x1) = poly[i], poly[(i + 1) % n]
        if y0 == y1:
            continue
        crosses = (yy >= min(y0, y1)) & (yy < max(y0, y1))
        x_at = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xx < x_at)
    return inside


def keypoints_from_heatmaps(hm: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """Heat maps [N, K, H, W] -> keypoints [N, K, 2] (y, x) at each channel's peak; NaN where the
    peak is below ``threshold`` (a missing joint's channel is all zero)."""
    n, k, h, w = hm.shape
    peak, idx = hm.detach().float().flatten(2).max(dim=2)
    kp = torch.stack([torch.div(idx, w, rounding_mode="floor"), idx % w], dim=2).float()
    return torch.where((peak >= threshold)[..., None], kp, torch.full_like(kp, float("nan")))


@torch.no_grad()
def render_pose(hm: torch.Tensor, thickness: float | None = None) -> torch.Tensor:
    """Draw heat maps [N, 18, H, W] (values in [0, 1]) as an RGB skeleton on black, NCHW in [-1, 1].

    Limbs join the channel peaks (OpenPose colours); the Gaussian blobs are drawn on top.
    """
    rgb, _ = _render_pose_rgba(hm, thickness)
    return rgb * 2 - 1


def _render_pose_rgba(hm: torch.Tensor, thickness: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    hm = hm.detach().float()
    n, k, h, w = hm.shape
    colours = torch.tensor(JOINT_COLOURS[:k], dtype=torch.float32, device=hm.device) / 255.0
    if k < len(JOINT_COLOURS):
        colours = colours[:k]
    th = thickness if thickness is not None else max(1.0, h / 96)
    kp = keypoints_from_heatmaps(hm)
    yy = torch.arange(h, dtype=torch.float32, device=hm.device).view(1, 1, h, 1)
    xx = torch.arange(w, dtype=torch.float32, device=hm.device).view(1, 1, 1, w)
    rgb = torch.zeros(n, 3, h, w, device=hm.device)
    alpha = torch.zeros(n, 1, h, w, device=hm.device)
    limbs = [(i, j) for i, j in LIMBS if i < k and j < k]
    if limbs:
        a = kp[:, [i for i, _ in limbs]]  # [N, L, 2]
        b = kp[:, [j for _, j in limbs]]
        ay, ax = a[..., 0, None, None], a[..., 1, None, None]
        dy, dx = (b[..., 0] - a[..., 0])[..., None, None], (b[..., 1] - a[..., 1])[..., None, None]
        t = (((yy - ay) * dy + (xx - ax) * dx) / (dy * dy + dx * dx).clamp_min(1e-9)).clamp(0, 1)
        d = ((yy - ay - t * dy) ** 2 + (xx - ax - t * dx) ** 2).sqrt()
        on = torch.nan_to_num((th + 0.5 - d).clamp(0, 1), nan=0.0)  # [N, L, H, W] coverage
        limb_col = colours[[j for _, j in limbs]]  # [L, 3]
        rgb = torch.einsum("nlhw,lc->nchw", on, limb_col) / on.sum(1, keepdim=True).clamp_min(1e-6)
        alpha = on.max(dim=1, keepdim=True).values * 0.8
    blob = hm.clamp(0, 1)
    b_alpha, _ = blob.max(dim=1, keepdim=True)
    b_rgb = torch.einsum("nkhw,kc->nchw", blob, colours) / blob.sum(1, keepdim=True).clamp_min(1e-6)
    rgb = rgb * (1 - b_alpha) + b_rgb * b_alpha
    alpha = alpha * (1 - b_alpha) + b_alpha
    return rgb.clamp(0, 1), alpha.clamp(0, 1)


@torch.no_grad()
def overlay_pose(image: torch.Tensor, hm: torch.Tensor) -> torch.Tensor:
    """An image (NCHW in [-1, 1]) faded, with the skeleton of ``hm`` drawn over it."""
    rgb, alpha = _render_pose_rgba(hm)
    img = image.detach().float()
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    base = ((img[:, :3] + 1) / 2) * 0.55 + 0.45
    return (base * (1 - alpha) + rgb * alpha) * 2 - 1


# --------------------------------------------------------------------------- the data set


def _keypoints(kp: Any) -> np.ndarray:
    """Keypoints as read from annotations.csv (an array) or from a shard's JSON (lists, None = NaN)."""
    if isinstance(kp, np.ndarray):
        return kp
    return np.array([[np.nan if v is None else v for v in row] for row in kp], dtype=np.float64)


def load_rgb(path: Path, nc: int = 3, data: bytes | None = None) -> np.ndarray:
    """An image as float32 HxWx``nc`` in [0, 1] (``data``: its bytes, already read)."""
    return match_channels(to_unit_float(read_image(path, data=data), path=path), nc, path, "data.input_nc")


@register("dataset", "poses")
class PosePairDataset(Dataset):
    """Pose-transfer pairs: ``{"source", "source_pose", "target_pose", "target", ...}``.

    ``ds[index]`` or ``ds[(epoch, index)]`` -> ``source`` and ``target`` float [3, H, W] in [-1, 1],
    ``source_pose`` and ``target_pose`` float [18, H, W] heat maps in [0, 1],
    ``source_keypoints`` / ``target_keypoints`` float [18, 2] (y, x) at the network resolution
    (NaN = missing), ``A_path`` / ``B_path`` (source / target file) and ``index``. ``A`` is the
    same tensor as ``source`` (what tools that run without a method show as the input).
    ``data.direction`` does not apply (pairs name their direction); ``data.input_nc`` and
    ``data.output_nc`` are the image channels (3).
    """

    layout = "poses"
    file_layout = "poses"

    def __init__(self, root: str | Path, split: str, cfg: DataConfig, *, train: bool,
                 size_multiple: int = 1, seed: int = 0) -> None:
        self._setup_reading(cfg, train=train, size_multiple=size_multiple, seed=seed)
        self.root = Path(root)
        self.split = split
        if not is_pose_root(self.root):
            raise DataError(f"{self.root}: not a pose-pairs data set; {LAYOUT_HELP}")
        self.annotations = read_annotations(self.root / ANNOTATIONS_FILE)
        self.pairs = split_pairs(self.root, split)
        if cfg.max_items > 0:
            self.pairs = self.pairs[: cfg.max_items]
        if not self.pairs:
            raise DataError(f"{self.root}: split {split!r} has no pairs; {LAYOUT_HELP}")
        missing = [n for p in self.pairs for n in p if n not in self.annotations]
        if missing:
            raise DataError(f"{self.root / ANNOTATIONS_FILE}: no keypoints for {missing[0]}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))

    def _setup_reading(self, cfg: DataConfig, *, train: bool, size_multiple: int, seed: int) -> None:
        """What decoding a sample needs (no file is touched): seed, config, augmentation."""
        if seed < 0:
            raise ValueError(f"seed {seed}, expected a non-negative integer")
        self.cfg = cfg
        self.train = train
        self.seed = int(seed)
        self.transform = PairedTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip, train=train,
                                         size_multiple=size_multiple)

    @classmethod
    def reader(cls, cfg: DataConfig, *, train: bool, size_multiple: int = 1, seed: int = 0) -> "PosePairDataset":
        """An instance that decodes samples handed to it (:meth:`decode`) without a folder."""
        obj = cls.__new__(cls)
        obj.root, obj.split, obj.pairs, obj.annotations = Path(""), "", [], {}
        obj._setup_reading(cfg, train=train, size_multiple=size_multiple, seed=seed)
        return obj

    def __len__(self) -> int:
        return len(self.pairs)

    def _key(self, key: Any) -> tuple[int, int]:
        return sample_key(key, len(self.pairs))

    def sample_files(self, index: int) -> dict[str, Path]:
        """Pair ``index``'s two images: ``source`` and ``target``."""
        a_name, b_name = self.pairs[index]
        return {"source": image_path(self.root, a_name, self.split), "target": image_path(self.root, b_name, self.split)}

    def sample_extra(self, index: int) -> dict[str, Any]:
        """The pair's image names and their keypoints (``[[y, x], ...]``, NaN as None)."""
        a_name, b_name = self.pairs[index]
        kp = {n: [[None if np.isnan(v) else float(v) for v in row] for row in np.asarray(self.annotations[n], float)]
              for n in (a_name, b_name)}
        return {"names": [a_name, b_name], "source_keypoints": kp[a_name], "target_keypoints": kp[b_name]}

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = self._key(key)
        a_name, b_name = self.pairs[index]
        extra = {"source_keypoints": self.annotations[a_name], "target_keypoints": self.annotations[b_name]}
        return self.decode(on_disk(self.sample_files(index)), extra, epoch, index)

    def decode(self, files: SampleFiles, extra: dict[str, Any], epoch: int, index: int) -> dict[str, Any]:
        """THE per-sample function of pose pairs: the two images (on disk or from a shard) and their
        keypoints (``extra``), augmented with the draw of ``(seed, epoch, index)``."""
        rng = np.random.default_rng([self.seed, epoch, index])
        a_path, b_path = files["source"].path, files["target"].path
        a = load_rgb(a_path, self.cfg.input_nc, files["source"].data)
        b = load_rgb(b_path, self.cfg.output_nc, files["target"].data)
        if a.shape[:2] != b.shape[:2]:
            raise DataError(f"{a_path} is {a.shape[1]}x{a.shape[0]} but its pair's target {b_path} is "
                            f"{b.shape[1]}x{b.shape[0]}; expected the two images of a pair to share one size")
        try:
            geo = PoseGeometry(self.transform, a.shape[1], a.shape[0], rng)
        except ValueError as exc:
            raise DataError(f"{a_path}: {exc}") from None
        a, b = geo.image(a), geo.image(b)
        ka, kb = geo.keypoints(_keypoints(extra["source_keypoints"])), geo.keypoints(_keypoints(extra["target_keypoints"]))
        h, w = a.shape[:2]
        source = to_tensor(a)
        return {
            "source": source,
            "source_pose": torch.from_numpy(pose_maps(ka, h, w, self.cfg)),
            "target_pose": torch.from_numpy(pose_maps(kb, h, w, self.cfg)),
            "target": to_tensor(apply_target_transform(b, self.cfg.target_transform)),
            "source_keypoints": torch.from_numpy(ka),
            "target_keypoints": torch.from_numpy(kb),
            "A": source,
            "A_path": str(a_path),
            "B_path": str(b_path),
            "index": index,
        }

    def describe(self) -> str:
        cfg = self.cfg
        aug = f"preprocess {cfg.preprocess} (load {cfg.load_size}, crop {cfg.crop_size})"
        if self.transform.size_multiple > 1:
            aug += f", sizes rounded to multiples of {self.transform.size_multiple}"
        if self.train and cfg.flip:
            aug += ", random flip (left/right joints swapped)"
        maps = (f"disks radius {cfg.pose_disk_radius:g} px" if cfg.pose_encoding == "disk"
                else f"heat maps sigma {cfg.pose_sigma:g} px")
        return (f"poses: {len(self)} pairs, split {self.split!r} of {self.root}, {maps}, {aug}, {'train' if self.train else 'eval'} mode, seed {self.seed}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()})"

    # ------------------------------------------------------------- layout hooks
    @classmethod
    def detect(cls, root: Path, split: str) -> bool:
        """The pose layout: ``annotations.csv``, ``images/`` and ``pairs.csv`` or split pairs files."""
        return is_pose_root(root)

    @classmethod
    def split_exists(cls, root: Path, split: str) -> bool:
        try:
            return bool(split_pairs(root, split))
        except DataError:
            return False

    @classmethod
    def check_split(cls, cfg: DataConfig, root: Path, split: str,
                    size_multiple: int = 1) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Check a split: files, rows, keypoint lists, images (fully decoded), sizes, crop fit.
        A slice ``NAME[START:STOP]`` is checked as its whole split."""
        return _check_split(cfg, Path(root), parse_split(split)[0], size_multiple)


def _check_split(cfg: DataConfig, root: Path, split: str, size_multiple: int) -> tuple[dict[str, Any], list]:
    problems: list[tuple[str, str]] = []
    row: dict[str, Any] = {}
    ann_path = root / ANNOTATIONS_FILE
    for p, what in ((ann_path, "annotations file"), (root / IMAGES_DIR, "images folder")):
        if not p.exists():
            problems.append((str(p), f"{what} not found; {LAYOUT_HELP}"))
    if problems:
        return row, problems
    annotations, ann_problems = parse_annotations(ann_path.read_text(), str(ann_path))
    problems += ann_problems
    files = split_files(root)
    if split in files or split == "all" and not (root / PAIRS_FILE).is_file() and files:
        sources = [files[split]] if split in files else list(files.values())
        pairs = []
        for f in sources:
            ps, pp = parse_pairs(f.read_text(), str(f))
            pairs += ps
            problems += pp
    elif not files or split == "all":
        pf = root / PAIRS_FILE
        if not pf.is_file():
            problems.append((str(pf), f"pairs file not found; {LAYOUT_HELP}"))
            return row, problems
        all_pairs, pp = parse_pairs(pf.read_text(), str(pf))
        problems += pp
        if split == "all":
            pairs = all_pairs
        elif split in ("train", *HOLDOUT_SPLITS):
            held = holdout_components(all_pairs)
            pairs = [p for p in all_pairs if (p[0] in held) == (split in HOLDOUT_SPLITS)]
        else:
            problems.append((str(root), f"split {split!r} not found; splits: {', '.join(available_splits(root))}"))
            return row, problems
    else:
        problems.append((str(root), f"no pairs file for split {split!r}; found "
                                    f"{', '.join(p.name for p in files.values())}"))
        return row, problems
    if cfg.max_items > 0:
        pairs = pairs[: cfg.max_items]
    row["n_pairs"] = len(pairs)
    if not pairs:
        problems.append((str(root), f"split {split!r} has no pairs"))
        return row, problems
    where_pairs = str(files.get(split, root / PAIRS_FILE))
    for a, b in pairs:
        if a == b:
            problems.append((where_pairs, f"pair {a},{b}: source and target are the same image"))
    names = sorted({n for p in pairs for n in p})
    for n in names:
        if n not in annotations:
            problems.append((str(ann_path), f"no keypoints for {n} (used by split {split!r})"))
    transform = PairedTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip,
                                train=(split == cfg.train_split), size_multiple=size_multiple)

    def inspect(name: str) -> tuple[str, tuple[int, int, int] | None, list[tuple[str, str]]]:
        found: list[tuple[str, str]] = []
        path = image_path(root, name, split)
        if not path.is_file():
            return name, None, [(str(path), f"image not found (named in the pairs of split {split!r})")]
        try:
            arr = read_image(path)
        except DataError as exc:
            msg = str(exc)
            return name, None, [(str(path), msg[len(str(path)) + 2:] if msg.startswith(str(path)) else msg)]
        h, w, c = arr.shape
        if not channels_convertible(c, cfg.input_nc):
            found.append((str(path), f"{c} channels, expected {cfg.input_nc} (data.input_nc)"))
        try:
            transform.plan(w, h)
        except ValueError as exc:
            found.append((str(path), str(exc)))
        kp = annotations.get(name)
        if kp is not None:
            ok = np.isfinite(kp).all(axis=1)
            bad = ok & ((kp[:, 0] > h - 1 + 0.5) | (kp[:, 1] > w - 1 + 0.5))
            for k in np.flatnonzero(bad):
                found.append((str(ann_path), f"{name}: keypoint {k} ({KEYPOINT_NAMES[k]}) at y={kp[k, 0]:g}, "
                                             f"x={kp[k, 1]:g} lies outside the {w}x{h} image"))
        return name, (w, h, c), found

    info: dict[str, tuple[int, int, int]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for name, shape, found in pool.map(inspect, names):
            problems += found
            if shape is not None:
                info[name] = shape
    for a, b in pairs:
        if a in info and b in info and info[a][:2] != info[b][:2]:
            problems.append((str(image_path(root, a, split)),
                             f"{info[a][0]}x{info[a][1]} but its pair's target {b} is {info[b][0]}x{info[b][1]}; "
                             "expected the two images of a pair to share one size"))
    if info:
        ws = [v[0] for v in info.values()]
        hs = [v[1] for v in info.values()]
        row["min_size"], row["max_size"] = (min(ws), min(hs)), (max(ws), max(hs))
        row["channels_A"] = sorted({info[a][2] for a, _ in pairs if a in info})
        row["channels_B"] = sorted({info[b][2] for _, b in pairs if b in info})
    return row, problems


__all__ = [
    "ANNOTATION_HEADER", "FLIP_PERMUTATION", "JOINT_COLOURS", "KEYPOINT_NAMES", "LIMBS", "N_KEYPOINTS",
    "POSE_ENCODINGS", "PoseGeometry", "PosePairDataset", "available_splits", "disk_maps", "flip_keypoints",
    "format_annotation", "heatmaps", "pose_maps",
    "holdout_components", "image_path", "keypoints_from_heatmaps", "overlay_pose", "parse_annotation_line",
    "parse_annotations", "parse_pairs", "person_mask", "read_annotations", "read_pairs", "render_pose",
    "split_files", "split_pairs", "write_annotations", "write_pairs",
]
