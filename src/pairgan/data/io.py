"""Image files in and out: exact dtypes, 16-bit precision, EXIF orientation, atomic writes.

Reading keeps the stored precision: ``read_image`` returns an ``HxWxC`` array of the file's own
dtype (``uint8``, ``uint16``, ``float32`` for float ``.npy``/TIFF, or integer ids from ``.npy``).
Every problem with a file raises :class:`DataError` whose message starts with the file's path and
says what was found and what was expected.

16-bit notes (Pillow 13):

* 16-bit *grayscale* PNG/TIFF open as mode ``I;16`` and keep full precision.
* 16-bit *RGB/RGBA* PNG/TIFF have no 16-bit Pillow mode; Pillow keeps only the high byte of
  every sample. We decode such files twice with Pillow's own decoder (so filtering, interlacing
  and every TIFF compression libtiff knows are handled by Pillow), once unpacking the high bytes
  and once, with the byte-swapped raw mode, the low bytes, and join the two. 16-bit gray+alpha
  PNG is unpacked in one pass as raw bytes. A one-time self test guards this route; should a
  future Pillow change its internals, reading such a file raises :class:`DataError` instead of
  silently returning 8-bit data.
* Simple TIFFs (uncompressed or deflate strips, gray or RGB plus any extra samples, 8-64 bit
  int or float) are read by a small built-in reader, exactly and with every sample: Pillow
  refuses 2-sample TIFFs and opens e.g. a 5-sample one as RGB, silently dropping two. Other TIFFs
  (LZW, JPEG, tiled, palette, ...) go through Pillow, 16-bit RGB(A) with the route above.
* Writing 16-bit PNG (any of 1-4 channels) and all TIFF uses small built-in encoders (zlib only).
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from pairgan.errors import DataError
from pairgan.fsutil import atomic_write_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy")

#: (found, wanted) channel conversions ``match_channels`` performs.
CHANNEL_CONVERSIONS = {(1, 3): "replicate", (3, 1): "luma", (4, 3): "drop alpha", (2, 1): "drop alpha",
                       (4, 1): "luma of RGB"}

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


def _err(path: Any, msg: str) -> DataError:
    return DataError(f"{path}: {msg}")


# --------------------------------------------------------------------------- value conversions


def to_unit_float(arr: np.ndarray, *, label: bool = False, path: Any = "<array>") -> np.ndarray:
    """``arr`` as float32 in [0, 1]: uint8 / 255, uint16 / 65535, bool -> 0/1, float clipped.

    Other integer dtypes (ids from ``.npy``) are accepted only with ``label=True`` and must lie in
    0..255 (they are scaled like a uint8 label map).
    """
    arr = np.asarray(arr)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.isfinite(out).all():
            raise _err(path, "contains NaN or inf values, expected finite values in [0, 1]")
        return np.clip(out, 0.0, 1.0)
    if np.issubdtype(arr.dtype, np.integer):
        if not label:
            raise _err(
                path,
                f"integer dtype {arr.dtype}, expected uint8, uint16, bool or float in [0, 1] "
                "(integer label ids need data.input_kind/output_kind = label)",
            )
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise _err(path, f"label ids range {lo}..{hi}, expected ids in 0..255")
        return arr.astype(np.float32) / np.float32(255)
    raise _err(path, f"dtype {arr.dtype}, expected uint8, uint16, bool, integer ids or float")


def channels_convertible(found: int, wanted: int) -> bool:
    """Whether ``match_channels`` can turn ``found`` channels into ``wanted``."""
    return found == wanted or (found, wanted) in CHANNEL_CONVERSIONS


def _luma(rgb: np.ndarray) -> np.ndarray:
    y = rgb[..., :3].astype(np.float32) @ _LUMA
    if np.issubdtype(rgb.dtype, np.integer):
        info = np.iinfo(rgb.dtype)
        y = np.clip(np.rint(y), info.min, info.max).astype(rgb.dtype)
    return y[..., None]


def match_channels(arr: np.ndarray, nc: int, path: Any, key: str = "data.input_nc") -> np.ndarray:
    """``arr`` (HxWxC) with ``nc`` channels.

    Converts 1->3 (replicate), 3->1 (ITU-R 601 luma), 4->3 (drop alpha), 2->1 (drop alpha) and
    4->1 (luma of RGB); any other mismatch raises DataError naming the file, the count and ``key``.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    c = arr.shape[2]
    if c == nc:
        return arr
    if (c, nc) == (1, 3):
        return np.repeat(arr, 3, axis=2)
    if (c, nc) in ((3, 1), (4, 1)):
        return _luma(arr)
    if (c, nc) in ((4, 3), (2, 1)):
        return np.ascontiguousarray(arr[..., :nc])
    conv = ", ".join(f"{a}->{b}" for a, b in CHANNEL_CONVERSIONS)
    raise _err(path, f"{c} channels, expected {nc} ({key}); convertible: {conv}")


# --------------------------------------------------------------------------- orientation


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (1..8) like ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.transpose(1, 0, 2)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = arr.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def _pil_orientation(im: Image.Image) -> int:
    try:
        o = int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block should not make the pixels unreadable
        return 1
    return o if 1 <= o <= 8 else 1


# --------------------------------------------------------------------------- Pillow decoding


@contextmanager
def _pil_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except DataError:
        raise
    except FileNotFoundError:
        raise _err(path, "file not found") from None
    except UnidentifiedImageError:
        raise _err(path, f"not a readable image (unknown or corrupt {path.suffix} file)") from None
    except Image.DecompressionBombError as exc:
        raise _err(path, f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError) as exc:
        raise _err(path, f"unreadable or truncated image ({type(exc).__name__}: {exc})") from None


_NATIVE16 = "16L" if sys.byteorder == "little" else "16B"
_SWAP16 = {"16B": "16L", "16L": "16B"}
_SPLIT16 = ("RGB;16B", "RGB;16L", "RGB;16N", "RGBA;16B", "RGBA;16L", "RGBA;16N",
            "RGBX;16B", "RGBX;16L", "RGBX;16N")


def _tile_rawmode(tile: Any) -> str | None:
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _tile_with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile[3]
    new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    if hasattr(tile, "_replace"):
        return tile._replace(args=new_args)
    return (tile[0], tile[1], tile[2], new_args)


def _pil_to_array(im: Image.Image, palette_indices: bool) -> np.ndarray:
    mode = im.mode
    if mode == "1":
        im, mode = im.convert("L"), "L"
    elif mode == "La":
        im, mode = im.convert("LA"), "LA"
    elif mode == "RGBa":
        im, mode = im.convert("RGBA"), "RGBA"
    elif mode == "RGBX":
        im, mode = im.convert("RGB"), "RGB"
    elif mode in ("P", "PA"):
        if palette_indices:
            arr = np.array(im.getchannel(0) if mode == "PA" else im)
            return arr[..., None]
        transparent = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if transparent else "RGB")
        mode = im.mode
    if mode.startswith("I;16"):
        return np.array(im).astype(np.uint16)[..., None]
    if mode == "I":  # 32-bit or signed integers: ids, accepted as labels by to_unit_float
        return np.array(im).astype(np.int32)[..., None]
    if mode == "F":
        return np.array(im).astype(np.float32)[..., None]
    if mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    arr = np.array(im)
    return arr[..., None] if arr.ndim == 2 else arr


def _source(path: Path, data: bytes | None) -> Any:
    """What Pillow opens: the file, or a fresh in-memory stream over its bytes (a file read from a
    WebDataset shard); each call gives a new stream, for decoders that open a file twice."""
    return path if data is None else io.BytesIO(data)


def _decode_split16(path: Path, rawmode: str, data: bytes | None = None) -> tuple[np.ndarray, int]:
    """Full-precision 16-bit RGB(A) through Pillow: high bytes pass + low bytes pass."""
    if rawmode.endswith("16N"):
        rawmode = rawmode[:-3] + _NATIVE16
    low = rawmode[:-3] + _SWAP16[rawmode[-3:]]
    with Image.open(_source(path, data)) as im:
        im.load()
        hi = np.array(im)
        orientation = _pil_orientation(im)
    with Image.open(_source(path, data)) as im:
        im.tile = [_tile_with_rawmode(t, low) for t in im.tile]
        im.load()
        lo = np.array(im)
    if hi.shape != lo.shape:
        raise _err(path, "16-bit decode passes disagree in shape")
    return (hi.astype(np.uint16) << 8) | lo.astype(np.uint16), orientation


def _decode_la16(path: Path, data: bytes | None = None) -> tuple[np.ndarray, int]:
    """16-bit gray+alpha PNG: Pillow offers mode RGBA; unpack the 4 raw bytes per pixel as is."""
    with Image.open(_source(path, data)) as im:
        im.tile = [_tile_with_rawmode(t, "RGBA") for t in im.tile]
        im.load()
        b = np.array(im).astype(np.uint16)
        orientation = _pil_orientation(im)
    return np.stack([(b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]], axis=-1), orientation


_ROUTE_OK: bool | None = None


def _split16_route_ok() -> bool:
    """One-time self test: encode a tiny 16-bit RGB PNG and check the split decode is exact."""
    global _ROUTE_OK
    if _ROUTE_OK is None:
        import tempfile

        ref = np.array([[[0x0102, 0xFFFE, 0x8001], [0x1234, 0x00FF, 0xFF00]],
                        [[0xABCD, 0x0001, 0x7FFF], [0x0000, 0xFFFF, 0x5A5A]]], dtype=np.uint16)
        try:
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "probe.png"
                p.write_bytes(_encode_png(ref))
                with Image.open(p) as im:
                    raw = _tile_rawmode(im.tile[0]) or ""
                _ROUTE_OK = bool(np.array_equal(_decode_split16(p, raw)[0], ref))
        except Exception:
            _ROUTE_OK = False
    return _ROUTE_OK


def _read_pillow(path: Path, palette_indices: bool, data: bytes | None = None) -> np.ndarray:
    with _pil_errors(path):
        with Image.open(_source(path, data)) as im:
            tiles = list(im.tile)  # before getexif(): for PNG that may decode the image
            raws = {_tile_rawmode(t) for t in tiles}
            raw = next(iter(raws)) if len(raws) == 1 else None
            sixteen = im.mode in ("RGB", "RGBA") and any(";16" in (r or "") for r in raws)
            if not sixteen:
                im.load()  # full decode: truncation raises (LOAD_TRUNCATED_IMAGES stays False)
                orientation = _pil_orientation(im)
                arr = _pil_to_array(im, palette_indices)
        if sixteen:
            if raw not in _SPLIT16 and not (raw == "LA;16B" and path.suffix.lower() == ".png"):
                raise _err(path, f"16-bit layout {raw!r} cannot be read at full precision; "
                                 "expected 16-bit gray, gray+alpha, RGB or RGBA (or save as .npy)")
            if not _split16_route_ok():
                raise _err(path, f"Pillow {Image.__version__} cannot decode 16-bit multi-channel "
                                 "images at full precision here; convert the file to .npy")
            arr, orientation = (_decode_la16(path, data) if raw == "LA;16B"
                                else _decode_split16(path, raw, data))
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone relaxed Pillow globally: say so, never hide it
        import warnings

        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated images are not "
                      "detected", RuntimeWarning, stacklevel=3)
    return _apply_orientation(arr, orientation)


# --------------------------------------------------------------------------- .npy


def _read_npy(path: Path, data: bytes | None = None) -> np.ndarray:
    try:
        arr = np.load(path if data is None else io.BytesIO(data), allow_pickle=False)
    except FileNotFoundError:
        raise _err(path, "file not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise _err(path, f"unreadable or truncated .npy ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise _err(path, "not a single array, expected an HxW or HxWxC array")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or 0 in arr.shape:
        raise _err(path, f"array of shape {arr.shape}, expected HxW or HxWxC")
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return np.ascontiguousarray(arr)
    raise _err(path, f"dtype {arr.dtype}, expected bool, integer or float")


# --------------------------------------------------------------------------- minimal TIFF


_TIFF_TYPES = {1: "B", 2: "c", 3: "H", 4: "I", 5: "II", 6: "b", 7: "B", 8: "h", 9: "i", 10: "ii",
               11: "f", 12: "d", 16: "Q"}


def _tiff_info(path: Path, data: bytes | None = None) -> SimpleNamespace:
    """Parse the first IFD of a classic TIFF; reads only the header bytes unless ``data`` is given."""
    try:
        f = None if data is not None else open(path, "rb")
        try:
            def get(off: int, n: int) -> bytes:
                if data is not None:
                    return data[off:off + n]
                f.seek(off)
                return f.read(n)

            head = get(0, 8)
            bo = {b"II": "<", b"MM": ">"}.get(head[:2])
            if bo is None or struct.unpack(bo + "H", head[2:4])[0] != 42:
                raise _err(path, "not a classic TIFF file")
            (ifd,) = struct.unpack(bo + "I", head[4:8])
            (n,) = struct.unpack(bo + "H", get(ifd, 2))
            entries = get(ifd + 2, 12 * n)
            tags: dict[int, tuple] = {}
            for i in range(n):
                e = entries[12 * i:12 * i + 12]
                tag, typ, count = struct.unpack(bo + "HHI", e[:8])
                fmt = _TIFF_TYPES.get(typ)
                if fmt is None or fmt == "c":
                    continue
                size = struct.calcsize(bo + fmt) * count
                if size <= 4:
                    raw = e[8:8 + size]
                else:
                    raw = get(struct.unpack(bo + "I", e[8:12])[0], size)
                    if len(raw) < size:
                        raise _err(path, "truncated TIFF (tag data past the end of the file)")
                tags[tag] = struct.unpack(bo + fmt * count, raw)
        finally:
            if f is not None:
                f.close()
    except struct.error:
        raise _err(path, "truncated or corrupt TIFF header") from None
    except OSError as exc:
        raise _err(path, f"unreadable file ({exc})") from None

    def one(tag: int, default: int) -> int:
        return int(tags[tag][0]) if tag in tags else default

    spp = one(277, 1)
    return SimpleNamespace(
        bo=bo, width=one(256, 0), height=one(257, 0), spp=spp, bps=tags.get(258, (1,) * spp),
        compression=one(259, 1), photometric=one(262, 1), offsets=tags.get(273),
        counts=tags.get(279), planar=one(284, 1), predictor=one(317, 1),
        sample_format=one(339, 1), extra=tags.get(338, ()), orientation=one(274, 1),
        tiled=322 in tags,
    )


def _own_tiff_ok(t: SimpleNamespace) -> bool:
    """Whether the built-in reader handles this TIFF exactly (else Pillow reads it)."""
    kind = {1: "u", 2: "i", 3: "f"}.get(t.sample_format)
    return bool(
        not t.tiled and t.offsets and t.counts and len(t.offsets) == len(t.counts)
        and t.compression in (1, 8, 32946)
        and len(set(t.bps)) == 1 and t.bps[0] in (8, 16, 32, 64)
        and kind is not None and not (kind == "f" and t.bps[0] < 32)
        and (t.predictor == 1 or (t.predictor == 2 and kind != "f"))
        and t.planar in (1, 2)
        and (t.photometric == 1 or (t.photometric == 2 and t.spp >= 3))
        and all(x in (0, 2) for x in t.extra)  # associated alpha (1) is left to Pillow
        and t.width >= 1 and t.height >= 1 and t.spp >= 1
    )


def _read_tiff_own(path: Path, data: bytes, t: SimpleNamespace) -> np.ndarray:
    """Strips, uncompressed or deflate, any sample count, 8/16/32/64-bit int or float."""
    kind = {1: "u", 2: "i", 3: "f"}[t.sample_format]
    dtype = np.dtype(f"{t.bo}{kind}{t.bps[0] // 8}")
    w, h, spp = t.width, t.height, t.spp
    chunks = []
    for off, cnt in zip(t.offsets, t.counts):
        raw = data[off:off + cnt]
        if len(raw) < cnt:
            raise _err(path, "truncated TIFF (strip data past the end of the file)")
        if t.compression != 1:
            try:
                raw = zlib.decompress(raw)
            except zlib.error as exc:
                raise _err(path, f"truncated or corrupt deflate strip ({exc})") from None
        chunks.append(raw)
    buf = b"".join(chunks)
    need = w * h * spp * dtype.itemsize
    if len(buf) < need:
        raise _err(path, f"truncated TIFF ({len(buf)} of {need} pixel bytes)")
    flat = np.frombuffer(buf[:need], dtype=dtype)
    arr = flat.reshape(spp, h, w).transpose(1, 2, 0) if t.planar == 2 else flat.reshape(h, w, spp)
    arr = arr.astype(dtype.newbyteorder("="))
    if t.predictor == 2:
        arr = np.cumsum(arr, axis=1, dtype=arr.dtype)  # wraps modulo 2**bits, as the predictor does
    if kind == "f":
        arr = arr.astype(np.float32)
    return _apply_orientation(arr, t.orientation)


def _read_tiff(path: Path, palette_indices: bool, data: bytes | None = None) -> np.ndarray:
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _err(path, f"unreadable file ({exc})") from None
    try:
        t = _tiff_info(path, data)
    except DataError as exc:
        if data[:4] in (b"II*\0", b"MM\0*"):
            raise  # a classic TIFF whose header is cut short or damaged
        t, header_error = None, exc  # BigTIFF or not a TIFF at all: Pillow gives the verdict
    if t is not None and _own_tiff_ok(t):
        return _read_tiff_own(path, data, t)
    try:
        return _read_pillow(path, palette_indices, data)
    except DataError:
        if t is None:
            raise header_error from None
        raise


def _encode_tiff(q: np.ndarray, *, compress: bool = False) -> bytes:
    """Baseline little-endian TIFF, one chunky strip; ``compress`` uses deflate."""
    h, w, c = q.shape
    bps = q.dtype.itemsize * 8
    fmt = 3 if q.dtype.kind == "f" else 1
    body = np.ascontiguousarray(q.astype(q.dtype.newbyteorder("<"))).tobytes()
    if compress:
        body = zlib.compress(body, 6)
    nbytes = len(body)
    if len(body) % 2:
        body += b"\0"
    extra = b""
    base = 8 + len(body)
    entries: list[bytes] = []

    def add(tag: int, typ: int, vals: list[int]) -> None:
        nonlocal extra
        packed = struct.pack("<" + ("H" if typ == 3 else "I") * len(vals), *vals)
        if len(packed) <= 4:
            entries.append(struct.pack("<HHI", tag, typ, len(vals)) + packed.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, typ, len(vals), base + len(extra)))
            extra += packed + (b"\0" if len(packed) % 2 else b"")

    add(256, 4, [w])
    add(257, 4, [h])
    add(258, 3, [bps] * c)
    add(259, 3, [8 if compress else 1])
    add(262, 3, [2 if c >= 3 else 1])
    add(273, 4, [8])
    add(277, 3, [c])
    add(278, 4, [h])
    add(279, 4, [nbytes])
    add(284, 3, [1])
    n_extra = c - 3 if c >= 3 else c - 1
    if n_extra:
        # One extra sample after gray/RGB is alpha (unassociated); more are unspecified.
        add(338, 3, [2] if n_extra == 1 and c in (2, 4) else [0] * n_extra)
    add(339, 3, [fmt] * c)
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", base + len(extra)) + body + extra + ifd


# --------------------------------------------------------------------------- minimal PNG encoder


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def _encode_png(q: np.ndarray) -> bytes:
    """PNG of a uint8/uint16 HxWxC array (C = 1..4), 'Up' filter on every row."""
    h, w, c = q.shape
    depth = 16 if q.dtype == np.uint16 else 8
    color = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = np.ascontiguousarray(q.astype(">u2" if depth == 16 else np.uint8)).view(np.uint8)
    rows = rows.reshape(h, w * c * depth // 8)
    up = rows.copy()
    up[1:] -= rows[:-1]  # uint8 arithmetic wraps modulo 256, as PNG filters do
    raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw, 6))
            + _png_chunk(b"IEND", b""))


# --------------------------------------------------------------------------- public API


def read_image(path: str | os.PathLike, *, palette_indices: bool = False, data: bytes | None = None) -> np.ndarray:
    """Read an image as an ``HxWxC`` array of its native dtype, EXIF orientation applied.

    uint8 / uint16 (16-bit PNG/TIFF, gray and multi-channel, at full precision) / float32 (float
    ``.npy`` or TIFF) / bool or integer ids (``.npy``). Palette images become RGB (RGBA with
    transparency) unless ``palette_indices`` asks for the 1-channel palette indices (label ids).
    Unreadable or truncated files raise DataError naming the file.

    ``data``: the file's bytes, already read (a file stored in a WebDataset shard); ``path`` then
    only names it — its extension picks the decoder, messages start with it — and the decoding is
    the very one a file on disk gets.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise _err(path, f"unsupported extension {path.suffix!r}, expected one of "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    if data is None and not path.is_file():
        raise _err(path, "file not found")
    if ext == ".npy":
        return _read_npy(path, data)
    if ext in (".tif", ".tiff"):
        return _read_tiff(path, palette_indices, data)
    return _read_pillow(path, palette_indices, data)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) as ``read_image`` would return it, reading only the header."""
    path = Path(path)
    ext = path.suffix.lower()
    if not path.is_file():
        raise _err(path, "file not found")
    if ext == ".npy":
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _err(path, f"unreadable or truncated .npy ({exc})") from None
        if arr.ndim not in (2, 3):
            raise _err(path, f"array of shape {arr.shape}, expected HxW or HxWxC")
        return int(arr.shape[1]), int(arr.shape[0])
    if ext in (".tif", ".tiff"):
        try:
            t = _tiff_info(path)
            if t.width >= 1 and t.height >= 1:
                return (t.height, t.width) if t.orientation in (5, 6, 7, 8) else (t.width, t.height)
        except DataError:
            pass  # BigTIFF or damaged header: ask Pillow
    try:
        # The size is what a caller checks against its own limit: Pillow's decompression-bomb
        # warning is noise here (its error, at twice the limit, is reported below).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open(path, "rb") as f, Image.open(f) as im:
                w, h = im.size
                if im.format == "PNG" and "exif" not in im.info:
                    orientation = _png_late_exif_orientation(f)  # getexif() would decode the pixels
                else:
                    orientation = _pil_orientation(im)
    except Image.DecompressionBombError as exc:
        raise _err(path, f"image too large ({exc})") from None
    except UnidentifiedImageError:
        raise _err(path, f"not a readable image (unknown or corrupt {path.suffix} file)") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:
        raise _err(path, f"unreadable image header ({exc})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _png_late_exif_orientation(f: Any) -> int:
    """Orientation from an eXIf chunk placed after the image data, walking chunk headers only."""
    pos = 8
    while True:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return 1
        length, kind = struct.unpack(">I4s", head)
        if kind == b"eXIf":
            exif = Image.Exif()
            try:
                exif.load(f.read(length))
                o = int(exif.get(0x0112, 1))
            except Exception:
                return 1
            return o if 1 <= o <= 8 else 1
        if kind == b"IEND":
            return 1
        pos += 12 + length


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files directly in ``folder`` (extensions case-insensitive, hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise _err(folder, "folder not found")
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def write_image(path: str | os.PathLike, arr: np.ndarray, bit_depth: int = 8) -> None:
    """Write a float HxWxC image in [0, 1] atomically (temp file, fsync, ``os.replace``).

    The format follows the extension: PNG (1-4 channels, 8 or 16 bit), TIFF (any channel count,
    8 or 16 bit, uncompressed), JPEG (1 or 3 channels, 8 bit, quality 95, no chroma subsampling),
    BMP (1 or 3 channels, 8 bit) or ``.npy`` (float32, any channel count; ``bit_depth`` unused).
    uint8/uint16/bool arrays are accepted too and scaled like ``to_unit_float``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise _err(path, f"unsupported extension {path.suffix!r}, expected one of "
                         f"{', '.join(IMAGE_EXTENSIONS)}")
    if bit_depth not in (8, 16):
        raise _err(path, f"bit depth {bit_depth}, expected 8 or 16")
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or 0 in a.shape:
        raise _err(path, f"array of shape {a.shape}, expected HxWxC")
    a = to_unit_float(a, path=path)
    c = a.shape[2]
    if ext == ".npy":
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        return
    maxv = 65535 if bit_depth == 16 else 255
    q = np.rint(a.astype(np.float64) * maxv).astype(np.uint16 if bit_depth == 16 else np.uint8)
    if ext in (".tif", ".tiff"):
        payload = _encode_tiff(q)
    elif ext == ".png":
        if c > 4:
            raise _err(path, f"{c} channels, expected 1-4 for PNG (use .tif or .npy)")
        if bit_depth == 16:
            payload = _encode_png(q)
        else:
            payload = _pil_bytes(q, "PNG", compress_level=6)
    else:
        if bit_depth != 8:
            raise _err(path, f"bit depth {bit_depth}, expected 8 for {ext} (16 bit: .png or .tif)")
        allowed = (1, 3)
        if c not in allowed:
            raise _err(path, f"{c} channels, expected {' or '.join(map(str, allowed))} for {ext} "
                             "(use .png, .tif or .npy)")
        if ext == ".bmp":  # 32-bit BMP alpha is not read back reliably, hence no 4 channels
            payload = _pil_bytes(q, "BMP")
        else:
            payload = _pil_bytes(q, "JPEG", quality=95, subsampling=0)
    atomic_write_bytes(path, payload)


def _pil_bytes(q: np.ndarray, fmt: str, **params: Any) -> bytes:
    im = Image.fromarray(q[..., 0] if q.shape[2] == 1 else q)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()
