"""Request limits, the image header probe and the bounded worker queue of ``pairgan serve``.

Nothing here trusts the client: the body size is counted as it arrives (and refused from its
``Content-Length`` when that already says too much), an image's width and height are read from
its header and refused before any pixel is decoded (decompression bombs), the format is found
from the content (never from a file name), and inference runs in a fixed pool of worker threads
behind a bounded admission count: a full queue answers 503 at once instead of piling up work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from starlette.exceptions import HTTPException as StarletteHTTPException

#: Formats accepted for uploads (Pillow's names), found from the bytes.
ALLOWED_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif"}
#: Pillow modes -> channel counts of the decoded image.
MODE_CHANNELS = {"1": 1, "L": 1, "P": 3, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1, "LA": 2, "La": 2,
                 "PA": 4, "RGB": 3, "YCbCr": 3, "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "LAB": 3, "HSV": 3}


@dataclass
class Limits:
    """What one request may ask of the server."""

    #: Largest request body (all files and fields of the multipart form), in bytes.
    max_upload_bytes: int = 16 * 2**20
    #: Largest image, width x height, read from the header before decoding.
    max_pixels: int = 4096 * 4096
    #: Worker threads: they decode uploads and encode PNGs in parallel; the network runs one
    #: request at a time (seeded randomness uses torch's process-wide generator).
    workers: int = 1
    #: Requests admitted at once, running plus waiting; one more is answered 503.
    queue_size: int = 8
    #: Seconds a request may take, waiting included; then 504.
    timeout_s: float = 60.0


class ApiError(Exception):
    """An error answered as JSON ``{"error": {"status", "code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(StarletteHTTPException):
    """Raised from the request body stream once it passes the limit (FastAPI re-raises it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes")


def error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()


class BodyLimitMiddleware:
    """ASGI middleware: refuse bodies over ``max_bytes`` — from ``Content-Length`` before reading
    anything, else while counting the chunks as they arrive."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                too_big = False
            if too_big:
                body = error_body(413, "payload_too_large",
                                  f"request body of {int(length)} bytes is larger than the limit of "
                                  f"{self.max_bytes} bytes")
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


@dataclass
class ImageInfo:
    format: str
    extension: str
    width: int
    height: int
    mode: str
    channels: int


def probe_image(data: bytes, limits: Limits, what: str = "image") -> ImageInfo:
    """Format, size and channels of an uploaded image from its header alone (no pixels decoded).

    Raises :class:`ApiError`: 415 when the bytes are not a PNG, JPEG, BMP or TIFF image; 413 when
    width x height exceeds ``limits.max_pixels`` (a decompression bomb is refused here, before
    decoding).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ApiError(422, "empty_upload", f"the {what} upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we apply our own limit
            with Image.open(io.BytesIO(data)) as im:  # lazy: parses the header only
                fmt, (w, h), mode = im.format, im.size, im.mode
                if mode == "P" and "transparency" not in im.info:
                    channels = 3
                else:
                    channels = MODE_CHANNELS.get(mode, 0)
    except Image.DecompressionBombError as exc:
        raise ApiError(413, "too_many_pixels", f"the {what} is too large to decode ({exc}); the limit is "
                                               f"{limits.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ApiError(415, "not_an_image",
                       f"the {what} upload is not a readable PNG, JPEG, BMP or TIFF image "
                       f"({type(exc).__name__})") from None
    if fmt not in ALLOWED_FORMATS:
        raise ApiError(415, "unsupported_format",
                       f"the {what} is a {fmt} image; expected one of {', '.join(ALLOWED_FORMATS)}")
    if w < 1 or h < 1:
        raise ApiError(422, "bad_image", f"the {what} is {w}x{h} pixels")
    if w * h > limits.max_pixels:
        raise ApiError(413, "too_many_pixels",
                       f"the {what} is {w}x{h} = {w * h} pixels, more than the limit of {limits.max_pixels}")
    return ImageInfo(fmt, ALLOWED_FORMATS[fmt], int(w), int(h), mode, channels)


class QueueFull(Exception):
    pass


class WorkQueue:
    """A fixed pool of worker threads behind a bounded admission count.

    ``run(fn)`` admits the job when fewer than ``capacity`` jobs are running or waiting, else
    raises :class:`QueueFull` at once; the slot is freed when the job ends (also when the caller
    stopped waiting for it: a timed-out job that already runs cannot be interrupted, and keeps its
    slot until it finishes, so the bound stays true).
    """

    def __init__(self, workers: int, capacity: int) -> None:
        self.workers = max(1, int(workers))
        self.capacity = max(1, int(capacity))
        self.executor = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="pairgan-infer")
        self._lock = threading.Lock()
        self.in_flight = 0
        self.served = 0
        self.rejected = 0
        self.timeouts = 0
        self.failed = 0

    def _release(self, fut: concurrent.futures.Future) -> None:
        with self._lock:
            self.in_flight -= 1
            if fut.cancelled():
                return
            if fut.exception() is None:
                self.served += 1
            else:
                self.failed += 1

    async def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        with self._lock:
            if self.in_flight >= self.capacity:
                self.rejected += 1
                raise QueueFull()
            self.in_flight += 1
        try:
            fut = self.executor.submit(fn)
        except BaseException:
            with self._lock:
                self.in_flight -= 1
            raise
        fut.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            with self._lock:
                self.timeouts += 1
            fut.cancel()  # frees the slot now if it had not started
            raise

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"workers": self.workers, "capacity": self.capacity, "in_flight": self.in_flight,
                    "served": self.served, "rejected": self.rejected, "timeouts": self.timeouts,
                    "failed": self.failed}

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
