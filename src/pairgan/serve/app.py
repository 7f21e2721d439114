"""The FastAPI application of ``pairgan serve``: the REST API and the web editor.

Endpoints (all errors are JSON ``{"error": {"status", "code", "message"}}``):

* ``GET /`` — the single-page editor (``static/``); ``GET /static/{editor.js,editor.css}``.
* ``GET /healthz`` — liveness, the models and the worker queue's counters.
* ``GET /v1/models`` — every model: name, method, backend, input spec, class palette, options.
* ``POST /v1/translate`` — multipart form: ``image`` (an image, or a label map / colour-coded label
  image for label models; ``label`` is accepted as its alias), ``instance`` (an instance map for
  models with instance maps; optional), ``model``, ``seed``, ``variant``, ``features``, ``edits``,
  ``pose``. Answers a PNG. No field names a file on the server: only uploaded bytes are read.
* ``GET /openapi.json`` — the OpenAPI description. ``/docs`` and ``/redoc`` are off: FastAPI's
  pages load Swagger UI / ReDoc from a public CDN, which an offline or private server must not do.

Access (:class:`~pairgan.serve.limits.Access`): with a token, every request but the editor's page,
its files and ``/healthz`` needs ``Authorization: Bearer TOKEN`` (401); with a Host allow-list, any
other Host is answered 421 (DNS rebinding of a loopback server); CORS only for the listed origins.

Uploads are checked before they cost anything: the body's type (415 unless multipart/form-data),
a truncated multipart body (400), the body size (413), the image header's width x
height (413, before decoding: decompression bombs), the format by content (415), the pixels by
decoding (422), channels (422), options (422), the model (404); inference runs in a bounded
worker queue (503 when full) under a per-request time limit (504).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from pairgan import __version__
from pairgan.serve.limits import (
    SEND_MULTIPART,
    Access,
    AccessMiddleware,
    ApiError,
    BodyLimitMiddleware,
    ImageInfo,
    Limits,
    MultipartShapeMiddleware,
    QueueFull,
    WorkQueue,
    probe_image,
    short_option,
)
from pairgan.serve.models import (
    ServedModel,
    build_batch,
    load_models,
    parse_options,
    render_output,
)

# load_models and Limits are here too: what `pairgan serve` needs to start a server.
__all__ = ["Access", "Limits", "create_app", "load_models"]

STATIC = {"editor.js": "text/javascript", "editor.css": "text/css"}
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "bad_request", 503: "busy", 504: "timeout"}


# --------------------------------------------------------------------------- the app


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message}}, status_code=status,
                        headers=headers)


def _static(name: str) -> str:
    return (files("pairgan.serve") / "static" / name).read_text(encoding="utf-8")


def create_app(models: dict[str, ServedModel], limits: Limits | None = None, access: Access | None = None) -> FastAPI:
    """The FastAPI application serving ``models`` under ``limits``, to whom ``access`` allows
    (default: no token, any Host, no CORS: what a test client needs; `pairgan serve` passes
    :meth:`Access.for_bind` of its address)."""
    limits = limits or Limits()
    access = access or Access()
    queue = WorkQueue(limits.workers, limits.queue_size)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        queue.shutdown()

    app = FastAPI(
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a public CDN: off; /openapi.json stays
        redoc_url=None,
        title="pairgan",
        version=__version__,
        description="Paired image-to-image translation. POST an image (or a label map) to /v1/translate and get "
                    "the translated PNG; GET /v1/models lists the models, their inputs and palettes. "
                    "The web editor is at /.",
    )
    app.state.models = models
    app.state.limits = limits
    app.state.queue = queue
    app.state.access = access
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes)
    app.add_middleware(MultipartShapeMiddleware)

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
            if loc in ("image", "label", "instance") and "UploadFile" in str(e.get("msg")):
                parts.append(f"{loc}: expected an uploaded file (a multipart part with a filename), not a text field")
            else:
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
        if image is not None and label is not None:
            raise ApiError(422, "bad_request", "send the input as `image` or as `label`, not both")
        upload = image or label
        if upload is None:
            raise ApiError(422, "bad_request", f"no input image: {SEND_MULTIPART} (a label map for label models)")
        model = short_option("model", model)
        if model in (None, ""):
            if len(models) != 1:
                raise ApiError(422, "bad_option", f"model: which one? expected one of {', '.join(models)}")
            served = next(iter(models.values()))
        elif model not in models:
            raise ApiError(404, "unknown_model", f"no model {model!r}; expected one of {', '.join(models)}")
        else:
            served = models[model]
        s, opts = parse_options(served, seed=seed, variant=variant, features=features, edits=edits, pose=pose)
        opts["seed"] = s
        uploads: dict[str, tuple[bytes, ImageInfo]] = {}
        data = await upload.read()
        uploads["image"] = (data, probe_image(data, limits, "label map" if served.kind == "label" else "image"))
        if instance is not None:
            if not served.takes_instance:
                raise ApiError(422, "bad_request", f"instance: model {served.name!r} takes no instance map")
            idata = await instance.read()
            uploads["instance"] = (idata, probe_image(idata, limits, "instance map"))

        def job() -> tuple[bytes, dict[str, str]]:
            with tempfile.TemporaryDirectory(prefix="pairgan-serve-") as tmp:
                batch, warning = build_batch(served, uploads, opts, Path(tmp))
            with served.lock:  # one inference at a time: the seeded RNG is process-wide
                out = served.translator.translate_batch(batch, seed=s)[0]
            png, headers = render_output(served, out, opts)
            if warning:  # the image was translated, but is clearly not what the model was trained on
                headers["X-Pairgan-Input-Warning"] = warning.encode("ascii", "replace").decode("ascii")[:500]
            return png, headers

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

    # Added last, so they run first: the Host and the token are checked before anything else.
    if access.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(access.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"], expose_headers=["X-Pairgan-Model", "X-Pairgan-Seconds",
                                                                            "X-Pairgan-Variants", "X-Pairgan-Input-Warning"])
    app.add_middleware(AccessMiddleware, access=access)
    return app

