"""Target transforms (``data.target_transform``): ``vivid``, the CRN reference's tone-mapped photos.

The CRN reference (CQFIO/PhotographicImageSynthesis) trains its 512p and 1024p models against
``RGB512Full_vivid`` / ``RGB1024Full_vivid`` photos, made offline by its
``optional_preprocessing/generate_vivid_images_*.m`` Matlab scripts (after Farbman et al.,
"Edge-Preserving Decompositions for Multi-Scale Tone and Detail Manipulation", SIGGRAPH 2008).
:func:`vivid` redoes those steps on one photo, in this order:

1. ``rgb = clip(photo, 0, 1) ** 0.75`` (the scripts' gamma 0.75);
2. sRGB -> CIELAB; ``L`` (0..100) is split into a fine base ``L0`` and a coarse base ``L1`` by
   edge-preserving smoothing with the WLS filter's parameters: ``lambda`` 0.125 and 0.5,
   ``alpha`` 1.2, affinities ``lambda / (|d log L|^alpha + 1e-4)`` between neighbouring pixels,
   computed from ``log(L + eps)`` as ``wlsFilter.m`` does by default;
3. three tone maps of ``tonemapLAB.m`` (detail ``L - L0``, medium ``L0 - L1`` and base ``L1``
   each through its rescaled sigmoid, the base around 56), with the scripts' parameters:
   fine ``(25, 1, 1)``, exposure 1.0; medium ``(1, 40, 1)``, 1.0; coarse ``(4, 1, 15)``, 1.1;
   gamma 1 (so no image-wide statistics enter), saturation 1.1 (``a`` and ``b`` times 1.1);
4. each back to sRGB (clipped to [0, 1]); the photo is the mean of the three.

Where it departs from the Matlab steps:

* No sparse solver: ``wlsFilter.m`` solves the 2-D WLS system (a five-point inhomogeneous
  Laplacian) exactly. Here the same energy, with the same affinities, is minimised by the fast
  global smoother of Min et al. (IEEE TIP 2014): exact 1-D WLS solves (tridiagonal, the Thomas
  algorithm, vectorised over lines) along rows, then columns, three times, with the smoothing
  weight split over the passes as ``1.5 * 4^(3 - t) / (4^3 - 1) * lambda``. It follows the
  WLS solution closely but not exactly (slightly anisotropic along strong diagonal edges).
* LAB uses the D65 white; Matlab's ``makecform('srgb2lab')`` adapts to its ICC D50 white. The
  round trip is the same; only the saturation scaling and the tone curve see slightly
  different ``a``, ``b`` (and no ``L``) values.
* The scripts resize the photo to the training size (``imresize``) and write 8-bit PNGs;
  pairgan applies the transform after its own resize/crop/flip, on the float image at the
  training resolution (the filters' scales are in pixels, so the resolution matters; the tone
  map is local, so a crop changes only its edge pixels), without rounding to 8 bits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TARGET_TRANSFORMS", "apply_target_transform", "edge_preserving_bases", "srgb_to_lab", "lab_to_srgb",
           "vivid"]

#: ``data.target_transform`` choices.
TARGET_TRANSFORMS: tuple[str, ...] = ("none", "vivid")

_GAMMA = 0.75
_WLS_LAMBDAS = (0.125, 0.5)
_WLS_ALPHA = 1.2
_WLS_SMALL = 1e-4
_SMOOTHER_PASSES = 3
_SATURATION = 1.1
#: (detail, medium, base) sigmoid slopes and exposure of the fine, medium and coarse tone maps.
_TONE_MAPS = ((25.0, 1.0, 1.0, 1.0), (1.0, 40.0, 1.0, 1.0), (4.0, 1.0, 15.0, 1.10))
_BASE_PIVOT = 56.0

_D65 = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_DELTA = 6.0 / 29.0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``H x W x 3`` sRGB in [0, 1] -> CIELAB (``L`` 0..100), D65 white, float64."""
    c = np.asarray(rgb, np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = (linear @ _RGB_TO_XYZ.T) / _D65
    f = np.where(t > _DELTA ** 3, np.cbrt(t), t / (3 * _DELTA ** 2) + 4.0 / 29.0)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> ``H x W x 3`` sRGB, clipped to [0, 1], float64."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0)) * _D65
    linear = np.clip(t @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(c, 0.0, 1.0)


def _solve_lines(f: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Exact 1-D WLS along axis 0: ``argmin_u sum (u - f)^2 + sum c_i (u_{i+1} - u_i)^2`` for every
    column of ``f`` (``n x B``; ``c``: ``(n - 1) x B`` couplings), by the Thomas algorithm."""
    n = f.shape[0]
    if n == 1:
        return f.copy()
    up = np.empty_like(c)  # the modified super-diagonal
    rhs = np.empty_like(f)
    denom = 1.0 + c[0]
    up[0] = -c[0] / denom
    rhs[0] = f[0] / denom
    for i in range(1, n):
        left = c[i - 1]
        diag = 1.0 + left + (c[i] if i < n - 1 else 0.0)
        denom = diag + left * up[i - 1]
        if i < n - 1:
            up[i] = -c[i] / denom
        rhs[i] = (f[i] + left * rhs[i - 1]) / denom
    u = np.empty_like(f)
    u[-1] = rhs[-1]
    for i in range(n - 2, -1, -1):
        u[i] = rhs[i] - up[i] * u[i + 1]
    return u


def edge_preserving_bases(lightness: np.ndarray, lambdas: tuple[float, ...] = _WLS_LAMBDAS,
                          alpha: float = _WLS_ALPHA, passes: int = _SMOOTHER_PASSES) -> np.ndarray:
    """``H x W`` LAB lightness -> ``len(lambdas) x H x W`` edge-preserving smoothings: the WLS
    energy of ``wlsFilter(L, lambda, alpha)`` (affinities from ``log(L + eps)``) minimised by
    ``passes`` rounds of row and column 1-D solves (the fast global smoother; see the module
    docstring)."""
    L = np.asarray(lightness, np.float64)
    guide = np.log(L + np.finfo(np.float64).eps)
    # affinities of vertical (dy) and horizontal (dx) neighbours, as wlsFilter.m's
    ay = 1.0 / (np.abs(np.diff(guide, axis=0)) ** alpha + _WLS_SMALL)  # (H-1) x W
    ax = 1.0 / (np.abs(np.diff(guide, axis=1)) ** alpha + _WLS_SMALL)  # H x (W-1)
    k = len(lambdas)
    lam = np.asarray(lambdas, np.float64)[:, None, None]
    u = np.broadcast_to(L, (k, *L.shape)).copy()
    for t in range(1, passes + 1):
        share = 1.5 * 4.0 ** (passes - t) / (4.0 ** passes - 1.0)
        # rows: the solve runs along width -> lay out as W x (k * H)
        cx = (lam * share * ax[None]).transpose(2, 0, 1).reshape(ax.shape[1], -1)
        u = _solve_lines(u.transpose(2, 0, 1).reshape(L.shape[1], -1), cx).reshape(L.shape[1], k, L.shape[0])
        u = u.transpose(1, 2, 0)
        # columns: along height -> H x (k * W)
        cy = (lam * share * ay[None]).transpose(1, 0, 2).reshape(ay.shape[0], -1)
        u = _solve_lines(u.transpose(1, 0, 2).reshape(L.shape[0], -1), cy).reshape(L.shape[0], k, L.shape[1])
        u = u.transpose(1, 0, 2)
    return u


def _sigmoid(x: np.ndarray, slope: float) -> np.ndarray:
    """tonemapLAB's sigmoid: ``1 / (1 + exp(-slope x)) - 0.5``, rescaled so that 0.5 maps to 0.5."""
    y = 1.0 / (1.0 + np.exp(-slope * x)) - 0.5
    return y * (0.5 / (1.0 / (1.0 + np.exp(-slope * 0.5)) - 0.5))


def vivid(photo: np.ndarray) -> np.ndarray:
    """A photo (``H x W x 3`` float in [0, 1]) -> its "vivid" version, float32 in [0, 1]: the CRN
    reference's ``generate_vivid_images_*.m`` (gamma 0.75, the mean of three multi-scale LAB
    tone maps, saturation x1.1); the module docstring says how it follows and departs from them."""
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"the vivid transform needs an H x W x 3 colour image, got shape {photo.shape}")
    rgb = np.clip(np.asarray(photo, np.float64), 0.0, 1.0) ** _GAMMA
    lab = srgb_to_lab(rgb)
    L = lab[..., 0]
    L0, L1 = edge_preserving_bases(L)
    out = np.zeros_like(rgb)
    for detail, medium, base_slope, exposure in _TONE_MAPS:
        mapped = lab.copy()
        base = _sigmoid((exposure * L1 - _BASE_PIVOT) / 100, base_slope) * 100 + _BASE_PIVOT
        mapped[..., 0] = base + _sigmoid((L0 - L1) / 100, medium) * 100 + _sigmoid((L - L0) / 100, detail) * 100
        mapped[..., 1:] *= _SATURATION
        out += lab_to_srgb(mapped)
    return (out / len(_TONE_MAPS)).astype(np.float32)


def apply_target_transform(image: np.ndarray, name: str) -> np.ndarray:
    """``data.target_transform`` on a target image (``H x W x C`` float in [0, 1]): ``none``
    returns it unchanged, ``vivid`` -> :func:`vivid`."""
    if name == "none":
        return image
    if name == "vivid":
        return vivid(image)
    raise ValueError(f"target transform {name!r}, expected one of {', '.join(TARGET_TRANSFORMS)}")
