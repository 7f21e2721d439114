"""The bad-input suite, ``pairgan translate`` (issue 14, items 1, 3, 4 and 5): an --out that is or
holds the inputs, files already in --out, a full disk while outputs are written, file names that are
not UTF-8, and inputs too large for one forward pass. Each case is a ``pairgan`` command line with its
exit status and message (:mod:`tests.badinput`); inputs (and files translate did not write) must
keep their bytes.

A full disk is simulated in process: the case's entry in ``FAULTS`` makes a writer raise what it
raises on a full disk; ``MEMORY`` fixes the available memory a case sees.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pytest
from PIL import Image

from pairgan import infer, visual
from tests.badinput import Case, check_case

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- files the cases use


def _png(path: Path, h: int = 40, w: int = 40, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _huge_png(path: Path, w: int, h: int, pixels: bool = True) -> Path:
    """A valid black RGB PNG of w x h pixels, a few hundred KB on disk (never decoded by the cases);
    without ``pixels``, only its header is right."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(1 + 3 * w)
    idat = b"".join(packer.compress(row) for _ in range(h if pixels else 1)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _gallery_escapes_name(result: Any, paths: Mapping[str, Path]) -> None:
    page = (paths["out"] / "index.html").read_text(encoding="utf-8")
    assert 'href="%FF%FEname.png"' in page and "\\xff\\xfename" in page
    assert (paths["out"] / os.fsdecode(b"\xff\xfename.png")).is_file()


def _first_output_whole(result: Any, paths: Mapping[str, Path]) -> None:
    assert Image.open(paths["out"] / "a.png").size == (32, 32)  # the 40x40 input at the training scale
    assert not (paths["out"] / "b.png").exists() and not list(paths["out"].glob(".*.tmp*"))


def _tiled_whole_size(result: Any, paths: Mapping[str, Path]) -> None:
    assert Image.open(paths["out"] / "big.png").size == (200, 120)


def _no_warning(result: Any, paths: Mapping[str, Path]) -> None:
    assert "warning" not in result.stderr


def _nothing_written(result: Any, paths: Mapping[str, Path]) -> None:
    assert not paths["out"].exists()


def _replaced(result: Any, paths: Mapping[str, Path]) -> None:
    assert (paths["out"] / "a.png").read_bytes() != b"not mine"


# --------------------------------------------------------------------------- the table

T = ["translate", "{run}"]
TL = ["translate", "{colour_label_run}"]
CASES = [
    # item 1: never lose an input or a file translate did not write
    Case("out-is-input-folder", [*T, "{in}", "--out", "{in}"], 2, r"would replace the input .*a\.png.*--out",
         unchanged=["{in}"]),
    Case("out-is-input-folder-overwrite", [*T, "{in}", "--out", "{in}", "--overwrite"], 2,
         r"would replace the input", unchanged=["{in}"]),
    Case("out-is-symlink-to-inputs", [*T, "{in}", "--out", "{link}"], 2, r"would replace the input",
         unchanged=["{in}"]),
    Case("out-file-hardlinked-to-input", [*T, "{in}", "--out", "{out}", "--overwrite"], 2,
         r"out/a\.png: the output would replace the input .*in/a\.png", unchanged=["{in}", "{out}"]),
    Case("out-file-symlinked-to-input", [*T, "{in}", "--out", "{out}"], 2, r"would replace the input",
         unchanged=["{in}", "{out}"]),
    Case("out-input-glob-same-name", [*T, "{in}/a.png", "--out", "{in}"], 2, r"would replace the input",
         unchanged=["{in}"]),
    Case("existing-output", [*T, "{in}", "--out", "{out}"], 2, r"out/a\.png exists .*--overwrite replaces it",
         unchanged=["{in}", "{out}"]),
    Case("existing-gallery", [*T, "{in}", "--out", "{out}"], 2, r"index\.html exists .*--overwrite",
         unchanged=["{in}", "{out}"]),
    Case("existing-gallery-input-copy", [*T, "{in}", "--out", "{out}"], 2, r"inputs/b\.png exists",
         unchanged=["{in}", "{out}"]),
    Case("existing-output-overwrite", [*T, "{in}", "--out", "{out}", "--overwrite"], 0, r"wrote 2 images",
         unchanged=["{in}"], then=_replaced),
    Case("existing-output-no-gallery-other-name", [*T, "{in}", "--out", "{out}", "--no-gallery"], 0,
         r"wrote 2 images", unchanged=["{in}", "{out}/index.html"]),
    Case("out-is-a-file", [*T, "{in}", "--out", "{in}/a.png"], 2, r"a\.png: a file, expected a folder",
         unchanged=["{in}"]),
    Case("fresh-out", [*T, "{in}", "--out", "{out}"], 0, r"wrote 2 images to .*; gallery .*index\.html",
         unchanged=["{in}"]),
    # item 3: a full disk
    Case("disk-full-second-output", [*T, "{in}", "--out", "{out}", "--no-gallery"], 2,
         r"no space left on device writing .*out/b\.png \(ENOSPC\)", unchanged=["{in}"], then=_first_output_whole),
    Case("disk-full-gallery", [*T, "{in}", "--out", "{out}"], 2,
         r"no space left on device writing .*out/index\.html \(ENOSPC\)", unchanged=["{in}"]),
    # item 4: names that are not UTF-8
    Case("non-utf8-name", [*T, "{odd}", "--out", "{out}"], 0, r"wrote 1 images", unchanged=["{odd}"],
         then=_gallery_escapes_name),
    # item 5: inputs too large for one forward pass (at their own size: --native-size; at the training
    # scale, the default, every forward pass is the tiny model's 32x32)
    Case("huge-input-max-pixels", [*T, "{huge}", "--out", "{out}", "--native-size", "--max-pixels", "1000000"], 2,
         r"huge\.png: 10000x10000 pixels in one forward pass are above the limit of 1000000 pixels "
         r"per forward pass \(--max-pixels\); translate it in tiles with --tile 512 \(or --tile auto\)",
         unchanged=["{huge}"]),
    Case("huge-input-default-limit", [*T, "{huge}", "--out", "{out}", "--native-size"], 2,
         r"huge\.png: 10000x10000 pixels in one forward pass need about [0-9.]+ GB and are above the limit of "
         r"\d+ pixels per forward pass \(derived from 4\.0 GB of available memory.*--tile 512", unchanged=["{huge}"]),
    Case("decompression-bomb", [*T, "{bomb}", "--out", "{out}", "--tile", "auto"], 2,
         r"bomb\.png.*image too large", unchanged=["{bomb}"]),
    Case("tile-too-large-for-limit", [*T, "{big}", "--out", "{out}", "--native-size", "--tile", "128", "--max-pixels", "4096"], 2,
         r"big\.png: 200x120 pixels in tiles of 128 pixels .*use a smaller --tile", unchanged=["{big}"]),
    Case("tile-auto-within-limit", [*T, "{big}", "--out", "{out}", "--native-size", "--tile", "auto", "--max-pixels", "4096",
                                    "--overlap", "8", "--mode", "eval"], 0, r"wrote 1 images", then=_tiled_whole_size),
    Case("tile-auto-limit-below-one-tile", [*T, "{big}", "--out", "{out}", "--native-size", "--tile", "auto",
                                            "--max-pixels", "16"],
         2, r"even the smallest tile .* above the limit of 16 pixels"),
    Case("tile-not-a-number", [*T, "{in}", "--out", "{out}", "--tile", "big"], 2,
         r"--tile big: expected a size in pixels, 0 \(whole images\) or auto"),
    # item 7: an input clearly of another kind than the training inputs
    Case("label-ids-to-colour-model", [*T, "{ids}", "--out", "{out}"], 0,
         r"warning: .*ids\.png: a 1-channel image with 9 values in 0\.\.8 \(a label-id map\?\), but the model "
         r"was trained on 3-channel images", unchanged=["{ids}"]),
    Case("label-ids-to-colour-model-strict", [*T, "{ids}", "--out", "{out}", "--strict"], 2,
         r"ids\.png: a 1-channel image with 9 values .*\(--strict\)", unchanged=["{ids}"]),
    Case("grey-photo-no-warning", [*T, "{grey}", "--out", "{out}", "--strict"], 0, r"wrote 1 images",
         then=_no_warning),
    # ... against the profile of the training inputs saved in the checkpoint (TL: a run trained on the
    # synthetic scenes' colour-coded label maps)
    Case("label-ids-to-colour-label-model", [*TL, "{scene_ids}", "--out", "{out}"], 0,
         r"warning: .*0001\.png: a 1-channel image with 9 values in 0\.\.8 \(a label-id map\?\), but the model "
         r"was trained on 3-channel colour labels with \d+ colours", unchanged=["{scene_ids}"]),
    Case("label-ids-to-colour-label-model-strict", [*TL, "{scene_ids}", "--out", "{out}", "--strict"], 2,
         r"0001\.png: a 1-channel image .*colour labels .*\(--strict\); nothing was written",
         unchanged=["{scene_ids}"], then=_nothing_written),
    Case("photo-to-colour-label-model", [*TL, "{scene_photo}", "--out", "{out}"], 0,
         r"warning: .*photo\.png: \d+% of its pixels are far from every one of the \d+ training colours"),
    Case("colour-labels-to-colour-label-model", [*TL, "{scene_labels}", "--out", "{out}", "--strict"], 0,
         r"wrote 1 images", then=_no_warning),
    # handled before issue 14, kept
    Case("bit-depth-12", [*T, "{in}", "--out", "{out}", "--bit-depth", "12"], 2, r"--bit-depth 12: expected 8 or 16"),
    Case("no-such-input", [*T, "{in}/nothing*.png", "--out", "{out}"], 2, r"no such file, folder or matching"),
    Case("no-images-in-folder", [*T, "{empty}", "--out", "{out}"], 2, r"no input images found"),
    Case("corrupt-input", [*T, "{corrupt}", "--out", "{out}"], 2, r"bad\.png.*not a readable image",
         unchanged=["{corrupt}"]),
    Case("unknown-backend", [*T, "{in}", "--out", "{out}", "--backend", "tf"], 2,
         r"--backend 'tf': expected one of auto, torch, torchscript, onnxruntime"),
]

#: Cases whose writer hits a full disk: what to patch, and on which call.
FAULTS: dict[str, tuple[Any, str, int]] = {
    "disk-full-second-output": (infer, "write_image", 2),
    "disk-full-gallery": (visual, "atomic_write_text", 1),
}
#: Cases that see a fixed amount of available memory.
MEMORY = {"huge-input-default-limit": 4_000_000_000}


def _prepare(case_id: str, tmp: Path) -> dict[str, Path]:
    paths = {"in": tmp / "in", "out": tmp / "out", "link": tmp / "link", "empty": tmp / "empty"}
    _png(paths["in"] / "a.png", seed=1)
    _png(paths["in"] / "b.png", seed=2)
    paths["empty"].mkdir()
    paths["link"].symlink_to(paths["in"], target_is_directory=True)
    out = paths["out"]
    if case_id == "out-file-hardlinked-to-input":
        out.mkdir()
        os.link(paths["in"] / "a.png", out / "a.png")
    elif case_id == "out-file-symlinked-to-input":
        out.mkdir()
        (out / "a.png").symlink_to(paths["in"] / "a.png")
    elif case_id in ("existing-output", "existing-output-overwrite"):
        out.mkdir()
        (out / "a.png").write_bytes(b"not mine")
    elif case_id in ("existing-gallery", "existing-output-no-gallery-other-name"):
        out.mkdir()
        (out / "index.html").write_text("<p>my own page</p>")
    elif case_id == "existing-gallery-input-copy":
        (out / "inputs").mkdir(parents=True)
        (out / "inputs" / "b.png").write_bytes(b"mine")
    odd = tmp / "odd"
    odd.mkdir()
    _png(odd / os.fsdecode(b"\xff\xfename.png"))
    paths["odd"] = odd
    if case_id.startswith("huge-"):
        paths["huge"] = _huge_png(tmp / "huge.png", 10000, 10000)
    if case_id == "decompression-bomb":
        paths["bomb"] = _huge_png(tmp / "bomb.png", 20000, 20000, pixels=False)
    paths["ids"] = tmp / "ids.png"
    Image.fromarray((np.arange(40 * 40).reshape(40, 40) % 9).astype(np.uint8)).save(paths["ids"])
    paths["grey"] = tmp / "grey.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8)).save(paths["grey"])
    paths["big"] = _png(tmp / "big.png", h=120, w=200)
    paths["corrupt"] = tmp / "bad.png"
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return paths


def _scene_inputs(scenes: Path, tmp: Path) -> dict[str, Path]:
    """The synthetic scenes' id map 0001 (ids 0..8), and one held-out scene's colour-coded label map
    and photo (the halves of aligned/val/*), as single files."""
    test_file = sorted((scenes / "aligned" / "val").glob("*.png"))[0]
    both = np.asarray(Image.open(test_file).convert("RGB"))
    w = both.shape[1] // 2
    paths = {"scenes": scenes, "scene_ids": scenes / "train_label" / "0001.png",
             "scene_labels": tmp / "scene" / "labels.png", "scene_photo": tmp / "scene" / "photo.png"}
    paths["scene_labels"].parent.mkdir()
    Image.fromarray(both[:, :w]).save(paths["scene_labels"])
    Image.fromarray(both[:, w:]).save(paths["scene_photo"])
    return paths


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_translate(case: Case, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path],
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    paths = _prepare(case.id, tmp_path) | {"run": tiny_run("pix2pix")}
    if case.argv[1] == TL[1]:
        paths |= _scene_inputs(tiny_data("scenes"), tmp_path)
        paths["colour_label_run"] = tiny_run("pix2pix", data=paths["scenes"] / "aligned")
    if case.id in FAULTS:
        module, name, fail_on = FAULTS[case.id]
        real, calls = getattr(module, name), [0]

        def full_disk(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == fail_on:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, full_disk)
    if case.id in MEMORY:
        monkeypatch.setattr(infer, "available_memory", lambda device: MEMORY[case.id])
    check_case(case, paths)


def test_table_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES) >= 15
