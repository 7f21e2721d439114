"""The FastAPI application of ``pairgan serve``: the REST API and the web editor.

Endpoints (all errors are JSON ``{"error": {"status", "code", "message"}}``):

* ``GET /`` — the single-page editor (``static/``); ``GET /static/{editor.js,editor.css}``.
* ``GET /healthz`` — liveness, the models and the worker queue's counters.
* ``GET /v1/models`` — every model: name, method, backend, input spec, class palette, options.
* ``POST /v1/translate`` — multipart form: ``image`` (an image, or a label map / colour-coded label
  image for label models; ``label`` is accepted as its alias), ``instance`` (an instance map for
  models with instance maps; optional), ``model``, ``seed``, ``variant``, ``features``, ``edits``,
  ``pose``. Answers a PNG. No field names a file on the server: only uploaded bytes are read.
* ``GET /docs``, ``GET /openapi.json`` — the OpenAPI description.

Uploads are checked before they cost anything: the body size (413), the image header's width x
height (413, before decoding: decompression bombs), the format by content (415), the pixels by
decoding (422), channels (422), options (422), the model (404); inference runs in a bounded
worker queue (503 when full) under a per-request time limit (504).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

import numpy as np
import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pairgan.serve.limits import ApiError, BodyLimitMiddleware, ImageInfo, Limits, QueueFull, WorkQueue, probe_image

STATIC = {"editor.js": "text/javascript", "editor.css": "text/css"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "bad_request", 503: "busy", 504: "timeout"}


# --------------------------------------------------------------------------- models

#: Inference runs one request at a time in the process: seeded randomness (pix2pix's paper-mode
#: dropout, random instance features) draws from torch's process-wide generator, which two
#: concurrent requests would interleave. Decoding and PNG encoding run outside it, in parallel.
INFERENCE_LOCK = threading.Lock()


@dataclass
class ServedModel:
    """One model behind the API: a Translator (PyTorch) or an ExportedTranslator (onnxruntime)."""

    name: str
    translator: Any
    backend: str
    palette: list[list[int]] | None = None
    classes: list[str] | None = None
    thing_ids: list[int] | None = None
    lock: Any = field(default_factory=lambda: INFERENCE_LOCK)

    @property
    def method(self) -> Any:
        return self.translator.method

    @property
    def cfg(self) -> Any:
        return self.translator.cfg

    @property
    def kind(self) -> str:
        """``label`` (class-id maps, optionally with instance maps), ``pose`` (a person image and
        a target pose) or ``image``."""
        keys = tuple(getattr(self.method, "input_keys", ("A",)))
        if "label" in keys:
            return "label"
        if "target_pose" in keys:
            return "pose"
        return "image"

    @property
    def variants(self) -> int | None:
        k = getattr(self.method, "num_variants", None)
        return int(k) if k else None

    @property
    def has_features(self) -> bool:
        if "E" in getattr(self.method, "nets", {}):
            return True
        meta = getattr(self.translator, "meta", None)
        return bool(meta and any("feat" in k for k in meta.get("inputs", {})))

    def info(self) -> dict[str, Any]:
        d = self.cfg.data
        m = self.method
        fixed = getattr(self.translator, "fixed_size", None)
        crop = int(d.crop_size)
        mult = int(getattr(self.translator, "size_multiple", 0) or m.size_multiple)
        kind = self.kind
        spec: dict[str, Any] = {
            "kind": kind,
            "field": "image",
            "channels": int(d.input_nc),
            "label_nc": int(d.label_nc),
            "instance": bool(d.instance) and kind == "label",
            "size_multiple": mult,
            "recommended_size": list(fixed) if fixed else [crop, crop],
            "fixed_size": list(fixed) if fixed else None,
            "paint": "palette" if self.palette else ("free" if kind == "image" else None),
        }
        options: dict[str, Any] = {"seed": True, "variant": None, "features": None, "edits": False, "pose": None}
        if self.variants:
            options["variant"] = {"k": self.variants, "values": list(range(self.variants)) + ["all"]}
        if self.has_features:
            options["features"] = ["random", "cluster:K"]
            options["edits"] = True
            options["clusters"] = _cluster_counts(m)
        if kind == "pose":
            options["pose"] = _pose_spec(self)
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
            "options": options,
        }


def _cluster_counts(method: Any) -> dict[str, int] | None:
    find = getattr(method, "find_clusters", None)
    if find is None:
        return None
    try:
        clusters = find()
    except Exception:
        return None
    return {str(int(c)): int(v.shape[0]) for c, v in clusters.items()} if clusters else None


def _pose_spec(model: Any) -> dict[str, Any]:
    """Keypoint names, limbs and a default target pose (fractions of the image: the first
    annotation of the training data when it is at hand)."""
    from pairgan.data import poses

    spec: dict[str, Any] = {
        "keypoints": list(poses.KEYPOINT_NAMES), "limbs": [list(map(int, l)) for l in poses.LIMBS],
        "format": "JSON [[y, x], ...] in pixels of the uploaded image, one per keypoint; null = missing",
        "default": None,
    }
    try:
        root = Path(model.cfg.data.path)
        ann = poses.read_annotations(root / poses.ANNOTATIONS_FILE)
        name, kp = next(iter(ann.items()))
        from pairgan.data.io import image_size

        w, h = image_size(poses.image_path(root, name))
        spec["default"] = [[-1, -1] if not np.isfinite(p).all() else [float(p[0]) / h, float(p[1]) / w] for p in kp]
    except Exception:
        pass
    return spec


def _default_name(path: Path) -> str:
    """A run folder's name for run or checkpoint folders; a file's stem for exported files."""
    if path.is_file():
        return path.stem
    p = path.resolve()
    if (p / "config.yaml").is_file() and p.parent.name == "checkpoints":
        return p.parent.parent.name
    if p.name == "checkpoints":
        return p.parent.name
    return p.name


def load_models(specs: list[str], device: str = "auto", mode: str | None = None) -> dict[str, ServedModel]:
    """``PATH`` or ``NAME=PATH`` -> served models: run/checkpoint folders run in PyTorch, exported
    files (``pairgan export``) in onnxruntime/TorchScript. Names are unique ([A-Za-z0-9._-])."""
    from pairgan.export import ExportedTranslator, model_classes
    from pairgan.infer import Translator

    models: dict[str, ServedModel] = {}
    for spec in specs:
        name, sep, path_text = spec.partition("=")
        if not sep or not _NAME_RE.match(name) or "/" in name:
            name, path_text = "", spec
        path = Path(path_text)
        if path.is_file():
            tr = ExportedTranslator.from_file(path)
            backend = tr.backend
            classes = {k: tr.meta.get(k) for k in ("palette", "classes", "thing_ids")}
        else:
            tr = Translator.from_checkpoint(path, device=device, mode=mode)
            backend = "torch"
            attach = getattr(tr.method, "attach_checkpoint", None)
            if attach is not None and tr.checkpoint is not None:
                attach(tr.checkpoint)  # pix2pixHD: the run's feature clusters
            classes = model_classes(tr.cfg)
        base = name or re.sub(r"[^A-Za-z0-9._-]", "-", _default_name(path)).strip("-.") or "model"
        unique, i = base, 2
        while unique in models:
            unique, i = f"{base}-{i}", i + 1
        models[unique] = ServedModel(unique, tr, backend, classes["palette"], classes["classes"], classes["thing_ids"])
    if not models:
        raise ValueError("no models to serve")
    return models


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
    s = _int_option("seed", seed, 0, 2**31 - 1, 0)
    if variant not in (None, ""):
        k = model.variants
        if not k:
            raise ApiError(422, "bad_option", f"variant: model {model.name!r} ({model.cfg.method}) has one output; "
                                              "variants are offered by CRN models")
        opts["variant"] = "all" if str(variant).strip() == "all" else _int_option("variant", variant, 0, k - 1)
    if features not in (None, "") or edits not in (None, ""):
        if not model.has_features:
            raise ApiError(422, "bad_option", f"features/edits: model {model.name!r} has no instance feature "
                                              "encoder (pix2pixHD with model.use_features=true)")
    if features not in (None, ""):
        f = str(features).strip()
        if f == "random":
            opts["features"] = "random"
        elif f.startswith("cluster:"):
            opts["features"] = f"cluster:{_int_option('features cluster', f[8:], 0, 10_000)}"
        else:
            raise ApiError(422, "bad_option", f"features {f!r}: expected 'random' or 'cluster:K' (the API reads no "
                                              "files: 'encode:IMAGE' is a command-line option)")
    if edits not in (None, ""):
        opts["edits"] = _parse_edits(edits)
    if pose not in (None, ""):
        if model.kind != "pose":
            raise ApiError(422, "bad_option", f"pose: model {model.name!r} ({model.cfg.method}) takes no pose")
        opts["pose_keypoints"] = _parse_pose(pose, model)
    elif model.kind == "pose":
        raise ApiError(422, "bad_option", f"pose: model {model.name!r} needs the target pose "
                                          "(JSON [[y, x], ...] per keypoint)")
    return int(s), opts


def _parse_pose(text: str, model: ServedModel) -> np.ndarray:
    """JSON ``[[y, x], ...]`` (one per keypoint; ``null`` or negative = missing) -> float [K, 2], NaN missing."""
    from pairgan.data.poses import N_KEYPOINTS

    bad = ApiError(422, "bad_option", f"pose: expected JSON [[y, x], ...] with {N_KEYPOINTS} keypoints in pixels of "
                                      "the uploaded image (null or [-1, -1] for a missing one)")
    try:
        doc = json.loads(text)
        if not isinstance(doc, list) or len(doc) != N_KEYPOINTS:
            raise ValueError
        rows = [[float("nan")] * 2 if p is None else [float(p[0]), float(p[1])] for p in doc]
    except (ValueError, TypeError, IndexError, KeyError):
        raise bad from None
    arr = np.asarray(rows, np.float64)
    if np.isinf(arr).any():
        raise bad
    arr[(arr < 0).any(axis=1)] = np.nan
    return arr


def _parse_edits(text: str) -> list[tuple[str, Any, int]]:
    """``{"INSTANCE_ID": K, ...}`` or ``[{"x": X, "y": Y, "cluster": K}, ...]`` (the instance under
    pixel (x, y)) -> [("id", id, K) | ("at", (y, x), K)]."""
    bad = ApiError(422, "bad_option", 'edits: expected JSON {"INSTANCE_ID": K, ...} or '
                                      '[{"x": X, "y": Y, "cluster": K}, ...] with non-negative integers')
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            out = [("id", int(k), int(v)) for k, v in doc.items()]
        elif isinstance(doc, list):
            out = [("at", (int(e["y"]), int(e["x"])), int(e["cluster"])) for e in doc]
        else:
            raise ValueError
    except (ValueError, TypeError, KeyError):
        raise bad from None
    if len(out) > 10_000 or any(k < 0 or (min(t) if isinstance(t, tuple) else t) < 0 for _, t, k in out):
        raise bad
    return out


def _decode(path: Path, what: str, reader: Callable[[Path], Any]) -> Any:
    """Run a pairgan reader on an upload saved under a server-chosen name; its errors -> 422."""
    from pairgan.errors import DataError

    try:
        return reader(path)
    except DataError as exc:
        msg = str(exc).replace(str(path), what)
        code = "wrong_channels" if "channels" in msg else "bad_image"
        raise ApiError(422, code, msg) from None


def build_batch(model: ServedModel, uploads: dict[str, tuple[bytes, ImageInfo]], opts: dict[str, Any],
                workdir: Path) -> dict[str, Any]:
    """Decode the uploads the way the method reads files and make a batch of one."""
    method = model.method
    image_bytes, info = uploads["image"]
    path = workdir / f"upload{info.extension}"
    path.write_bytes(image_bytes)
    kind = model.kind
    if kind == "image":
        item, _ = _decode(path, "the image", lambda p: method.load_inference_input(p, aligned=False, options={}))
    elif kind == "label":
        item = _label_item(model, path, uploads, workdir)
    else:
        item = _pose_item(model, path, opts)
    batch = {k: v.unsqueeze(0) for k, v in item.items() if torch.is_tensor(v)}
    for k in ("variant", "features"):
        if k in opts:
            batch[k] = opts[k]
    if "edits" in opts:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(opts.get("seed", 0))  # the draws translate makes: unedited objects keep theirs
            batch = _apply_edits(model, batch, opts)
    return batch


def _label_item(model: ServedModel, path: Path, uploads: dict[str, tuple[bytes, ImageInfo]],
                workdir: Path) -> dict[str, Any]:
    from pairgan.data.io import read_image
    from pairgan.data.labels import label_ids, read_instance_map

    d = model.cfg.data
    palette = np.asarray(model.palette, np.uint8) if model.palette else None
    arr = _decode(path, "the label map", lambda p: read_image(p, palette_indices=True))
    ids = _decode(path, "the label map", lambda p: label_ids(arr, p, d.label_nc, palette))
    item: dict[str, Any] = {"label": torch.as_tensor(ids).long().reshape(1, *ids.shape)}
    if d.instance:
        if "instance" in uploads:
            data, info = uploads["instance"]
            ipath = workdir / f"instance{info.extension}"
            ipath.write_bytes(data)
            inst = _decode(ipath, "the instance map", read_instance_map)
            if inst.shape != ids.shape:
                raise ApiError(422, "bad_image", f"the instance map is {inst.shape[1]}x{inst.shape[0]}, the label "
                                                 f"map {ids.shape[1]}x{ids.shape[0]}; expected the same size")
        else:
            inst = derive_instances(ids, model.thing_ids)
        item["inst"] = torch.as_tensor(inst).long().reshape(1, *inst.shape)
    return item


def connected_components(ids: np.ndarray) -> np.ndarray:
    """4-connected regions of equal value: each pixel's region root (the smallest flat index in it)."""
    h, w = ids.shape
    flat = ids.ravel()
    idx = np.arange(h * w).reshape(h, w)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    keep = flat[a] == flat[b]
    a, b = a[keep], b[keep]
    root = np.arange(h * w)
    while True:  # hook the larger root of every edge onto the smaller, then compress fully
        ra, rb = root[a], root[b]
        differ = ra != rb
        if not differ.any():
            return root.reshape(h, w)
        lo, hi = np.minimum(ra[differ], rb[differ]), np.maximum(ra[differ], rb[differ])
        np.minimum.at(root, hi, lo)
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt


def derive_instances(ids: np.ndarray, thing_ids: list[int] | None = None) -> np.ndarray:
    """An instance map for a label map painted without one (Cityscapes convention): each
    4-connected region of a countable class (``thing_ids``; all classes when unknown) is one
    instance ``class * 1000 + k``; other classes (and class 0) keep their class id (no instances)."""
    roots = connected_components(ids).ravel()
    flat = ids.ravel().astype(np.int64)
    out = flat.copy()
    for c in np.unique(flat):
        if int(c) == 0 or (thing_ids is not None and int(c) not in thing_ids):
            continue  # class 0 cannot carry instances: ids below 1000 are class ids
        mask = flat == c
        _, k = np.unique(roots[mask], return_inverse=True)
        out[mask] = int(c) * 1000 + k
    return out.reshape(ids.shape)


def _apply_edits(model: ServedModel, batch: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """pix2pixHD cluster editing: the feature map of the ``features`` option (default: random
    centres, seeded) with each edited instance's vector replaced by centre K of its class; every
    other instance keeps its features, so the rest of the image stays as it was."""
    method = model.method
    ids = batch.get("inst", batch.get("label"))
    clusters = method.find_clusters(batch) if hasattr(method, "find_clusters") else None
    if not clusters:
        raise ApiError(422, "bad_option", f"edits: model {model.name!r} has no feature clusters "
                                          "(make them with `pairgan features cluster RUN`)")
    h, w = ids.shape[-2:]
    targets = []
    for how, where, k in opts["edits"]:
        if how == "at":
            y, x = where
            if not (0 <= y < h and 0 <= x < w):
                raise ApiError(422, "bad_option", f"edits: pixel (x={x}, y={y}) is outside the {w}x{h} map")
            where = int(ids[0, 0, y, x])
        elif not bool((ids == where).any()):
            raise ApiError(422, "bad_option", f"edits: no instance {where} in the label/instance map")
        targets.append((where, k))
    feat = method.instance_features(dict(batch), batch.get("features"))
    for inst_id, k in targets:
        mask = ids == inst_id
        one = method.sample_features(ids, k, clusters)
        feat = torch.where(mask.expand_as(feat), one, feat)
    batch = dict(batch)
    batch["feat_map"] = feat
    return batch


def _pose_item(model: ServedModel, path: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """GGB: the person image and the target pose's heat maps, through the data set's evaluation
    geometry (as ``load_inference_input`` does for files): the keypoints are in the upload's pixels."""
    from pairgan.data.poses import PoseGeometry, heatmaps, load_rgb
    from pairgan.data.transforms import PairedTransform, to_tensor

    d = model.cfg.data
    src = _decode(path, "the image", lambda p: load_rgb(p, d.input_nc))
    transform = PairedTransform(d.preprocess, d.load_size, d.crop_size, d.flip, train=False,
                                size_multiple=model.method.size_multiple)
    try:
        geo = PoseGeometry(transform, src.shape[1], src.shape[0], None)
    except ValueError as exc:
        raise ApiError(422, "bad_image", f"the image: {exc}") from None
    src = geo.image(src)
    h, w = src.shape[:2]
    kp = geo.keypoints(opts["pose_keypoints"].astype(np.float32), frame=geo.src)
    return {"source": to_tensor(src), "target_pose": torch.from_numpy(heatmaps(kp, h, w, d.pose_sigma))}


def encode_png(out: torch.Tensor) -> bytes:
    """[C, H, W] in [-1, 1] -> 8-bit PNG bytes (1 channel grey, 3 RGB, 4 RGBA, else the first 3)."""
    from PIL import Image

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


def _variants_strip(model: ServedModel, out: torch.Tensor) -> torch.Tensor:
    """CRN ``variant=all`` ([3k, H, W]) -> the k images side by side ([3, H, k W])."""
    c = int(model.cfg.data.output_nc)
    k = out.shape[0] // c
    return torch.cat([out[i * c:(i + 1) * c] for i in range(k)], dim=2)


# --------------------------------------------------------------------------- the app


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}}, status_code=status,
                        headers=headers)


def _static(name: str) -> str:
    from importlib.resources import files

    return (files("pairgan.serve") / "static" / name).read_text(encoding="utf-8")


def create_app(models: dict[str, ServedModel], limits: Limits | None = None) -> FastAPI:
    """The FastAPI application serving ``models`` under ``limits``."""
    from pairgan import __version__

    limits = limits or Limits()
    queue = WorkQueue(limits.workers, limits.queue_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        queue.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="pairgan",
        version=__version__,
        description="Paired image-to-image translation. POST an image (or a label map) to /v1/translate and get "
                    "the translated PNG; GET /v1/models lists the models, their inputs and palettes. "
                    "The web editor is at /.",
    )
    app.state.models = models
    app.state.limits = limits
    app.state.queue = queue
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return _error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
        return _error_response(422, "bad_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        return _error_response(500, "internal_error", f"{type(exc).__name__}: {str(exc)[:500]}")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    # ------------------------------------------------------------------ pages
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def editor() -> HTMLResponse:
        return HTMLResponse(_static("index.html"), headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                       "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:  # a fixed list: no path from the request reaches the file system
            raise ApiError(404, "not_found", f"no static file {name!r}")
        return Response(_static(name), media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------ API
    @app.get("/healthz", tags=["service"], summary="Liveness and queue counters")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "models": list(models), "queue": queue.stats(),
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                           "timeout_s": limits.timeout_s}}

    @app.get("/v1/models", tags=["models"], summary="The served models, their inputs, palettes and options")
    def list_models() -> dict[str, Any]:
        return {"models": [m.info() for m in models.values()],
                "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels}}

    @app.post(
        "/v1/translate",
        tags=["translate"],
        summary="Translate one image or label map; answers a PNG",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The translated image (PNG)."},
                   404: {"description": "Unknown model"}, 413: {"description": "Upload or image too large"},
                   415: {"description": "Not a PNG/JPEG/BMP/TIFF image"},
                   422: {"description": "Bad image, channels or options"},
                   503: {"description": "Queue full, retry later"}, 504: {"description": "Timed out"}},
    )
    async def translate(
        image: Optional[UploadFile] = File(None, description="The input image; for label models a label map "
                                           "(1-channel ids, or colour-coded RGB in the model's palette)."),
        label: Optional[UploadFile] = File(None, description="Alias of `image` for label maps."),
        instance: Optional[UploadFile] = File(None, description="Instance map (label models with instance "
                                              "maps); derived from the label map's connected regions when absent."),
        model: Optional[str] = Form(None, description="Model name (GET /v1/models); optional with one model."),
        seed: Optional[str] = Form(None, description="Seed of any randomness (dropout in pix2pix's paper mode, "
                                   "random features). Default 0: the same input gives the same output."),
        variant: Optional[str] = Form(None, description="CRN: output variant 0..k-1, or 'all' (side by side)."),
        features: Optional[str] = Form(None, description="pix2pixHD with features: 'random' or 'cluster:K'."),
        edits: Optional[str] = Form(None, description='pix2pixHD with features: JSON {"INSTANCE_ID": K} sets '
                                    "those instances to their class's cluster K."),
        pose: Optional[str] = Form(None, description="GGB: the target pose, JSON [[y, x], ...] per keypoint."),
    ) -> Response:
        t0 = time.perf_counter()
        if model in (None, ""):
            if len(models) != 1:
                raise ApiError(422, "bad_option", f"model: which one? expected one of {', '.join(models)}")
            served = next(iter(models.values()))
        elif model not in models:
            raise ApiError(404, "unknown_model", f"no model {model!r}; expected one of {', '.join(models)}")
        else:
            served = models[model]
        if image is not None and label is not None:
            raise ApiError(422, "bad_request", "send the input as `image` or as `label`, not both")
        upload = image or label
        if upload is None:
            raise ApiError(422, "bad_request", "no input: send the image (or label map) as the multipart file "
                                               "field `image`")
        s, opts = parse_options(served, seed=seed, variant=variant, features=features, edits=edits, pose=pose)
        opts["seed"] = s
        uploads: dict[str, tuple[bytes, ImageInfo]] = {}
        data = await upload.read()
        uploads["image"] = (data, probe_image(data, limits, "label map" if served.kind == "label" else "image"))
        if instance is not None:
            if served.kind != "label" or not served.cfg.data.instance:
                raise ApiError(422, "bad_request", f"instance: model {served.name!r} takes no instance map")
            idata = await instance.read()
            uploads["instance"] = (idata, probe_image(idata, limits, "instance map"))

        def job() -> tuple[bytes, dict[str, str]]:
            with tempfile.TemporaryDirectory(prefix="pairgan-serve-") as tmp:
                batch = build_batch(served, uploads, opts, Path(tmp))
            with served.lock:  # one inference at a time: the seeded RNG is process-wide
                out = served.translator.translate_batch(batch, seed=s)[0]
            headers = {}
            if opts.get("variant") == "all":
                headers["X-Pairgan-Variants"] = str(out.shape[0] // int(served.cfg.data.output_nc))
                out = _variants_strip(served, out)
            return encode_png(out), headers

        try:
            png, headers = await queue.run(job, limits.timeout_s)
        except QueueFull:
            raise ApiError(503, "busy", f"the server is busy ({queue.capacity} requests in progress); retry "
                                        "shortly", {"Retry-After": "1"}) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise ApiError(504, "timeout", f"the request took longer than {limits.timeout_s:g} s") from None
        except ValueError as exc:  # a method's own check of an option or input
            raise ApiError(422, "bad_option", str(exc)) from None
        headers.update({"X-Pairgan-Model": served.name, "X-Pairgan-Seconds": f"{time.perf_counter() - t0:.3f}",
                        "Cache-Control": "no-store"})
        return Response(png, media_type="image/png", headers=headers)

    return app

