"""Image I/O: exact 8/16-bit round trips, formats, EXIF orientation, truncation, channels, atomicity."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from pairgan.data import io as dio
from pairgan.data.io import (
    IMAGE_EXTENSIONS,
    image_size,
    list_images,
    match_channels,
    read_image,
    to_unit_float,
    write_image,
)
from pairgan.errors import DataError


def rand_q(shape: tuple[int, ...], bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if bits == 16 else np.uint8
    return rng.integers(0, 2**bits, shape).astype(dtype)


def unit(q: np.ndarray) -> np.ndarray:
    return (q.astype(np.float64) / np.iinfo(q.dtype).max).astype(np.float32)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_round_trip_is_exact(tmp_path: Path, bits: int, channels: int) -> None:
    q = rand_q((7, 11, channels), bits, seed=channels)
    p = tmp_path / "x.png"
    write_image(p, unit(q), bit_depth=bits)
    got = read_image(p)
    assert got.dtype == q.dtype
    assert got.shape == (7, 11, channels)
    np.testing.assert_array_equal(got, q)
    np.testing.assert_array_equal(to_unit_float(got), unit(q))


def test_16bit_rgb_png_keeps_low_bytes(tmp_path: Path) -> None:
    # Values whose low byte is not a copy of the high byte: 8-bit data scaled up could not match.
    q = np.array([[[0x0102, 0xFFFE, 0x8001], [0x1234, 0x00FF, 0xFF00]]], dtype=np.uint16)
    p = tmp_path / "x.png"
    write_image(p, unit(q), bit_depth=16)
    np.testing.assert_array_equal(read_image(p), q)


def _png_with_all_filters(q: np.ndarray) -> bytes:
    """A 16-bit PNG whose rows use filters None, Sub, Up, Average and Paeth in turn."""
    h, w, c = q.shape
    raw = q.astype(">u2").view(np.uint8).reshape(h, -1).astype(np.int64)
    bpp = 2 * c
    out, prev = [], np.zeros(raw.shape[1], np.int64)
    for r in range(h):
        row, ftype = raw[r], r % 5
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        if ftype == 0:
            pred = np.zeros_like(row)
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = prev
        elif ftype == 3:
            pred = (left + prev) // 2
        else:
            p = left + prev - upleft
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        out.append(bytes([ftype]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(out)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_png_from_another_encoder_with_every_filter(tmp_path: Path, channels: int) -> None:
    q = rand_q((10, 9, channels), 16, seed=5)
    p = tmp_path / "filters.png"
    p.write_bytes(_png_with_all_filters(q))
    np.testing.assert_array_equal(read_image(p), q)


def test_16bit_gray_png_written_by_pillow(tmp_path: Path) -> None:
    q = rand_q((6, 5), 16, seed=2)
    p = tmp_path / "g.png"
    Image.fromarray(q).save(p)
    got = read_image(p)
    assert got.dtype == np.uint16 and got.shape == (6, 5, 1)
    np.testing.assert_array_equal(got[..., 0], q)


@pytest.mark.parametrize("ext", [".tif", ".tiff"])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5])
def test_tiff_round_trip_is_exact(tmp_path: Path, ext: str, bits: int, channels: int) -> None:
    q = rand_q((5, 6, channels), bits, seed=channels + bits)
    p = tmp_path / f"x{ext}"
    write_image(p, unit(q), bit_depth=bits)
    got = read_image(p)
    assert got.dtype == q.dtype
    np.testing.assert_array_equal(got, q)
    assert image_size(p) == (6, 5)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("compress", [False, True])
def test_16bit_rgb_tiff_through_pillow_keeps_precision(tmp_path: Path, channels: int, compress: bool) -> None:
    # The Pillow route (raw and libtiff decoders) used for TIFFs the built-in reader leaves alone.
    q = rand_q((4, 7, channels), 16, seed=9)
    p = tmp_path / "p.tif"
    p.write_bytes(dio._encode_tiff(q, compress=compress))
    np.testing.assert_array_equal(dio._read_pillow(p, False), q)
    np.testing.assert_array_equal(read_image(p), q)


def test_tiff_written_by_pillow(tmp_path: Path) -> None:
    q = rand_q((5, 4, 3), 8)
    p = tmp_path / "pil.tif"
    Image.fromarray(q).save(p, compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(p), q)
    g = rand_q((5, 4), 16)
    Image.fromarray(g).save(tmp_path / "g16.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.tif")[..., 0], g)


def test_bmp_and_jpeg(tmp_path: Path) -> None:
    q = rand_q((8, 10, 3), 8)
    Image.fromarray(q).save(tmp_path / "x.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp"), q)
    smooth = np.tile(np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None], (16, 1, 3))
    Image.fromarray(smooth).save(tmp_path / "x.jpg", quality=95)
    got = read_image(tmp_path / "x.jpg")
    assert got.dtype == np.uint8 and got.shape == (16, 16, 3)
    assert np.abs(got.astype(int) - smooth).mean() < 3
    write_image(tmp_path / "w.jpg", unit(smooth))
    assert np.abs(read_image(tmp_path / "w.jpg").astype(int) - smooth).mean() < 3
    write_image(tmp_path / "w.bmp", unit(q))
    np.testing.assert_array_equal(read_image(tmp_path / "w.bmp"), q)


def test_npy_reading(tmp_path: Path) -> None:
    f64 = np.random.default_rng(0).random((4, 5))
    np.save(tmp_path / "f.npy", f64)
    got = read_image(tmp_path / "f.npy")
    assert got.dtype == np.float32 and got.shape == (4, 5, 1)
    np.testing.assert_allclose(got[..., 0], f64, rtol=1e-6)
    ids = np.array([[0, 1], [7, 2]], dtype=np.int64)
    np.save(tmp_path / "ids.npy", ids)
    assert read_image(tmp_path / "ids.npy").dtype == np.int64
    np.save(tmp_path / "mask.npy", ids > 1)
    assert read_image(tmp_path / "mask.npy").dtype == np.bool_
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(DataError, match=r"bad\.npy: array of shape \(2, 3, 4, 5\), expected HxW or HxWxC"):
        read_image(tmp_path / "bad.npy")
    assert image_size(tmp_path / "f.npy") == (5, 4)
    write_image(tmp_path / "w.npy", got)
    np.testing.assert_array_equal(read_image(tmp_path / "w.npy"), got)


def test_palette_png_colours_or_indices(tmp_path: Path) -> None:
    idx = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    assert rgb.shape == (2, 2, 3) and rgb[0, 1].tolist() == [40, 50, 60]
    np.testing.assert_array_equal(read_image(tmp_path / "p.png", palette_indices=True)[..., 0], idx)


# --------------------------------------------------------------------------- orientation


def test_jpeg_exif_orientation_6_rotates(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rand_q((8, 16, 3), 8)).save(tmp_path / "o.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "o.jpg").shape == (16, 8, 3)
    assert image_size(tmp_path / "o.jpg") == (8, 16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    q = rand_q((3, 5, 3), 8, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.png"
    Image.fromarray(q).save(p, exif=exif.tobytes())
    with Image.open(p) as im:
        ref = np.asarray(ImageOps.exif_transpose(im))
    got = read_image(p)
    np.testing.assert_array_equal(got, ref)
    assert image_size(p) == (got.shape[1], got.shape[0])


# --------------------------------------------------------------------------- errors


def test_pillow_truncation_flag_is_left_false() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("name,bits", [("t.png", 8), ("t16.png", 16), ("t.jpg", 8), ("t.tif", 16),
                                       ("t.npy", 8)])
def test_truncated_file_is_an_error_naming_it(tmp_path: Path, name: str, bits: int) -> None:
    rng = np.random.default_rng(0)
    arr = rng.random((48, 48, 3)).astype(np.float32)
    full = tmp_path / f"full_{name}"
    write_image(full, arr, bit_depth=bits)
    data = full.read_bytes()
    p = tmp_path / name
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=rf"^{str(p)}: .*(truncated|unreadable|not a readable|corrupt)"):
        read_image(p)


def test_not_an_image_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "junk.png").write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match="junk.png: "):
        read_image(tmp_path / "junk.png")
    with pytest.raises(DataError, match="junk.png: "):
        image_size(tmp_path / "junk.png")
    with pytest.raises(DataError, match="nope.png: file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match=r"x\.gif: unsupported extension '\.gif'"):
        read_image(tmp_path / "x.gif")


def test_to_unit_float() -> None:
    np.testing.assert_array_equal(to_unit_float(np.array([0, 255], np.uint8)), [0.0, 1.0])
    np.testing.assert_array_equal(to_unit_float(np.array([0, 65535], np.uint16)), [0.0, 1.0])
    assert to_unit_float(np.array([1], np.uint16))[0] == np.float32(1 / 65535)
    np.testing.assert_array_equal(to_unit_float(np.array([-0.5, 0.25, 2.0])), [0.0, 0.25, 1.0])
    assert to_unit_float(np.array([-0.5])).dtype == np.float32
    np.testing.assert_array_equal(to_unit_float(np.array([True, False])), [1.0, 0.0])
    with pytest.raises(DataError, match=r"ids\.npy: integer dtype int32, expected uint8"):
        to_unit_float(np.array([3], np.int32), path="ids.npy")
    np.testing.assert_allclose(to_unit_float(np.array([0, 3], np.int32), label=True), [0, 3 / 255])
    with pytest.raises(DataError, match=r"label ids range 0\.\.300, expected ids in 0\.\.255"):
        to_unit_float(np.array([0, 300]), label=True)
    with pytest.raises(DataError, match="NaN"):
        to_unit_float(np.array([np.nan], np.float32))


def test_match_channels_conversions() -> None:
    rgb = np.array([[[1.0, 0.0, 0.0]]], np.float32)
    np.testing.assert_allclose(match_channels(rgb, 1, "x.png"), [[[0.299]]], rtol=1e-6)
    rgba = np.array([[[0.0, 1.0, 0.0, 0.5]]], np.float32)
    np.testing.assert_allclose(match_channels(rgba, 1, "x.png"), [[[0.587]]], rtol=1e-6)
    np.testing.assert_array_equal(match_channels(rgba, 3, "x.png"), [[[0.0, 1.0, 0.0]]])
    gray = np.full((2, 2, 1), 0.25, np.float32)
    assert match_channels(gray, 3, "x.png").shape == (2, 2, 3)
    np.testing.assert_array_equal(match_channels(gray, 3, "x.png")[..., 2], gray[..., 0])
    ga = np.array([[[0.3, 1.0]]], np.float32)
    np.testing.assert_array_equal(match_channels(ga, 1, "x.png"), ga[..., :1])
    assert match_channels(rgb, 3, "x.png") is rgb
    u8 = np.array([[[255, 255, 255]]], np.uint8)
    assert match_channels(u8, 1, "x.png").dtype == np.uint8
    assert match_channels(u8, 1, "x.png")[0, 0, 0] == 255


@pytest.mark.parametrize("found,nc,key", [(5, 3, "data.input_nc"), (2, 3, "data.output_nc"),
                                          (1, 4, "data.input_nc")])
def test_match_channels_error_names_file_count_and_key(found: int, nc: int, key: str) -> None:
    arr = np.zeros((2, 2, found), np.float32)
    msg = f"data/train/A/x.png: {found} channels, expected {nc} ({key})"
    with pytest.raises(DataError, match=msg.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        match_channels(arr, nc, "data/train/A/x.png", key=key)


def test_write_errors_name_the_file(tmp_path: Path) -> None:
    five = np.zeros((2, 2, 5), np.float32)
    with pytest.raises(DataError, match=r"f\.png: 5 channels, expected 1-4 for PNG"):
        write_image(tmp_path / "f.png", five)
    with pytest.raises(DataError, match=r"f\.jpg: bit depth 16, expected 8"):
        write_image(tmp_path / "f.jpg", np.zeros((2, 2, 3)), bit_depth=16)
    with pytest.raises(DataError, match=r"f\.png: bit depth 12, expected 8 or 16"):
        write_image(tmp_path / "f.png", np.zeros((2, 2, 3)), bit_depth=12)
    assert not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- atomic writes


def test_write_is_atomic_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "out.png"
    old = rand_q((4, 4, 3), 8, seed=1)
    write_image(p, unit(old))

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_image(p, np.ones((4, 4, 3), np.float32))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_image(p), old)  # the old file is untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.png"]  # no temp file left
    write_image(tmp_path / "sub" / "new.tif", np.ones((2, 2, 1)), bit_depth=16)
    assert read_image(tmp_path / "sub" / "new.tif")[0, 0, 0] == 65535


def test_written_file_respects_umask(tmp_path: Path) -> None:
    write_image(tmp_path / "m.png", np.zeros((2, 2, 1)))
    mode = (tmp_path / "m.png").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


# --------------------------------------------------------------------------- listing and sizes


def test_list_images_sorted_case_insensitive(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.TiF", "d.npy", "notes.txt", ".hidden.png", "e.JPEG"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.TiF", "d.npy", "e.JPEG"]
    with pytest.raises(DataError, match="missing: folder not found"):
        list_images(tmp_path / "missing")
    assert ".npy" in IMAGE_EXTENSIONS and ".bmp" in IMAGE_EXTENSIONS


def test_image_size_reads_header(tmp_path: Path) -> None:
    for ext in (".png", ".jpg", ".bmp", ".tif", ".npy"):
        write_image(tmp_path / f"s{ext}", np.zeros((3, 7, 3), np.float32))
        assert image_size(tmp_path / f"s{ext}") == (7, 3), ext
