"""Procedural articulated people: the embedded pose-transfer data set.

Each *identity* has its own appearance — skin, hair colour and style, shirt colour, pattern
(solid, stripes, checks, dots, two-tone) and sleeve length, trouser colour and length, shoes,
build and height — and is drawn in several *poses*: front, back and three-quarter views, arms
down / raised / out / on the hips / waving, legs together / side step / one knee raised, at
slightly different places and scales. The first two poses of every identity are a front and a
back view, so every identity has a large change. Keypoints are the 18 COCO/OpenPose joints
(``pairgan.data.poses.KEYPOINT_NAMES``); joints the view hides (the face from behind, the far
ear in a three-quarter view) and joints outside the image are written as -1.

:func:`synth_poses` writes the pose-transfer layout (``images/``, ``annotations.csv``,
``pairs.csv``) plus identity-disjoint ``pairs-train.csv`` / ``pairs-val.csv`` / ``pairs-test.csv``
(identity ``i`` is a test identity when ``i % 10 == 9``, val when ``i % 10 == 8``). Pairs are
every ordered pair of two different poses of one identity. Deterministic: identity ``i``'s
appearance comes from ``np.random.default_rng([seed, i])`` and its pose ``j`` from
``np.random.default_rng([seed, i, j + 1])`` only, so files do not depend on ``n``.
Rendering is vectorised NumPy at 2x supersampling (distance fields of capsules and polygons).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pairgan.data.poses import N_KEYPOINTS, format_annotation, write_pairs
from pairgan.fsutil import atomic_write_bytes

__all__ = ["Appearance", "PoseSpec", "draw_appearance", "draw_pose", "render_person", "synth_poses"]

_SKIN = [(0.96, 0.80, 0.69), (0.92, 0.74, 0.60), (0.80, 0.60, 0.45), (0.63, 0.45, 0.32), (0.45, 0.31, 0.22),
         (0.33, 0.22, 0.16)]
_HAIR = [(0.08, 0.06, 0.05), (0.25, 0.16, 0.09), (0.45, 0.30, 0.16), (0.75, 0.60, 0.35), (0.55, 0.20, 0.10),
         (0.60, 0.60, 0.60), (0.92, 0.85, 0.65)]
_CLOTH = [(0.85, 0.15, 0.15), (0.15, 0.35, 0.80), (0.10, 0.55, 0.30), (0.95, 0.80, 0.15), (0.95, 0.95, 0.95),
          (0.12, 0.12, 0.14), (0.55, 0.25, 0.60), (0.95, 0.50, 0.15), (0.40, 0.70, 0.90), (0.90, 0.55, 0.70),
          (0.50, 0.35, 0.20), (0.45, 0.50, 0.55), (0.70, 0.85, 0.35), (0.15, 0.20, 0.40)]
_TROUSERS = [(0.15, 0.22, 0.45), (0.10, 0.10, 0.12), (0.35, 0.35, 0.38), (0.60, 0.50, 0.35), (0.25, 0.35, 0.20),
             (0.85, 0.82, 0.75), (0.45, 0.15, 0.15), (0.30, 0.45, 0.65)]
_BACKGROUND = [(0.93, 0.93, 0.93), (0.88, 0.89, 0.91), (0.92, 0.89, 0.84), (0.86, 0.90, 0.86), (0.80, 0.82, 0.85)]
PATTERNS = ("solid", "hstripes", "vstripes", "checks", "dots", "twotone")
ARM_POSES = ("down", "raised", "out", "hips", "wave", "front")
LEG_POSES = ("together", "step", "knee", "walk")


@dataclass
class Appearance:
    """What stays the same across an identity's poses."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str  # short, long, bald
    shirt: np.ndarray
    shirt2: np.ndarray
    pattern: str
    period: float  # pattern period, in units of the body height
    long_sleeves: bool
    trousers: np.ndarray
    long_trousers: bool
    shoes: np.ndarray
    background: np.ndarray
    build: float  # shoulder/hip width factor
    height: float  # body height as a fraction of the image height


@dataclass
class PoseSpec:
    """One pose: view angle, arm and leg configuration, placement."""

    view: float  # 0 front, 180 back, +-35 three-quarter (degrees)
    arms: tuple[str, str]  # (right, left)
    legs: str
    cx: float  # horizontal centre, fraction of the width
    scale: float
    angles: np.ndarray  # per-pose jitter draws


def _jit(rng: np.random.Generator, c, amount: float) -> np.ndarray:
    return np.clip(np.asarray(c, np.float32) + rng.uniform(-amount, amount, 3).astype(np.float32), 0, 1)


def draw_appearance(rng: np.random.Generator) -> Appearance:
    shirt_i, shirt2_i = rng.choice(len(_CLOTH), 2, replace=False)
    return Appearance(
        skin=_jit(rng, _SKIN[rng.integers(len(_SKIN))], 0.03),
        hair=_jit(rng, _HAIR[rng.integers(len(_HAIR))], 0.03),
        hair_style=str(rng.choice(["short", "short", "long", "long", "bald"])),
        shirt=_jit(rng, _CLOTH[shirt_i], 0.06),
        shirt2=_jit(rng, _CLOTH[shirt2_i], 0.06),
        pattern=str(rng.choice(PATTERNS)),
        period=float(rng.uniform(0.03, 0.07)),
        long_sleeves=bool(rng.random() < 0.5),
        trousers=_jit(rng, _TROUSERS[rng.integers(len(_TROUSERS))], 0.05),
        long_trousers=bool(rng.random() < 0.7),
        shoes=_jit(rng, [(0.1, 0.1, 0.1), (0.45, 0.25, 0.12), (0.9, 0.9, 0.9)][rng.integers(3)], 0.03),
        background=_jit(rng, _BACKGROUND[rng.integers(len(_BACKGROUND))], 0.02),
        build=float(rng.uniform(0.85, 1.15)),
        height=float(rng.uniform(0.78, 0.88)),
    )


def draw_pose(rng: np.random.Generator, kind: str | None = None) -> PoseSpec:
    """A random pose; ``kind`` forces the view: ``front`` or ``back``."""
    r = rng.random()
    if kind == "front" or (kind is None and r < 0.4):
        view = float(rng.uniform(-10, 10))
    elif kind == "back" or (kind is None and r < 0.65):
        view = float(180 + rng.uniform(-10, 10))
    else:
        view = float(rng.choice([-1, 1]) * rng.uniform(25, 45) + (180 if rng.random() < 0.3 else 0))
    arm_p = np.array([0.3, 0.18, 0.14, 0.14, 0.12, 0.12])
    right = str(rng.choice(ARM_POSES, p=arm_p))
    left = right if rng.random() < 0.5 else str(rng.choice(ARM_POSES, p=arm_p))
    legs = str(rng.choice(LEG_POSES, p=[0.4, 0.3, 0.12, 0.18]))
    return PoseSpec(view=view, arms=(right, left), legs=legs, cx=float(rng.uniform(0.42, 0.58)),
                    scale=float(rng.uniform(0.92, 1.04)), angles=rng.uniform(-1, 1, 16).astype(np.float32))


# --------------------------------------------------------------------------- skeleton


def _arm_angles(kind: str, j: np.ndarray) -> tuple[float, float]:
    """(upper arm angle from straight down, outward positive; elbow bend added to it), degrees."""
    if kind == "down":
        return 8 + 6 * j[0], 8 * j[1]
    if kind == "raised":
        return 160 + 12 * j[0], 10 * j[1]
    if kind == "out":
        return 90 + 12 * j[0], 15 * j[1]
    if kind == "hips":
        return 40 + 6 * j[0], -105 + 10 * j[1]
    if kind == "wave":
        return 100 + 10 * j[0], 55 + 15 * j[1]
    return 18 + 6 * j[0], -75 + 10 * j[1]  # front: hands together in front of the belly


def _leg_angles(kind: str, j: np.ndarray, side: int, chosen: int) -> tuple[float, float]:
    """(thigh angle outward, knee bend added to it), degrees; ``side`` 0 right, 1 left;
    ``chosen`` is the leg that steps out, lifts its knee or swings back."""
    if kind == "together":
        return 3 + 2 * j[0], 0.0
    if kind == "step":
        return (16 + 6 * j[0]) if side == chosen else (6 + 3 * j[1]), 0.0
    if kind == "knee":
        return (45 + 10 * j[0], -80 + 10 * j[1]) if side == chosen else (4 + 2 * j[1], 0.0)
    return 8 + 4 * j[0], (-25 + 6 * j[1]) if side == chosen else 4 * j[1]  # walk


def skeleton(app: Appearance, pose: PoseSpec, h: int, w: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Joint positions (y, x) in pixels [18, 2], visibility [18] and body dimensions."""
    L = app.height * pose.scale * h  # body height in pixels
    top = h * 0.955 - L  # the ankles sit near the bottom edge
    cx = pose.cx * w
    th = math.radians(pose.view)
    c, s = math.cos(th), math.sin(th)
    j = pose.angles
    sw, hw = 0.105 * L * app.build, 0.062 * L * app.build
    # person's right side: image-left in a front view (c > 0), image-right from behind
    kp = np.zeros((N_KEYPOINTS, 2), np.float32)
    vis = np.ones(N_KEYPOINTS, bool)
    neck = np.array([top + 0.185 * L, cx + 0.01 * L * s])
    kp[1] = neck
    head_c = np.array([top + 0.075 * L, cx + 0.015 * L * s])
    for k, side in ((2, -1), (5, 1)):  # shoulders
        kp[k] = (top + 0.19 * L, cx + side * sw * c)
    for k, side in ((8, -1), (11, 1)):  # hips
        kp[k] = (top + 0.52 * L, cx + side * hw * c)
    upper, fore = 0.165 * L, 0.15 * L
    for (sh, el, wr), arm, jj in (((2, 3, 4), pose.arms[0], j[0:2]), ((5, 6, 7), pose.arms[1], j[2:4])):
        a, bend = _arm_angles(arm, jj)
        out = 1.0 if kp[sh, 1] >= cx else -1.0
        if abs(kp[sh, 1] - cx) < 0.2 * sw:  # side-on shoulder: outward follows the body's side
            out = (1.0 if sh == 5 else -1.0) * (1.0 if c >= 0 else -1.0)
        for start, end, length, ang in ((sh, el, upper, a), (el, wr, fore, a + bend)):
            r = math.radians(ang)
            kp[end] = kp[start] + length * np.array([math.cos(r), out * math.sin(r)], np.float32)
    thigh, shin = 0.235 * L, 0.215 * L
    for side, (hip, kn, an) in enumerate(((8, 9, 10), (11, 12, 13))):
        a, bend = _leg_angles(pose.legs, j[4 + 2 * side: 6 + 2 * side], side, int(j[8] > 0))
        out = 1.0 if kp[hip, 1] >= cx else -1.0
        if abs(kp[hip, 1] - cx) < 0.2 * hw:
            out = (1.0 if hip == 11 else -1.0) * (1.0 if c >= 0 else -1.0)
        for start, end, length, ang in ((hip, kn, thigh, a), (kn, an, shin, a + bend)):
            r = math.radians(ang)
            kp[end] = kp[start] + length * np.array([math.cos(r), out * math.sin(r)], np.float32)
    # face: nose, eyes, ears
    hr = 0.062 * L
    kp[0] = head_c + (0.25 * hr, 0.55 * hr * s)
    for k, side in ((14, -1), (15, 1)):
        kp[k] = head_c + (-0.1 * hr, side * 0.38 * hr * c + 0.45 * hr * s)
    for k, side in ((16, -1), (17, 1)):
        kp[k] = head_c + (0.05 * hr, side * 0.92 * hr * c)
    front = c > 0.2
    vis[[0, 14, 15]] = front
    if abs(s) > 0.45:  # three-quarter view: the ear turned away is hidden
        far_ear = 16 if (s > 0) == (c > 0) else 17
        vis[far_ear] = False
    dims = {"L": L, "head_c": head_c, "hr": hr, "front": front, "c": c, "s": s, "sw": sw, "hw": hw}
    return kp, vis, dims


# --------------------------------------------------------------------------- rendering


def _capsule(yy, xx, a, b, r):
    """(inside mask, normalised distance d/r) of a capsule a->b of radius r."""
    dy, dx = b[0] - a[0], b[1] - a[1]
    den = max(dy * dy + dx * dx, 1e-9)
    t = np.clip(((yy - a[0]) * dy + (xx - a[1]) * dx) / den, 0, 1)
    d = np.sqrt((yy - a[0] - t * dy) ** 2 + (xx - a[1] - t * dx) ** 2) / r
    return d <= 1.0, d


def _polygon(yy, xx, poly):
    inside = np.zeros(np.broadcast_shapes(yy.shape, xx.shape), bool)
    n = len(poly)
    for i in range(n):
        (y0, x0), (y1, x1) = poly[i], poly[(i + 1) % n]
        if y0 == y1:
            continue
        cross = (yy >= min(y0, y1)) & (yy < max(y0, y1))
        inside ^= cross & (xx < x0 + (yy - y0) * (x1 - x0) / (y1 - y0))
    return inside


def _pattern(app: Appearance, yy, xx, L: float, cx: float, top: float, view_c: float):
    """Shirt colour per pixel from the identity's pattern, in body-relative coordinates."""
    u = (xx - cx) / L
    v = (yy - top) / L
    p = app.period
    pat = app.pattern
    if pat == "hstripes":
        m = (v / p) % 1.0 < 0.5
    elif pat == "vstripes":
        m = ((u * max(abs(view_c), 0.35)) / p) % 1.0 < 0.5
    elif pat == "checks":
        m = ((np.floor(v / p) + np.floor(u / p)) % 2) == 0
    elif pat == "dots":
        m = (((v / p) % 1.0 - 0.5) ** 2 + ((u / p) % 1.0 - 0.5) ** 2) < 0.09
    elif pat == "twotone":
        m = v > 0.36
    else:
        m = np.zeros(np.broadcast_shapes(yy.shape, xx.shape), bool)
    return np.where(m[..., None], app.shirt2, app.shirt)


def render_person(app: Appearance, pose: PoseSpec, size: int, width: int | None = None,
                  supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Draw one identity in one pose -> (uint8 HxWx3 image, keypoints int [18, 2] (y, x), -1 missing)."""
    h, w = size, width or size
    ss = supersample
    kp, vis, dims = skeleton(app, pose, h, w)
    # sub-pixel centres in output-pixel units (pixel i covers [i - 0.5, i + 0.5])
    yy = (np.arange(h * ss, dtype=np.float32)[:, None] + 0.5) / ss - 0.5
    xx = (np.arange(w * ss, dtype=np.float32)[None, :] + 0.5) / ss - 0.5
    L = dims["L"]
    c = dims["c"]
    top = kp[1, 0] - 0.185 * L
    # background: a soft vertical gradient and a floor shadow under the feet
    g = 1.0 - 0.08 * (yy / h)
    img = np.broadcast_to(app.background * g[..., None], (h * ss, w * ss, 3)).copy()
    feet_y = max(kp[10, 0], kp[13, 0]) + 0.02 * L
    shadow = ((yy - feet_y) / (0.025 * L)) ** 2 + ((xx - pose.cx * w) / (0.16 * L)) ** 2
    img *= (1 - 0.25 * np.clip(1 - shadow, 0, 1))[..., None]

    def paint(mask, colour, shade=None):
        ys, xs = np.nonzero(mask)
        if not len(ys):
            return
        col = np.asarray(colour, np.float32)
        col = np.broadcast_to(col, img.shape)[ys, xs] if col.ndim == 3 else np.broadcast_to(col, (len(ys), 3))
        if shade is not None:
            col = col * np.broadcast_to(shade, mask.shape)[ys, xs][:, None]
        img[ys, xs] = col

    def limb(a, b, r, colour):
        m, d = _capsule(yy, xx, kp[a] if np.ndim(a) == 0 else a, kp[b] if np.ndim(b) == 0 else b, r)
        paint(m, colour, 1.0 - 0.28 * d ** 2)

    shirt = _pattern(app, yy, xx, L, pose.cx * w, top, c)
    far_first = abs(dims["s"]) > 0.35
    far_side = (0 if (dims["s"] > 0) == (c > 0) else 1) if far_first else None  # 0: right arm/leg

    def arm(side):
        sh, el, wr = (2, 3, 4) if side == 0 else (5, 6, 7)
        limb(sh, el, 0.034 * L, shirt)
        limb(el, wr, 0.028 * L if app.long_sleeves else 0.026 * L, shirt if app.long_sleeves else app.skin)
        hm, _ = _capsule(yy, xx, kp[wr], kp[wr] + (kp[wr] - kp[el]) * 0.25, 0.03 * L)
        paint(hm, app.skin)

    def leg(side):
        hip, kn, an = (8, 9, 10) if side == 0 else (11, 12, 13)
        limb(hip, kn, 0.052 * L, app.trousers)
        limb(kn, an, 0.04 * L, app.trousers if app.long_trousers else app.skin)
        foot_dir = np.array([0.0, (1 if kp[an, 1] >= pose.cx * w else -1) * 0.045 * L], np.float32)
        fm, fd = _capsule(yy, xx, kp[an] + (0.02 * L, 0), kp[an] + (0.02 * L, 0) + foot_dir * (0.4 + 0.6 * abs(dims["s"])),
                          0.028 * L)
        paint(fm, app.shoes, 1.0 - 0.2 * fd ** 2)

    if far_side is not None:
        arm(far_side)
        leg(far_side)
    for side in (0, 1):
        if side != far_side:
            leg(side)
    # torso: a quadrilateral from the shoulders to the hips, slightly widened, shaded by distance
    # to its axis; below it the pelvis in trouser colour down to the crotch
    wid = 0.035 * L
    sgn = 1.0 if kp[5, 1] >= kp[2, 1] else -1.0  # +1 when the left side is on the image's right
    pelvis = np.array([kp[8] + (-0.01 * L, -sgn * 0.045 * L), kp[11] + (-0.01 * L, sgn * 0.045 * L),
                       kp[11] + (0.1 * L, sgn * 0.02 * L), kp[8] + (0.1 * L, -sgn * 0.02 * L)], np.float32)
    paint(_polygon(yy, xx, pelvis), app.trousers)
    torso = np.array([kp[2] + (-0.01 * L, -sgn * wid * 0.6), kp[5] + (-0.01 * L, sgn * wid * 0.6),
                      kp[11] + (0.02 * L, sgn * wid * 0.5), kp[8] + (0.02 * L, -sgn * wid * 0.5)], np.float32)
    tm = _polygon(yy, xx, torso)
    axis_x = (kp[1, 1] + (kp[8, 1] + kp[11, 1]) / 2) / 2
    half = max(abs(kp[5, 1] - kp[2, 1]) / 2 + wid, 0.06 * L)
    paint(tm, shirt, 1.0 - 0.22 * np.clip((xx - axis_x) / half, -1, 1) ** 2)
    nm, _ = _capsule(yy, xx, kp[1], dims["head_c"], 0.03 * L)
    paint(nm, app.skin)
    for side in (0, 1):
        if side != far_side:
            arm(side)
    # head, hair, face
    hc, hr = dims["head_c"], dims["hr"]
    hd = np.sqrt(((yy - hc[0]) / (hr * 1.12)) ** 2 + ((xx - hc[1]) / hr) ** 2)
    if app.hair_style == "long":
        lm = (np.abs(xx - hc[1]) < hr * 1.05) & (yy > hc[0]) & (yy < hc[0] + 2.3 * hr)
        if dims["front"]:
            lm &= np.abs(xx - hc[1]) > hr * 0.55
        paint(lm, app.hair, 0.9 + 0.1 * np.cos((xx - hc[1]) / hr * 6))
    paint(hd <= 1, app.skin, 1.0 - 0.2 * np.clip(hd, 0, 1) ** 2)
    if app.hair_style != "bald":
        if dims["front"]:
            hair = (hd <= 1.08) & (yy < hc[0] - 0.35 * hr + 0.25 * hr * np.abs(xx - hc[1]) / hr)
        else:
            hair = hd <= 1.06
            if app.hair_style == "short":
                hair &= yy < hc[0] + 0.75 * hr
        paint(hair, app.hair, 0.85 + 0.15 * np.cos((xx - hc[1]) / hr * 9))
    if dims["front"]:
        for k in (14, 15):
            em = ((yy - kp[k, 0]) ** 2 + (xx - kp[k, 1]) ** 2) < (0.13 * hr) ** 2
            paint(em, (0.1, 0.08, 0.08))
        mouth = (np.abs(yy - (hc[0] + 0.5 * hr)) < 0.06 * hr) & (np.abs(xx - kp[0, 1]) < 0.25 * hr)
        paint(mouth, app.skin * 0.6)
    out = img.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    u8 = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= h - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= w - 1)
    ints = np.where((vis & inside)[:, None], np.rint(kp), -1).astype(np.int64)
    return u8, ints


# --------------------------------------------------------------------------- the data set


def identity_split(i: int, n: int) -> str:
    """``test`` when i % 10 == 9, ``val`` when i % 10 == 8, else ``train`` (for n < 10 the last
    identity is the test one, so a small set still has a hold-out)."""
    if n < 10:
        return "test" if i == n - 1 and n >= 2 else "train"
    return {9: "test", 8: "val"}.get(i % 10, "train")


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def synth_poses(out: str | Path, n: int = 100, poses: int = 4, size: int = 128, seed: int = 0,
                width: int | None = None) -> dict:
    """Write ``n`` identities x ``poses`` images of ``size`` x ``width`` (default square) to ``out``.

    Returns ``{"root", "images", "pairs", "counts"}`` (counts: pairs per split).
    """
    n, poses, size = int(n), int(poses), int(size)
    width = int(width or size)
    if n < 1 or poses < 2:
        raise ValueError(f"n {n}, poses {poses}: expected n >= 1 and poses >= 2 (pairs need two poses)")
    if size < 16 or width < 8:
        raise ValueError(f"image size {width}x{size} too small, expected at least 8x16")
    root = Path(out)
    (root / "images").mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(n - 1)))
    annotations: dict[str, np.ndarray] = {}
    pairs: dict[str, list[tuple[str, str]]] = {"train": [], "val": [], "test": []}
    for i in range(n):
        app = draw_appearance(np.random.default_rng([seed, i]))
        names = []
        for jdx in range(poses):
            rng = np.random.default_rng([seed, i, jdx + 1])
            pose = draw_pose(rng, "front" if jdx == 0 else "back" if jdx == 1 else None)
            img, kp = render_person(app, pose, size, width)
            view = "front" if abs(pose.view) < 20 else "back" if abs(pose.view - 180) < 20 else "side"
            name = f"id{i:0{digits}d}_{jdx}{view}.png"
            atomic_write_bytes(root / "images" / name, _png(img))
            annotations[name] = np.where(kp < 0, np.nan, kp).astype(np.float32)
            names.append(name)
        pairs[identity_split(i, n)] += [(a, b) for a in names for b in names if a != b]
    lines = ["name:keypoints_y:keypoints_x", *(format_annotation(k, v) for k, v in annotations.items())]
    atomic_write_bytes(root / "annotations.csv", ("\n".join(lines) + "\n").encode())
    write_pairs(root / "pairs.csv", [p for s in ("train", "val", "test") for p in pairs[s]])
    for s, ps in pairs.items():
        write_pairs(root / f"pairs-{s}.csv", ps)
    meta = {"generator": "pairgan.synth.poses.synth_poses", "identities": n, "poses_per_identity": poses,
            "height": size, "width": width, "seed": int(seed), "images": len(annotations),
            "pairs": {s: len(p) for s, p in pairs.items()},
            "keypoints": "COCO-18 (OpenPose order), y then x, -1 = missing"}
    atomic_write_bytes(root / "synth.json", (json.dumps(meta, indent=2) + "\n").encode())
    return {"root": str(root), "images": len(annotations), "pairs": sum(len(p) for p in pairs.values()),
            "counts": {s: len(p) for s, p in pairs.items()}}
