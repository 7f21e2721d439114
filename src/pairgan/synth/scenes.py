"""Procedural street/facade scenes: the embedded default data set.

Every scene is a frontal street view: a sky with clouds, a row of buildings (facades with
brick/plaster/panel textures, roofs, a grid of windows, doors and shop windows), a sidewalk,
an asphalt road with lane markings, trees and bushes in front, and cars on the road.

:func:`render_scene` draws one scene and returns three aligned arrays:

* ``label`` -- ``uint8`` class ids (see :data:`CLASSES` / :data:`PALETTE`),
* ``inst``  -- ``int32`` instance ids, Cityscapes convention: pixels of a *thing* class
  (window, door, vegetation (tree/bush), car) store ``class_id * 1000 + k`` with ``k = 0, 1, ...``
  numbering the instances of that class in the image; *stuff* pixels store the class id,
* ``photo`` -- ``uint8`` RGB rendering in which every region follows the label map exactly,
  with a per-instance random appearance (colour, texture, shading), so that label -> photo is
  one-to-many, as in real data.

:func:`synth_scenes` writes a whole data set in two layouts at once (aligned pix2pix
``A|B`` images and the pix2pixHD ``*_label``/``*_inst``/``*_img`` folders), deterministically:
image ``i`` is drawn from ``np.random.default_rng([seed, i])`` only, so it does not depend on
``n`` and the images can be drawn in parallel.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
from PIL import Image

from pairgan.fsutil import atomic_write, atomic_write_text

__all__ = [
    "CLASSES",
    "PALETTE",
    "THING_CLASSES",
    "LABEL_NC",
    "render_scene",
    "colorize",
    "instance_to_class",
    "synth_scenes",
]

CLASSES: list[str] = [
    "sky",  # 0
    "building",  # 1
    "window",  # 2
    "door",  # 3
    "road",  # 4
    "vegetation",  # 5  trees and bushes
    "car",  # 6
    "sidewalk",  # 7
    "roof",  # 8
]

PALETTE: list[tuple[int, int, int]] = [
    (70, 130, 180),  # sky: steel blue
    (90, 90, 90),  # building: grey
    (0, 220, 220),  # window: cyan
    (255, 160, 0),  # door: orange
    (128, 64, 128),  # road: purple
    (107, 142, 35),  # vegetation: olive green
    (0, 0, 142),  # car: dark blue
    (244, 35, 232),  # sidewalk: magenta
    (180, 60, 40),  # roof: brick red
]

SKY, BUILDING, WINDOW, DOOR, ROAD, VEGETATION, CAR, SIDEWALK, ROOF = range(9)
THING_CLASSES: list[str] = ["window", "door", "vegetation", "car"]
THING_IDS: list[int] = [CLASSES.index(c) for c in THING_CLASSES]
LABEL_NC: int = len(CLASSES)
INSTANCE_CONVENTION = (
    "Cityscapes: pixels of a thing class (window, door, vegetation = trees/bushes, car) store "
    "class_id * 1000 + k, k = 0, 1, 2, ... numbering the instances of that class within the image; "
    "pixels of a stuff class store class_id (< 1000). class = id // 1000 if id >= 1000 else id."
)

_PALETTE_ARR = np.zeros((256, 3), np.uint8)
_PALETTE_ARR[: len(PALETTE)] = np.asarray(PALETTE, np.uint8)


def colorize(label: np.ndarray) -> np.ndarray:
    """Colour-code a class-id map (HxW integers) with :data:`PALETTE` -> HxWx3 ``uint8``."""
    return _PALETTE_ARR[np.asarray(label).astype(np.intp) & 255]


def instance_to_class(inst: np.ndarray) -> np.ndarray:
    """Class ids of a Cityscapes-convention instance map (``id // 1000`` for ids >= 1000)."""
    inst = np.asarray(inst).astype(np.int64)
    return np.where(inst >= 1000, inst // 1000, inst)


# --------------------------------------------------------------------------------------------
# noise helpers
# --------------------------------------------------------------------------------------------


def _vnoise(rng: np.random.Generator, h: int, w: int, cy: float, cx: float | None = None) -> np.ndarray:
    """Smooth value noise in [0, 1] of shape (h, w) with cell size (cy, cx) in pixels."""
    cx = cy if cx is None else cx
    cy, cx = max(float(cy), 0.5), max(float(cx), 0.5)
    gh, gw = int(h / cy) + 3, int(w / cx) + 3
    g = rng.random((gh, gw), dtype=np.float32)
    ys = np.arange(h, dtype=np.float32) / cy + np.float32(rng.random())
    xs = np.arange(w, dtype=np.float32) / cx + np.float32(rng.random())
    y0 = ys.astype(np.intp)
    x0 = xs.astype(np.intp)
    fy = ys - y0
    fx = xs - x0
    fy = (fy * fy * (3 - 2 * fy))[:, None]
    fx = fx * fx * (3 - 2 * fx)
    r = g[y0] * (1 - fy) + g[y0 + 1] * fy
    return r[:, x0] * (1 - fx) + r[:, x0 + 1] * fx


class _Noise:
    """Full-frame noise fields shared by all objects of one scene (sampled by slicing)."""

    def __init__(self, rng: np.random.Generator, h: int, w: int, s: float):
        self.fine = rng.random((h, w), dtype=np.float32)
        self.grain = _vnoise(rng, h, w, max(1.2, 2.0 * s))
        self.med = 0.65 * _vnoise(rng, h, w, 9 * s) + 0.35 * _vnoise(rng, h, w, 4 * s)
        self.large = 0.7 * _vnoise(rng, h, w, 45 * s, 90 * s) + 0.3 * _vnoise(rng, h, w, 16 * s, 30 * s)
        self.vert = _vnoise(rng, h, w, 28 * s, 1.6 * s)
        self.horiz = _vnoise(rng, h, w, 1.6 * s, 24 * s)


# --------------------------------------------------------------------------------------------
# canvas
# --------------------------------------------------------------------------------------------


class _Canvas:
    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.label = np.zeros((h, w), np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.photo = np.zeros((h, w, 3), np.float32)
        self.counters = {c: 0 for c in THING_IDS}

    def box(self, y0: float, y1: float, x0: float, x1: float):
        """Clip a float box to the canvas -> (slices, yy, xx) with pixel-centre coordinates."""
        ya, yb = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), self.h)
        xa, xb = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), self.w)
        if ya >= yb or xa >= xb:
            return None
        yy = np.arange(ya, yb, dtype=np.float32)[:, None] + np.float32(0.5)
        xx = np.arange(xa, xb, dtype=np.float32)[None, :] + np.float32(0.5)
        return (slice(ya, yb), slice(xa, xb)), yy, xx

    def new_id(self, cls: int) -> int:
        if cls not in self.counters:
            return cls
        k = self.counters[cls]
        self.counters[cls] = k + 1
        return cls * 1000 + min(k, 999)

    def paint(self, sl, mask: np.ndarray, cls: int, iid: int, tex) -> bool:
        """Paint ``mask`` (bbox-local) with class/instance ids and texture (bbox HxWx3 or RGB)."""
        if not mask.any():
            return False
        self.label[sl][mask] = cls
        self.inst[sl][mask] = iid
        tex = np.asarray(tex, np.float32)
        if tex.ndim == 1:
            self.photo[sl][mask] = tex
        else:
            self.photo[sl][mask] = tex[mask]
        return True


def _rect(yy, xx, y0, y1, x0, x1):
    return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def _jitter(rng, c, amount):
    return np.clip(np.asarray(c, np.float32) + rng.uniform(-amount, amount, 3).astype(np.float32), 0, 1)


def _hsv(h, s, v):
    """Single HSV -> RGB colour (h in [0, 1))."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], np.float32)


# --------------------------------------------------------------------------------------------
# scene parts
# --------------------------------------------------------------------------------------------


def _sky(cv: _Canvas, rng, N: _Noise, horizon: float):
    h, w = cv.h, cv.w
    kind = rng.choice(["clear", "clear", "clear", "hazy", "sunset", "overcast"])
    top, hor = {
        "clear": ((0.22, 0.42, 0.78), (0.68, 0.80, 0.94)),
        "hazy": ((0.42, 0.56, 0.76), (0.84, 0.87, 0.90)),
        "sunset": ((0.28, 0.32, 0.58), (0.98, 0.68, 0.42)),
        "overcast": ((0.56, 0.59, 0.64), (0.78, 0.79, 0.81)),
    }[str(kind)]
    top, hor = _jitter(rng, top, 0.05), _jitter(rng, hor, 0.05)
    t = np.clip(np.arange(h, dtype=np.float32) / max(horizon, 1.0), 0, 1)[:, None, None] ** 0.8
    sky = top * (1 - t) + hor * t
    sky = np.broadcast_to(sky, (h, w, 3))
    c = 0.75 * N.large + 0.25 * N.med
    cover = rng.uniform(0.42, 0.72) if kind != "overcast" else rng.uniform(0.3, 0.5)
    alpha = np.clip((c - cover) / rng.uniform(0.08, 0.2), 0, 1) * rng.uniform(0.55, 0.95)
    cloud = np.float32(0.97) if kind != "sunset" else _jitter(rng, (1.0, 0.82, 0.7), 0.03)
    shade = (0.78 + 0.22 * (1 - N.med))[..., None]
    cloud = cloud * shade
    a = alpha[..., None]
    cv.photo[:] = sky * (1 - a) + cloud * a
    cv.label[:] = SKY
    cv.inst[:] = SKY


def _ground(cv: _Canvas, rng, N: _Noise, y_sw: int, y_road: int, s: float):
    h, w = cv.h, cv.w
    # sidewalk: paving tiles
    b = cv.box(y_sw, y_road, 0, w)
    if b is not None:
        sl, yy, xx = b
        base = _jitter(rng, rng.choice([(0.62, 0.60, 0.57), (0.55, 0.55, 0.56), (0.66, 0.58, 0.50)]), 0.04)
        tw = h * rng.uniform(0.035, 0.07)
        th = max(2.0, (y_road - y_sw) / rng.integers(1, 4))
        off = rng.uniform(0, tw)
        lines = (((xx + off + (yy - y_sw) * 0.6) % tw) < max(1.0, s)) | (((yy - y_sw) % th) < max(1.0, 0.8 * s))
        lum = 0.9 + 0.12 * N.grain[sl] + 0.08 * (N.med[sl] - 0.5)
        lum = np.where(lines, lum * 0.78, lum)
        kerb = yy >= y_road - max(1.0, 2 * s)
        lum = np.where(kerb, lum * 1.12, lum)
        cv.paint(sl, np.ones(lum.shape, bool), SIDEWALK, SIDEWALK, base * lum[..., None])
    # road: asphalt with lane markings
    b = cv.box(y_road, h, 0, w)
    if b is not None:
        sl, yy, xx = b
        g = rng.uniform(0.22, 0.4)
        base = _jitter(rng, (g, g, g * rng.uniform(0.98, 1.08)), 0.02)
        lum = 0.8 + 0.2 * N.grain[sl] + 0.18 * (N.med[sl] - 0.5) + 0.1 * (N.fine[sl] - 0.5)
        lum = lum * (1 + 0.12 * (yy - y_road) / max(h - y_road, 1))  # a bit lighter near the viewer
        tex = base * lum[..., None]
        if rng.random() < 0.85:
            y_lane = y_road + (h - y_road) * rng.uniform(0.35, 0.55)
            lt = max(1.0, h * rng.uniform(0.008, 0.014))
            period = h * rng.uniform(0.18, 0.3)
            dash = period * rng.uniform(0.4, 0.65) if rng.random() < 0.8 else period
            lane = (np.abs(yy - y_lane) < lt / 2 + 0.01) & (((xx + rng.uniform(0, period)) % period) < dash)
            col = (0.9, 0.9, 0.86) if rng.random() < 0.7 else (0.88, 0.72, 0.2)
            tex = np.where(lane[..., None], np.asarray(col, np.float32) * (0.85 + 0.15 * N.grain[sl])[..., None], tex)
        cv.paint(sl, np.ones(tex.shape[:2], bool), ROAD, ROAD, tex)


_FACADE_COLOURS = [
    (0.82, 0.76, 0.62),  # sandstone / beige
    (0.88, 0.85, 0.78),  # cream
    (0.62, 0.30, 0.22),  # red brick
    (0.52, 0.36, 0.26),  # brown brick
    (0.58, 0.58, 0.58),  # concrete
    (0.45, 0.47, 0.50),  # dark grey
    (0.86, 0.74, 0.46),  # ochre
    (0.62, 0.72, 0.78),  # pastel blue
    (0.84, 0.62, 0.58),  # pastel pink
    (0.66, 0.74, 0.60),  # pastel green
    (0.92, 0.92, 0.90),  # white
]
_FRAME_COLOURS = [(0.92, 0.92, 0.9), (0.28, 0.2, 0.14), (0.12, 0.12, 0.13), (0.55, 0.56, 0.58), (0.3, 0.4, 0.3)]
_GLASS_COLOURS = [(0.12, 0.16, 0.22), (0.35, 0.48, 0.6), (0.2, 0.26, 0.3), (0.08, 0.09, 0.1), (0.28, 0.36, 0.38)]
_DOOR_COLOURS = [(0.4, 0.24, 0.12), (0.3, 0.18, 0.1), (0.12, 0.3, 0.18), (0.55, 0.12, 0.1), (0.12, 0.2, 0.42), (0.1, 0.1, 0.1)]
_ROOF_COLOURS = [(0.55, 0.24, 0.16), (0.3, 0.32, 0.36), (0.38, 0.26, 0.2), (0.36, 0.55, 0.46), (0.22, 0.22, 0.24)]


def _window(cv: _Canvas, rng, N: _Noise, y0, y1, x0, x1, style: dict, shop: bool = False):
    b = cv.box(y0, y1, x0, x1)
    if b is None:
        return
    sl, yy, xx = b
    mask = _rect(yy, xx, y0, y1, x0, x1)
    if not mask.any():
        return
    wh, ww = y1 - y0, x1 - x0
    u = (xx - x0) / max(ww, 1e-3)
    v = (yy - y0) / max(wh, 1e-3)
    glass = _jitter(rng, style["glass"], 0.06) * rng.uniform(0.75, 1.3)
    r = rng.random()
    if r < 0.08:  # lit window
        glass = _jitter(rng, (0.95, 0.82, 0.5), 0.05)
    # reflection: a diagonal bright band plus a vertical sky gradient
    c = rng.uniform(-0.2, 1.0)
    refl = np.exp(-(((u - 0.5 * v - c) / 0.18) ** 2)) * style["refl"] * rng.uniform(0.5, 1.2)
    grad = 1.0 + 0.35 * (0.5 - v) * style["refl"]
    tex = glass * (grad + 0.05 * (N.grain[sl] - 0.5))[..., None] + (refl * 0.45)[..., None]
    if r > 0.8 and not shop:  # curtain
        cur = _jitter(rng, rng.choice([(0.85, 0.82, 0.75), (0.7, 0.3, 0.25), (0.75, 0.75, 0.8)]), 0.05)
        cut = v < rng.uniform(0.25, 0.7)
        side = (u < rng.uniform(0.1, 0.35)) | (u > rng.uniform(0.65, 0.9))
        cm = cut | side if rng.random() < 0.5 else cut
        tex = np.where(cm[..., None], cur * (0.85 + 0.2 * N.vert[sl])[..., None], tex)
    # frame and mullions
    t = max(1.0, min(ww, wh) * style["frame"])
    frame = (yy - y0 < t) | (y1 - yy < t) | (xx - x0 < t) | (x1 - xx < t)
    if style["mullion"] and ww > 4 * t:
        frame |= np.abs(xx - (x0 + x1) / 2) < t * 0.5
        if style["mullion"] == 2 and wh > 5 * t:
            frame |= np.abs(yy - (y0 + wh * 0.33)) < t * 0.5
    if shop and ww > 8 * t:
        frame |= np.abs(yy - (y0 + wh * 0.22)) < t * 0.5
    fcol = _jitter(rng, style["frame_col"], 0.03)
    tex = np.where(frame[..., None], fcol * (0.9 + 0.1 * N.grain[sl])[..., None], tex)
    # shadow of the reveal at the top
    tex = tex * np.where((yy - y0 < 2.5 * t) & ~frame, 0.8, 1.0)[..., None]
    cv.paint(sl, mask, WINDOW, cv.new_id(WINDOW), tex)


def _door(cv: _Canvas, rng, N: _Noise, y0, y1, x0, x1, s: float):
    b = cv.box(y0, y1, x0, x1)
    if b is None:
        return
    sl, yy, xx = b
    mask = _rect(yy, xx, y0, y1, x0, x1)
    if not mask.any():
        return
    dh, dw = y1 - y0, x1 - x0
    col = _jitter(rng, _DOOR_COLOURS[rng.integers(len(_DOOR_COLOURS))], 0.05) * rng.uniform(0.8, 1.2)
    lum = 0.85 + 0.25 * N.vert[sl] + 0.05 * (N.grain[sl] - 0.5)
    tex = col * lum[..., None]
    t = max(1.0, dw * 0.08)
    # recessed panels
    if dw > 6 * t:
        m = t * 1.5
        half = dw / 2
        panels = np.zeros(mask.shape, bool)
        n_rows = int(rng.integers(1, 4))
        ph = (dh - 2 * t - (n_rows + 1) * m) / n_rows
        for i in range(n_rows):
            py = y0 + t + m + i * (ph + m)
            for px in (x0 + m, x0 + half + m / 2):
                panels |= _rect(yy, xx, py, py + ph, px, px + half - 1.5 * m)
        tex = np.where(panels[..., None], tex * 0.82, tex)
    if rng.random() < 0.4:  # glass pane in the upper part
        gl = _rect(yy, xx, y0 + t * 2, y0 + dh * 0.4, x0 + t * 2, x1 - t * 2)
        tex = np.where(gl[..., None], _jitter(rng, (0.2, 0.25, 0.3), 0.05), tex)
    frame = (yy - y0 < t) | (xx - x0 < t) | (x1 - xx < t)
    tex = np.where(frame[..., None], tex * 0.6, tex)
    # handle
    hx = x0 + dw * (0.82 if rng.random() < 0.5 else 0.18)
    hy = y0 + dh * 0.55
    handle = (np.abs(xx - hx) < max(0.8, 1.2 * s)) & (np.abs(yy - hy) < max(0.8, 1.5 * s))
    tex = np.where(handle[..., None], np.float32(0.85), tex)
    cv.paint(sl, mask, DOOR, cv.new_id(DOOR), tex)


def _facade_texture(rng, N: _Noise, sl, yy, xx, x0, top, base, style: str, s: float, h: int):
    if style == "brick" and h * 0.012 >= 2.2:
        bh = h * rng.uniform(0.011, 0.015)
        bw = bh * rng.uniform(2.0, 2.6)
        row = np.floor((yy - top) / bh)
        off = (row % 2) * bw / 2
        col = np.floor((xx - x0 + off) / bw)
        table = rng.uniform(-1, 1, (37, 41)).astype(np.float32)
        var = table[(row % 37).astype(np.intp), (col % 41).astype(np.intp)]
        mw = max(0.8, bh * 0.22)
        mortar = (((yy - top) % bh) < mw) | (((xx - x0 + off) % bw) < mw)
        lum = 1 + 0.1 * var + 0.08 * (N.grain[sl] - 0.5)
        tex = base * lum[..., None]
        mcol = _jitter(rng, (0.72, 0.7, 0.66), 0.04)
        return np.where(mortar[..., None], mcol * (0.9 + 0.1 * N.grain[sl])[..., None], tex)
    lum = 0.94 + 0.12 * (N.med[sl] - 0.5) + 0.07 * (N.grain[sl] - 0.5)
    tex = base * lum[..., None]
    if style == "panel":
        ph = h * rng.uniform(0.05, 0.09)
        pw = ph * rng.uniform(1.0, 2.5)
        joints = (((yy - top) % ph) < max(0.8, s)) | (((xx - x0) % pw) < max(0.8, s))
        tex = np.where(joints[..., None], tex * 0.8, tex)
    return tex


def _building(cv: _Canvas, rng, N: _Noise, x0: float, x1: float, top: float, y_sw: int, s: float):
    h = cv.h
    bw = x1 - x0
    base = _jitter(rng, _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))], 0.05) * rng.uniform(0.85, 1.1)
    style = str(rng.choice(["brick", "plaster", "plaster", "panel"]))
    if style == "brick" and rng.random() < 0.7:
        base = _jitter(rng, _FACADE_COLOURS[rng.integers(2, 4)], 0.05)

    # --- roof (painted first; the facade top edge stays sharp) ---
    if top > 1:
        ov = h * rng.uniform(0.0, 0.015)
        rcol = _jitter(rng, _ROOF_COLOURS[rng.integers(len(_ROOF_COLOURS))], 0.05)
        if rng.random() < 0.5:  # flat roof with a cornice
            ch = h * rng.uniform(0.012, 0.03)
            b = cv.box(top - ch, top, x0 - ov, x1 + ov)
            if b is not None:
                sl, yy, xx = b
                m = _rect(yy, xx, top - ch, top, x0 - ov, x1 + ov)
                col = rcol if rng.random() < 0.5 else base * 0.8
                lum = 0.9 + 0.1 * N.grain[sl] + 0.15 * (yy - (top - ch)) / ch
                cv.paint(sl, m, ROOF, ROOF, col * lum[..., None])
        else:  # pitched roof (trapezoid or gable) with tiles
            rh = h * rng.uniform(0.04, 0.12)
            tw = bw * rng.uniform(0.0, 0.75)
            cx = (x0 + x1) / 2
            b = cv.box(top - rh, top, x0 - ov, x1 + ov)
            if b is not None:
                sl, yy, xx = b
                f = np.clip((top - yy) / rh, 0, 1)  # 0 at eave, 1 at ridge
                half = (bw / 2 + ov) * (1 - f) + tw / 2 * f
                m = (yy >= top - rh) & (yy < top) & (np.abs(xx - cx) < half)
                th = max(1.5, h * rng.uniform(0.008, 0.014))
                rows = ((yy - top) % th) < max(0.7, th * 0.25)
                lum = 0.85 + 0.2 * N.horiz[sl] + 0.1 * (N.grain[sl] - 0.5) + 0.15 * f
                lum = np.where(rows, lum * 0.72, lum)
                cv.paint(sl, m, ROOF, ROOF, rcol * lum[..., None])
                if rng.random() < 0.45:  # chimney
                    chx = cx + rng.uniform(-0.3, 0.3) * bw
                    chw = h * rng.uniform(0.015, 0.03)
                    chy0 = top - rh * rng.uniform(0.8, 1.2) - h * 0.02
                    b2 = cv.box(chy0, top - rh * 0.2, chx - chw / 2, chx + chw / 2)
                    if b2 is not None:
                        sl2, yy2, xx2 = b2
                        m2 = _rect(yy2, xx2, chy0, top - rh * 0.2, chx - chw / 2, chx + chw / 2)
                        ccol = _jitter(rng, (0.5, 0.3, 0.24), 0.06)
                        cv.paint(sl2, m2, ROOF, ROOF, ccol * (0.85 + 0.2 * N.grain[sl2])[..., None])

    # --- facade ---
    b = cv.box(top, y_sw, x0, x1)
    if b is None:
        return
    sl, yy, xx = b
    m = _rect(yy, xx, top, y_sw, x0, x1)
    tex = _facade_texture(rng, N, sl, yy, xx, x0, top, base, style, s, h)
    weather = rng.uniform(0.0, 0.18)
    shade = (1 - weather * N.vert[sl]) * (1 - 0.1 * (yy - top) / max(y_sw - top, 1))
    shade = shade * (1 + rng.uniform(-0.08, 0.08) * ((xx - x0) / max(bw, 1) - 0.5))
    tex = tex * shade[..., None]

    gfh = h * rng.uniform(0.09, 0.13)  # ground floor height
    fh = h * rng.uniform(0.065, 0.1)  # upper floor height
    ground_top = y_sw - gfh
    if rng.random() < 0.4:  # distinct ground floor (shop front / stone)
        gcol = _jitter(rng, _FACADE_COLOURS[rng.integers(len(_FACADE_COLOURS))], 0.05) * 0.85
        g = yy >= ground_top
        tex = np.where(g[..., None], gcol * (0.92 + 0.1 * N.med[sl])[..., None], tex)
    plinth = yy >= y_sw - gfh * rng.uniform(0.08, 0.16)
    tex = np.where(plinth[..., None], tex * 0.7, tex)
    n_up = max(0, int((ground_top - top - fh * 0.35) / fh))
    if rng.random() < 0.5:  # string courses between floors
        sc = max(1.0, h * 0.006)
        course = np.zeros(m.shape, bool)
        for i in range(n_up + 1):
            yc = ground_top - i * fh
            course |= (yy >= yc - sc) & (yy < yc)
        tex = np.where(course[..., None], tex * 1.15 + 0.05, tex)
    cv.paint(sl, m, BUILDING, BUILDING, tex)

    # --- windows ---
    ncol = max(1, int(bw / (h * rng.uniform(0.055, 0.1))))
    cs = bw / ncol
    ww = cs * rng.uniform(0.38, 0.65)
    wh = fh * rng.uniform(0.45, 0.7)
    wstyle = {
        "glass": _GLASS_COLOURS[rng.integers(len(_GLASS_COLOURS))],
        "frame_col": _FRAME_COLOURS[rng.integers(len(_FRAME_COLOURS))],
        "frame": rng.uniform(0.06, 0.14),
        "mullion": int(rng.choice([0, 1, 2])),
        "refl": rng.uniform(0.3, 1.0),
    }
    sill = rng.random() < 0.6
    sill_h = max(1.0, h * 0.008)
    sill_col = _jitter(rng, base * 1.15 + 0.05, 0.03)
    skip_p = rng.choice([0.0, 0.0, 0.05, 0.12])
    dy = rng.uniform(-0.08, 0.08) * fh
    for i in range(n_up):
        yc = ground_top - (i + 0.5) * fh + dy
        for j in range(ncol):
            if rng.random() < skip_p:
                continue
            xc = x0 + (j + 0.5) * cs
            wy0, wy1, wx0, wx1 = yc - wh / 2, yc + wh / 2, xc - ww / 2, xc + ww / 2
            if wy0 < top + 1:
                continue
            if sill:
                bs = cv.box(wy1, wy1 + sill_h, wx0 - ww * 0.08, wx1 + ww * 0.08)
                if bs is not None:
                    sl2, yy2, xx2 = bs
                    ms = _rect(yy2, xx2, wy1, wy1 + sill_h, wx0 - ww * 0.08, wx1 + ww * 0.08) & (
                        cv.label[sl2] == BUILDING
                    )
                    cv.paint(sl2, ms, BUILDING, BUILDING, sill_col)
            _window(cv, rng, N, wy0, wy1, wx0, wx1, wstyle)

    # --- ground floor: doors and shop windows / windows ---
    n_doors = 1 if ncol < 4 else int(rng.integers(1, 3))
    door_cols = set(rng.choice(ncol, size=min(n_doors, ncol), replace=False).tolist())
    if rng.random() < 0.1 and ncol >= 2:
        door_cols = set()  # a building without a visible door
    shop = rng.random() < 0.4
    for j in range(ncol):
        xc = x0 + (j + 0.5) * cs
        if j in door_cols:
            dw = min(cs * 0.85, max(ww * rng.uniform(1.0, 1.4), h * 0.03))
            dh = gfh * rng.uniform(0.68, 0.88)
            _door(cv, rng, N, y_sw - dh, y_sw, xc - dw / 2, xc + dw / 2, s)
        elif shop:
            sw = cs * rng.uniform(0.7, 0.88)
            sh = gfh * rng.uniform(0.55, 0.7)
            sb = y_sw - gfh * rng.uniform(0.1, 0.18)
            _window(cv, rng, N, sb - sh, sb, xc - sw / 2, xc + sw / 2, wstyle, shop=True)
        elif rng.random() < 0.85:
            yc = ground_top + gfh * 0.45
            _window(cv, rng, N, yc - wh / 2, yc + wh / 2, xc - ww / 2, xc + ww / 2, wstyle)


def _tree(cv: _Canvas, rng, N: _Noise, cx: float, y_base: float, s: float):
    h = cv.h
    iid = cv.new_id(VEGETATION)
    th = h * rng.uniform(0.07, 0.18)
    R = h * rng.uniform(0.07, 0.15)
    tw = max(1.5, h * rng.uniform(0.012, 0.025))
    ccy = y_base - th - R * 0.55
    # trunk
    b = cv.box(ccy, y_base, cx - tw / 2, cx + tw / 2)
    if b is not None:
        sl, yy, xx = b
        m = _rect(yy, xx, ccy, y_base, cx - tw / 2, cx + tw / 2)
        col = _jitter(rng, (0.3, 0.22, 0.15), 0.04)
        lum = 0.75 + 0.35 * N.vert[sl] + 0.15 * (xx - cx) / tw
        cv.paint(sl, m, VEGETATION, iid, col * lum[..., None])
    # canopy: union of ellipses with a noisy boundary
    k = int(rng.integers(4, 8))
    ex = cx + R * 0.55 * rng.standard_normal(k)
    ey = ccy + R * 0.35 * rng.standard_normal(k)
    rx = R * rng.uniform(0.5, 0.8, k)
    ry = rx * rng.uniform(0.7, 1.0, k)
    b = cv.box((ey - ry).min() - 2, (ey + ry).max() + 2, (ex - rx).min() - 2, (ex + rx).max() + 2)
    if b is None:
        return
    sl, yy, xx = b
    f = np.full(yy.shape[0:1] + xx.shape[1:2], -1.0, np.float32)
    for i in range(k):
        f = np.maximum(f, 1 - ((xx - ex[i]) / rx[i]) ** 2 - ((yy - ey[i]) / ry[i]) ** 2)
    f = f + 0.45 * (N.grain[sl] - 0.5) + 0.3 * (N.med[sl] - 0.5)
    m = f > 0
    r = rng.random()
    if r < 0.12:  # autumn
        col = _jitter(rng, (0.7, 0.42, 0.12), 0.08)
    elif r < 0.25:  # dark conifer-like
        col = _jitter(rng, (0.12, 0.3, 0.14), 0.04)
    else:
        col = _jitter(rng, (0.25, 0.45, 0.16), 0.08)
    lum = 0.5 + 0.55 * N.grain[sl] + 0.3 * (N.med[sl] - 0.5)
    lum = lum * np.clip(1 + 0.3 * (ccy - yy) / R, 0.6, 1.4)
    lum = np.where(N.fine[sl] < 0.06, lum * 0.5, lum)
    cv.paint(sl, m, VEGETATION, iid, col * lum[..., None])


def _bush(cv: _Canvas, rng, N: _Noise, cx: float, cy: float, s: float):
    h = cv.h
    rx = h * rng.uniform(0.04, 0.1)
    ry = rx * rng.uniform(0.4, 0.7)
    b = cv.box(cy - ry - 2, cy + ry * 0.4, cx - rx - 2, cx + rx + 2)
    if b is None:
        return
    sl, yy, xx = b
    f = 1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2 + 0.4 * (N.grain[sl] - 0.5) + 0.25 * (N.med[sl] - 0.5)
    m = (f > 0) & (yy < cy + ry * 0.4)
    col = _jitter(rng, (0.2, 0.4, 0.14), 0.07)
    lum = (0.5 + 0.55 * N.grain[sl]) * np.clip(1 + 0.3 * (cy - yy) / ry, 0.6, 1.4)
    cv.paint(sl, m, VEGETATION, cv.new_id(VEGETATION), col * lum[..., None])


_CAR_COLOURS = [
    (0.92, 0.92, 0.92),
    (0.08, 0.08, 0.09),
    (0.65, 0.67, 0.7),
    (0.4, 0.41, 0.43),
    (0.7, 0.08, 0.08),
    (0.1, 0.2, 0.55),
    (0.1, 0.3, 0.18),
    (0.9, 0.75, 0.1),
]


def _car(cv: _Canvas, rng, N: _Noise, x0: float, yb: float, L: float):
    flip = rng.random() < 0.5
    body_h = rng.uniform(0.16, 0.24)
    cab_h = rng.uniform(0.11, 0.16)
    wr = rng.uniform(0.08, 0.095)  # wheel radius (in car lengths)
    b_lo = wr * 0.55
    b_hi = b_lo + body_h
    c_hi = b_hi + cab_h
    rear_b, rear_t = rng.uniform(0.03, 0.16), rng.uniform(0.12, 0.3)
    front_b, front_t = rng.uniform(0.74, 0.86), rng.uniform(0.6, 0.72)
    b = cv.box(yb - c_hi * L - 1, yb + 1, x0 - 1, x0 + L + 1)
    if b is None:
        return
    sl, yy, xx = b
    u = (xx - x0) / L
    if flip:
        u = 1 - u
    v = (yb - yy) / L
    # road shadow under the car (label stays road)
    sh = ((u - 0.5) / 0.56) ** 2 + ((v - 0.005) / 0.035) ** 2 < 1
    cv.photo[sl] *= np.where(sh, 0.45, 1.0)[..., None]
    # body: rounded rectangle
    rr = 0.06
    dx = np.maximum(np.abs(u - 0.5) - (0.5 - rr), 0)
    dy = np.maximum(np.abs(v - (b_lo + b_hi) / 2) - (body_h / 2 - rr), 0)
    body = (dx * dx + dy * dy <= rr * rr) & (np.abs(u - 0.5) <= 0.5) & (np.abs(v - (b_lo + b_hi) / 2) <= body_h / 2)
    f = np.clip((v - b_hi) / cab_h, 0, 1)
    ul = rear_b * (1 - f) + rear_t * f
    ur = front_b * (1 - f) + front_t * f
    cabin = (v >= b_hi - 0.01) & (v < c_hi) & (u > ul) & (u < ur)
    wc = (0.18, 0.82)
    shape = (yy.shape[0], xx.shape[1])
    wheels = np.zeros(shape, bool)
    hubs = np.zeros(shape, bool)
    for wx in wc:
        d2 = (u - wx) ** 2 + (v - wr) ** 2
        wheels |= d2 < wr * wr
        hubs |= d2 < (wr * 0.5) ** 2
    mask = body | cabin | wheels
    if not mask.any():
        return
    col = _jitter(rng, _CAR_COLOURS[rng.integers(len(_CAR_COLOURS))], 0.04)
    if rng.random() < 0.25:
        col = _hsv(rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.3, 0.9))
    # paint shading: highlight line below the belt, darker towards the sill
    vb = (v - b_lo) / body_h
    lum = 0.72 + 0.3 * vb + 0.25 * np.exp(-(((vb - 0.8) / 0.08) ** 2)) + 0.04 * (N.grain[sl] - 0.5)
    tex = col * lum[..., None] + (0.05 * np.exp(-(((vb - 0.8) / 0.05) ** 2)))[..., None]
    # door seams, bumpers, lights
    px = 1.0 / L
    seam = (np.abs(u - rng.uniform(0.45, 0.55)) < 0.6 * px) & (v > b_lo + 0.03) & (v < b_hi - 0.01)
    tex = np.where(seam[..., None], tex * 0.55, tex)
    bumper = body & (v < b_lo + 0.035) & ((u < 0.12) | (u > 0.88))
    tex = np.where(bumper[..., None], np.float32(0.18), tex)
    lights_y = (v > b_hi - 0.07) & (v < b_hi - 0.035)
    head = lights_y & (u > 0.965)
    tail = lights_y & (u < 0.03)
    tex = np.where(head[..., None], np.asarray((0.98, 0.95, 0.78), np.float32), tex)
    tex = np.where(tail[..., None], np.asarray((0.75, 0.08, 0.06), np.float32), tex)
    # cabin: roof pillars in body colour, glass inside
    inset = 0.018
    glass = (v > b_hi + inset * 0.5) & (v < c_hi - inset) & (u > ul + inset) & (u < ur - inset)
    glass &= np.abs(u - (ul + ur) / 2 - 0.02) > 0.015  # B-pillar
    gcol = _jitter(rng, (0.14, 0.17, 0.22), 0.04)
    glum = 0.8 + 0.6 * np.exp(-(((u + (v - b_hi) * 2 - rng.uniform(0.2, 1.0)) / 0.12) ** 2))
    tex = np.where(cabin[..., None], col * 0.9, tex)
    tex = np.where(glass[..., None], gcol * glum[..., None], tex)
    # wheels on top
    tex = np.where(wheels[..., None], np.float32(0.07) + 0.04 * N.grain[sl][..., None], tex)
    tex = np.where(hubs[..., None], np.float32(rng.uniform(0.4, 0.75)), tex)
    cv.paint(sl, mask, CAR, cv.new_id(CAR), tex)


# --------------------------------------------------------------------------------------------
# scene
# --------------------------------------------------------------------------------------------


def render_scene(rng: np.random.Generator, size: int, width: int | None = None):
    """Draw one random street scene.

    Returns ``(label, inst, photo)``: ``uint8`` HxW class ids, ``int32`` HxW instance ids
    (Cityscapes convention, see module docstring) and a ``uint8`` HxWx3 RGB photo, with
    ``H = size`` and ``W = width`` (default ``size``).
    """
    h = int(size)
    w = int(size if width is None else width)
    if h < 8 or w < 8:
        raise ValueError(f"scene size too small: {h}x{w} (need at least 8x8)")
    s = h / 256.0
    cv = _Canvas(h, w)
    N = _Noise(rng, h, w, s)

    y_sw = int(round(h * rng.uniform(0.62, 0.77)))
    y_road = min(h - 2, int(round(y_sw + h * rng.uniform(0.04, 0.09))))
    _sky(cv, rng, N, y_sw)
    _ground(cv, rng, N, y_sw, y_road, s)

    # buildings, left to right, sometimes with gaps
    x = -h * rng.uniform(0.0, 0.15)
    while x < w:
        if rng.random() < 0.2:
            x += h * rng.uniform(0.03, 0.15)
            continue
        bw = h * rng.uniform(0.22, 0.6)
        if rng.random() < 0.12:
            top = -h * 0.05  # tall building, cut by the frame
        else:
            top = y_sw - h * rng.uniform(0.28, 0.62)
        top = max(top, -h * 0.05)
        _building(cv, rng, N, x, x + bw, top, y_sw, s)
        x += bw

    # bushes at the foot of the buildings, trees on the sidewalk
    for _ in range(int(rng.integers(0, 4) * w / h + 0.5)):
        _bush(cv, rng, N, rng.uniform(0, w), y_sw + (y_road - y_sw) * rng.uniform(0.1, 0.4), s)
    n_trees = int(rng.integers(0, 4) * w / h + 0.5)
    for cx in np.sort(rng.uniform(0, w, n_trees)):
        _tree(cv, rng, N, cx, y_sw + (y_road - y_sw) * rng.uniform(0.4, 0.9), s)

    # cars on the road, far (higher) ones first
    n_cars = int(rng.integers(0, 4) * w / h + 0.5)
    if n_cars:
        ybs = np.sort(rng.uniform(y_road + 0.35 * (h - y_road), h - 1, n_cars))
        for yb in ybs:
            p = 0.85 + 0.35 * (yb - y_road) / max(h - y_road, 1)
            L = h * rng.uniform(0.3, 0.42) * p
            _car(cv, rng, N, rng.uniform(-0.25 * L, w - 0.75 * L), yb, L)

    # global lighting: exposure, white balance, side light, gamma, sensor noise
    photo = cv.photo
    gain = rng.uniform(0.8, 1.15) * (1 + rng.uniform(-0.06, 0.06, 3)).astype(np.float32)
    side = 1 + rng.uniform(-0.15, 0.15) * (np.arange(w, dtype=np.float32) / w - 0.5)
    photo *= gain.astype(np.float32)
    photo *= side[None, :, None]
    np.clip(photo, 0, 1, out=photo)
    photo **= np.float32(rng.uniform(0.85, 1.15))
    photo += (N.fine[..., None] - 0.5) * np.float32(rng.uniform(0.0, 0.04))
    out = np.clip(photo * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv.label, cv.inst, out


# --------------------------------------------------------------------------------------------
# data set writer
# --------------------------------------------------------------------------------------------

_SPLITS = ("train", "val", "test")


def _split_counts(n: int, splits) -> dict[str, int]:
    fr = np.asarray(splits, np.float64)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"splits must be three non-negative fractions, got {splits!r}")
    fr = fr / fr.sum()
    n_train = int(round(n * fr[0]))
    n_val = min(int(round(n * fr[1])), n - n_train)
    return {"train": n_train, "val": n_val, "test": n - n_train - n_val}


def _save_png(arr: np.ndarray, path: Path) -> None:
    atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format="PNG", compress_level=1))


def _write_one(job) -> None:
    root, seed, idx, split, size, width, name = job
    root = Path(root)
    label, inst, photo = render_scene(np.random.default_rng([seed, idx]), size, width)
    _save_png(np.concatenate([colorize(label), photo], axis=1), root / "aligned" / split / name)
    _save_png(label, root / f"{split}_label" / name)
    _save_png(inst.astype(np.uint16), root / f"{split}_inst" / name)
    _save_png(photo, root / f"{split}_img" / name)


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)


_README = """# pairgan synthetic street scenes

Procedurally generated street/facade scenes (label map -> photo), {n} images of {h}x{w}
(height x width), seed {seed}. Image `NNNN` is drawn from `numpy.random.default_rng([seed, NNNN])`,
so the same seed and index always give the same files. File names are the global image index.

Splits: {counts}.

## Layouts

* `aligned/{{train,val,test}}/NNNN.png` -- pix2pix aligned pairs, width 2*W: the colour-coded
  label map (A, left) | the photo (B, right); label -> photo is `AtoB`.
* `{{train,val,test}}_label/NNNN.png` -- class ids, 8-bit grey (mode L).
* `{{train,val,test}}_inst/NNNN.png` -- instance ids, 16-bit grey (mode I;16).
* `{{train,val,test}}_img/NNNN.png` -- RGB photos.
* `classes.json` -- class names, palette, `label_nc`, instance convention.

## Classes ({label_nc})

{classes}

Instance ids: {convention}
"""


def synth_scenes(
    out: str | Path,
    n: int = 500,
    size: int = 256,
    seed: int = 0,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    aspect: float = 1.0,
    workers: int | None = None,
) -> dict:
    """Write ``n`` synthetic street scenes of height ``size`` to ``out`` in two layouts.

    Width is ``round(size * aspect)``. Images are split in index order into train / val / test
    by the fractions ``splits``. ``workers`` processes draw the images (default: up to 2 when
    ``n >= 32``, else 1). Returns ``{"root", "counts", "paths", "classes_json", "readme"}``
    where ``counts`` maps split -> number of images and ``paths[split]`` maps ``aligned``,
    ``label``, ``inst`` and ``img`` to that split's folder.
    """
    n = int(n)
    size = int(size)
    if n < 1:
        raise ValueError(f"--n {n}: expected at least 1 scene")
    width = int(round(size * float(aspect)))
    if size < 8 or width < 8:
        raise ValueError(f"image too small: {size}x{width}")
    root = Path(out)
    counts = _split_counts(n, splits)
    paths: dict[str, dict[str, str]] = {}
    for sp in _SPLITS:
        d = {
            "aligned": root / "aligned" / sp,
            "label": root / f"{sp}_label",
            "inst": root / f"{sp}_inst",
            "img": root / f"{sp}_img",
        }
        for p in d.values():
            p.mkdir(parents=True, exist_ok=True)
        paths[sp] = {k: str(v) for k, v in d.items()}

    digits = max(4, len(str(max(n - 1, 0))))
    jobs = []
    idx = 0
    for sp in _SPLITS:
        for _ in range(counts[sp]):
            jobs.append((str(root), int(seed), idx, sp, size, width, f"{idx:0{digits}d}.png"))
            idx += 1

    if workers is None:
        workers = min(2, os.cpu_count() or 1) if n >= 32 else 1
    workers = max(1, min(int(workers), max(n, 1)))
    if workers > 1:
        methods = mp.get_all_start_methods()
        ctx = mp.get_context("fork" if "fork" in methods else None)
        with ctx.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=max(1, min(16, n // (4 * workers)))):
                pass
    else:
        for job in jobs:
            _write_one(job)

    meta = {
        "classes": CLASSES,
        "palette": [list(c) for c in PALETTE],
        "label_nc": LABEL_NC,
        "thing_classes": THING_CLASSES,
        "thing_ids": THING_IDS,
        "instance_convention": INSTANCE_CONVENTION,
        "instance_divisor": 1000,
        "height": size,
        "width": width,
        "n": n,
        "seed": int(seed),
        "counts": counts,
        "direction": "AtoB",
        "generator": "pairgan.synth.scenes.synth_scenes",
    }
    _write_text(root / "classes.json", json.dumps(meta, indent=2) + "\n")
    classes_md = "\n".join(
        f"* {i} `{c}` rgb{PALETTE[i]}" + (" (thing)" if i in THING_IDS else "") for i, c in enumerate(CLASSES)
    )
    _write_text(
        root / "README.md",
        _README.format(
            n=n,
            h=size,
            w=width,
            seed=seed,
            counts=", ".join(f"{k} {v}" for k, v in counts.items()),
            label_nc=LABEL_NC,
            classes=classes_md,
            convention=INSTANCE_CONVENTION,
        ),
    )
    return {
        "root": str(root),
        "counts": counts,
        "paths": paths,
        "classes_json": str(root / "classes.json"),
        "readme": str(root / "README.md"),
    }
