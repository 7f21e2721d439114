"""The served models and the way a request becomes a batch and a PNG, through the method's hooks.

A served model is a :class:`~pairgan.infer.Translator` (a run or checkpoint folder, PyTorch) or an
:class:`~pairgan.export.ExportedTranslator` (an exported file). What it takes is its method's
:meth:`~pairgan.methods.base.Method.request_schema`; uploads become an item through
:meth:`~pairgan.methods.base.Method.item_from_upload` and edits go to
:meth:`~pairgan.methods.base.Method.apply_edits`, so nothing here knows a method by name.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pairgan.checkpoint import CONFIG_FILE
from pairgan.compiled import KINDS
from pairgan.config import Config
from pairgan.data.transforms import resize, to_array, to_tensor
from pairgan.errors import DataError
from pairgan.export import ExportedTranslator
from pairgan.hub import is_hub_ref, parse_hub_ref
from pairgan.infer import Translator
from pairgan.methods.base import Method
from pairgan.serve.limits import (
    MAX_JSON_INT,
    ApiError,
    ImageInfo,
    bounded_json,
    short_option,
)

__all__ = ["INFERENCE_LOCK", "ServedModel", "build_batch", "encode_png", "load_models", "parse_options",
           "render_output"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Inference runs one request at a time in the process: seeded randomness (pix2pix's paper-mode
#: dropout, random instance features) draws from torch's process-wide generator, which two
#: concurrent requests would interleave. Decoding and PNG encoding run outside it, in parallel.
INFERENCE_LOCK = threading.Lock()

#: The options every model has, as ``GET /v1/models`` lists them; a method's request schema adds
#: or replaces entries.
log = logging.getLogger(__name__)

_BASE_OPTIONS: dict[str, Any] = {"seed": True, "variant": None, "features": None, "edits": False, "pose": None}


@dataclass
class ServedModel:
    """One model behind the API: a Translator (PyTorch) or an ExportedTranslator (onnxruntime)."""

    name: str
    translator: Translator
    backend: str
    palette: list[list[int]] | None = None
    classes: list[str] | None = None
    thing_ids: list[int] | None = None
    lock: Any = field(default_factory=lambda: INFERENCE_LOCK)

    @property
    def method(self) -> Method:
        return self.translator.method

    @property
    def cfg(self) -> Config:
        assert self.translator.cfg is not None  # every loaded translator has its config
        return self.translator.cfg

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The method's request schema, read once (it may read the training data's files)."""
        return self.method.request_schema()

    @property
    def kind(self) -> str:
        """``label`` (class-id maps, optionally with instance maps), ``pose`` (a person image and
        a target pose) or ``image``."""
        return str(self.schema["kind"])

    @property
    def options(self) -> dict[str, Any]:
        """The request options this model offers (``GET /v1/models``)."""
        return _BASE_OPTIONS | self.schema["options"]

    @property
    def takes_instance(self) -> bool:
        """Whether an instance map may be uploaded with the label map."""
        return self.kind == "label" and bool(self.cfg.data.instance)

    @property
    def upload_names(self) -> dict[str, str]:
        """How error messages name each upload (never by its path on the server)."""
        return {"image": "the label map" if self.kind == "label" else "the image", "instance": "the instance map"}

    def info(self) -> dict[str, Any]:
        d = self.cfg.data
        fixed = self.translator.fixed_size
        crop = int(d.crop_size)
        kind = self.kind
        spec: dict[str, Any] = {
            "kind": kind,
            "field": "image",
            "channels": int(d.input_nc),
            "label_nc": int(d.label_nc),
            "instance": self.takes_instance,
            "size_multiple": self.translator.size_multiple,
            "recommended_size": list(fixed) if fixed else [crop, crop],
            "fixed_size": list(fixed) if fixed else None,
            "paint": "palette" if self.palette else ("free" if kind == "image" else None),
        }
        return {
            "name": self.name,
            "method": self.cfg.method,
            "backend": self.backend,
            "mode": self.translator.mode,
            "input": spec,
            "output": {"channels": int(d.output_nc), "format": "png"},
            "palette": self.palette,
            "classes": self.classes,
            "thing_ids": self.thing_ids,
            "options": self.options,
        }


def _default_name(path: Path, spec: str) -> str:
    """A run folder's name for run or checkpoint folders; a file's stem for exported files; a Hub
    model's repository name."""
    if is_hub_ref(spec):
        return parse_hub_ref(spec).repo_id.split("/")[-1]
    if path.is_file():
        return path.stem
    p = path.resolve()
    if (p / CONFIG_FILE).is_file() and p.parent.name == "checkpoints":
        return p.parent.parent.name
    if p.name == "checkpoints":
        return p.parent.name
    return p.name


def load_models(specs: list[str], device: str = "auto", mode: str | None = None,
                backend: str = "auto") -> dict[str, ServedModel]:
    """``PATH`` or ``NAME=PATH`` -> served models: run/checkpoint folders run in PyTorch (``backend``
    ``auto``: a compiled graph where exact, see :mod:`pairgan.compiled`; ``torch``: eager), exported
    files (``pairgan export``) in onnxruntime/TorchScript. Names are unique ([A-Za-z0-9._-])."""
    models: dict[str, ServedModel] = {}
    for spec in specs:
        name, sep, path_text = spec.partition("=")
        if not sep or not _NAME_RE.match(name) or "/" in name:
            name, path_text = "", spec
        path = Path(path_text)
        tr: Translator
        if path.is_file():
            tr = ExportedTranslator.from_file(path)
        else:  # a run or checkpoint folder, a packaged model or a Hub model (hf://OWNER/NAME)
            tr = Translator.from_checkpoint(path_text, device=device, mode=mode, backend=backend)
        classes = tr.method.class_info()
        base = name or re.sub(r"[^A-Za-z0-9._-]", "-", _default_name(path, path_text)).strip("-.") or "model"
        unique, i = base, 2
        while unique in models:
            unique, i = f"{base}-{i}", i + 1
        models[unique] = ServedModel(unique, tr, tr.backend, classes["palette"], classes["classes"],
                                     classes["thing_ids"])
    if not models:
        raise ValueError("no models to serve")
    return models


def warm_up(model: ServedModel) -> str | None:
    """Build (or load from the cache) ``model``'s compiled graph before the first request, for an
    upload of the training crop size as the server fits it to the training scale, so that request
    is not the one that waits for the compilation (seconds). Returns what was done, in one line;
    None for a model that runs eagerly or an exported file (nothing to compile). Uploads of other
    sizes still compile on their first request."""
    tr = model.translator
    if isinstance(tr, ExportedTranslator) or tr.backend not in KINDS:
        return None
    crop = tr.cfg.data.crop_size
    example = tr.method.example_batch(1, crop, crop)
    item = {k: v[0] for k, v in example.items() if torch.is_tensor(v)}
    item, _ = tr.method.to_training_scale(item, None, size_multiple=tr.size_multiple)
    batch = {k: v.unsqueeze(0) for k, v in item.items()}
    h, w = next(iter(batch.values())).shape[-2:]
    t0 = time.perf_counter()
    try:
        tr.translate_batch(batch, seed=0)
    except (RuntimeError, ValueError) as exc:  # serving goes on: the first request compiles, or runs eagerly
        return f"{model.name}: warm-up skipped ({str(exc).splitlines()[0][:200]})"
    return (f"{model.name}: compiled graph for {int(w)}x{int(h)} inputs ready in {time.perf_counter() - t0:.1f} s "
            f"({tr.describe_backend()}); other sizes compile on their first request")


# --------------------------------------------------------------------------- request -> batch


def _int_option(name: str, value: str | None, lo: int, hi: int, default: int | None = None) -> int | None:
    if value is None or str(value).strip() == "":
        return default
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ApiError(422, "bad_option", f"{name} {value!r}: expected an integer {lo}..{hi}") from None
    if not lo <= v <= hi:
        raise ApiError(422, "bad_option", f"{name} {v}: expected an integer {lo}..{hi}")
    return v


def parse_options(model: ServedModel, *, seed: str | None, variant: str | None, features: str | None,
                  edits: str | None, pose: str | None) -> tuple[int, dict[str, Any]]:
    """Validate the request's options against what ``model`` offers -> (seed, batch options)."""
    opts: dict[str, Any] = {}
    offered = model.options
    seed, variant, features = (short_option(n, v) for n, v in (("seed", seed), ("variant", variant),
                                                                  ("features", features)))
    s = _int_option("seed", seed, 0, 2**31 - 1, 0)
    if variant not in (None, ""):
        if not offered["variant"]:
            raise ApiError(422, "bad_option", f"variant: model {model.name!r} ({model.cfg.method}) has one output; "
                                              "variants are offered by CRN models")
        k = int(offered["variant"]["k"])
        opts["variant"] = "all" if str(variant).strip() == "all" else _int_option("variant", variant, 0, k - 1)
    if features not in (None, "") or edits not in (None, ""):
        if not offered["features"]:
            raise ApiError(422, "bad_option", f"features/edits: model {model.name!r} has no instance feature "
                                              "encoder (pix2pixHD with model.use_features=true)")
    if features not in (None, ""):
        f = str(features).strip()
        if f == "random":
            opts["features"] = "random"
        elif f.startswith("cluster:"):
            opts["features"] = f"cluster:{_int_option('features cluster', f[8:], 0, MAX_CLUSTER)}"
        else:
            raise ApiError(422, "bad_option", f"features {f!r}: expected 'random' or 'cluster:K' (the API reads no "
                                              "files: 'encode:IMAGE' is a command-line option)")
    if edits not in (None, ""):
        opts["edits"] = _parse_edits(edits)
    if pose not in (None, ""):
        if not offered["pose"]:
            raise ApiError(422, "bad_option", f"pose: model {model.name!r} ({model.cfg.method}) takes no pose")
        opts["pose_keypoints"] = _parse_pose(pose, len(offered["pose"]["keypoints"]))
    elif offered["pose"]:
        raise ApiError(422, "bad_option", f"pose: model {model.name!r} needs the target pose "
                                          "(JSON [[y, x], ...] per keypoint)")
    return int(s), opts


def _parse_pose(text: str, n_keypoints: int) -> np.ndarray:
    """JSON ``[[y, x], ...]`` (one per keypoint; ``null`` or negative = missing) -> float [K, 2], NaN missing."""
    expected = (f"JSON [[y, x], ...] with {n_keypoints} keypoints in pixels of the uploaded image (null or "
                "[-1, -1] for a missing one)")
    doc = bounded_json("pose", text, expected)
    bad = ApiError(422, "bad_option", f"pose: expected {expected}")
    if not isinstance(doc, list) or len(doc) != n_keypoints:
        raise bad
    rows = []
    for p in doc:
        if p is None:
            rows.append([float("nan")] * 2)
        elif isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p):
            rows.append([float(p[0]), float(p[1])])
        else:
            raise bad
    arr = np.asarray(rows, np.float64).reshape(-1, 2)
    arr[(arr < 0).any(axis=1)] = np.nan
    return arr


#: Largest feature cluster index an option may name.
MAX_CLUSTER = 10_000
#: Most edits one request may carry.
MAX_EDITS = 10_000


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_index(v: Any, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= hi


def _parse_edits(text: str) -> list[tuple[str, Any, int]]:
    """``{"INSTANCE_ID": K, ...}`` or ``[{"x": X, "y": Y, "cluster": K}, ...]`` (the instance under
    pixel (x, y)) -> [("id", id, K) | ("at", (y, x), K)]."""
    expected = (f'JSON {{"INSTANCE_ID": K, ...}} or [{{"x": X, "y": Y, "cluster": K}}, ...] with integers '
                f"0..{MAX_JSON_INT} (K: 0..{MAX_CLUSTER}), at most {MAX_EDITS} edits")
    doc = bounded_json("edits", text, expected)
    bad = ApiError(422, "bad_option", f"edits: expected {expected}")
    out: list[tuple[str, Any, int]] = []
    if isinstance(doc, dict):
        for key, k in doc.items():
            key = key.strip()
            if not (key.isdigit() and len(key) <= len(str(MAX_JSON_INT)) and int(key) <= MAX_JSON_INT):
                raise ApiError(422, "bad_option", f"edits: instance id {key[:30]!r}; expected {expected}")
            if not _is_index(k, MAX_CLUSTER):
                raise ApiError(422, "bad_option", f"edits: cluster {str(k)[:30]} of instance {key}; expected {expected}")
            out.append(("id", int(key), k))
    elif isinstance(doc, list):
        for e in doc:
            if not (isinstance(e, dict) and _is_index(e.get("x"), MAX_JSON_INT) and _is_index(e.get("y"), MAX_JSON_INT)
                    and _is_index(e.get("cluster"), MAX_CLUSTER)):
                raise bad
            out.append(("at", (e["y"], e["x"]), e["cluster"]))
    else:
        raise bad
    if len(out) > MAX_EDITS:
        raise bad
    return out


def _scaled_edit(edit: tuple[str, Any, int], upload: tuple[int, int], fitted: tuple[int, int]) -> tuple[str, Any, int]:
    """An ``("at", (y, x), K)`` edit given in the upload's pixels, moved to the fitted item's pixels."""
    kind, where, k = edit
    if kind != "at":
        return edit
    y, x = where
    return kind, (min(int(y * fitted[0] / upload[0]), fitted[0] - 1), min(int(x * fitted[1] / upload[1]), fitted[1] - 1)), k


def build_batch(model: ServedModel, uploads: dict[str, tuple[bytes, ImageInfo]], opts: dict[str, Any],
                workdir: Path) -> tuple[dict[str, Any], str | None]:
    """Decode the uploads (saved under server-chosen names in ``workdir``) the way the method
    reads them and make a batch of one; the method's read errors become 422 answers that name
    the upload, never its path. Also returns why the image is clearly not the kind of input the
    model was trained on (:meth:`~pairgan.infer.Translator.input_mismatch`, naming the upload), or None."""
    files: dict[str, Path] = {}
    for key, (data, info) in uploads.items():
        path = workdir / f"{'upload' if key == 'image' else key}{info.extension}"
        path.write_bytes(data)
        files[key] = path
    try:
        item = model.method.item_from_upload(files, opts)
    except DataError as exc:
        msg = str(exc)
        for key, path in files.items():
            msg = msg.replace(str(path), model.upload_names[key])
        raise ApiError(422, "wrong_channels" if "channels" in msg else "bad_image", msg) from None
    warning = model.translator.input_mismatch(files["image"]) if model.kind != "pose" else None
    if warning is not None:
        warning = warning.replace(str(files["image"]), model.upload_names["image"])
        log.warning("%s", warning)
    # The model runs at the scale it was trained at (as `pairgan translate` does); the answer is
    # resized back to the upload's size (render_output), so painted maps and answers line up.
    upload_size = tuple(int(n) for n in next(v for v in item.values() if torch.is_tensor(v)).shape[-2:])
    if not model.method.reads_at_training_scale:
        item, _ = model.method.to_training_scale(item, None, size_multiple=model.translator.size_multiple)
        fitted_size = tuple(int(n) for n in next(v for v in item.values() if torch.is_tensor(v)).shape[-2:])
        if fitted_size != upload_size:
            opts["answer_size"] = upload_size
            if "edits" in opts:  # positions are given in the upload's pixels
                opts["edits"] = [_scaled_edit(e, upload_size, fitted_size) for e in opts["edits"]]
    batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
    for k in ("variant", "features"):
        if k in opts:
            batch[k] = opts[k]
    if "edits" in opts:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts.get("seed", 0))  # the draws translate makes: unedited objects keep theirs
            batch = model.method.apply_edits(batch, opts["edits"])
    return batch, warning


# --------------------------------------------------------------------------- output -> PNG


def encode_png(out: torch.Tensor) -> bytes:
    """[C, H, W] in [-1, 1] -> 8-bit PNG bytes (1 channel grey, 3 RGB, 4 RGBA, else the first 3)."""
    arr = ((out.detach().float().cpu().clamp(-1, 1) + 1) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)
    arr = arr.permute(1, 2, 0).numpy()
    c = arr.shape[2]
    if c == 1:
        im = Image.fromarray(arr[:, :, 0], "L")
    elif c == 2:
        im = Image.fromarray(arr[:, :, 0], "L")
    elif c == 4:
        im = Image.fromarray(arr, "RGBA")
    else:
        im = Image.fromarray(np.ascontiguousarray(arr[:, :, :3]), "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def render_output(model: ServedModel, out: torch.Tensor, opts: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """One translated image ``[C, H, W]`` -> (PNG bytes, response headers): with ``variant=all``
    the k images of ``[k C, H, W]`` side by side (``[C, H, k W]``). With ``opts["answer_size"]``
    (set by :func:`build_batch` when the upload was resized to the training scale) the image is
    resized back to the upload's (h, w): bicubic, nearest for colour-coded label maps (as
    ``Translator.translate(..., scale="keep")``)."""
    headers: dict[str, str] = {}
    if "answer_size" in opts:
        h, w = opts["answer_size"]
        out = to_tensor(resize(to_array(out.detach().float().cpu()), (w, h), model.method.resample_nearest("target")))
    if opts.get("variant") == "all":
        c = int(model.cfg.data.output_nc)
        k = out.shape[0] // c
        headers["X-Pairgan-Variants"] = str(k)
        out = torch.cat([out[i * c:(i + 1) * c] for i in range(k)], dim=2)
    return encode_png(out), headers
