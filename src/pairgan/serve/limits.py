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
import hmac
import io
import json
import math
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


# --------------------------------------------------------------------------- options: bounded JSON

#: Longest text of a one-value option (seed, variant, features, model), in characters.
MAX_SHORT_OPTION_CHARS = 64
#: Longest JSON option (edits, pose), in characters, and its deepest nesting.
MAX_JSON_OPTION_CHARS = 64 * 1024
MAX_JSON_DEPTH = 4
#: Largest integer a JSON option may hold (instance ids, clusters, coordinates): int32.
MAX_JSON_INT = 2**31 - 1


def short_option(name: str, value: str | None) -> str | None:
    """``value`` when it is at most :data:`MAX_SHORT_OPTION_CHARS` long, else a 422."""
    if value is not None and len(value) > MAX_SHORT_OPTION_CHARS:
        raise ApiError(422, "bad_option", f"{name}: {len(value)} characters, more than the limit of "
                                          f"{MAX_SHORT_OPTION_CHARS}")
    return value


def _json_depth(text: str) -> int:
    """The deepest bracket nesting of a JSON text, counted without parsing (strings skipped), so
    that a 5000-deep document never reaches the recursive parser."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is not a finite number")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > len(str(MAX_JSON_INT)):  # before int(): a huge literal costs quadratic time
        shown = text if len(text) <= 30 else f"{text[:30]}... ({len(text)} digits)"
        raise ValueError(f"{shown} is larger than {MAX_JSON_INT}")
    value = int(text)
    if abs(value) > MAX_JSON_INT:
        raise ValueError(f"{text} is larger than {MAX_JSON_INT}")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a finite number")


def bounded_json(name: str, text: str, expected: str) -> Any:
    """Parse a JSON option with its size, depth and numbers bounded: at most
    :data:`MAX_JSON_OPTION_CHARS` characters and :data:`MAX_JSON_DEPTH` levels, finite floats, integers
    within int32. Anything else is a 422 naming the option, what was wrong and ``expected``."""
    if len(text) > MAX_JSON_OPTION_CHARS:
        raise ApiError(422, "bad_option", f"{name}: {len(text)} characters, more than the limit of "
                                          f"{MAX_JSON_OPTION_CHARS}; expected {expected}")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ApiError(422, "bad_option", f"{name}: JSON nested {depth} deep, more than the limit of "
                                          f"{MAX_JSON_DEPTH}; expected {expected}")
    try:
        return json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "bad_option", f"{name}: not JSON ({exc.msg} at character {exc.pos}); "
                                          f"expected {expected}") from None
    except ValueError as exc:
        raise ApiError(422, "bad_option", f"{name}: {exc}; expected {expected}") from None


# --------------------------------------------------------------------------- the request's shape

#: The one path that takes a body.
TRANSLATE_PATH = "/v1/translate"
SEND_MULTIPART = "send multipart/form-data with an `image` field"


async def _answer(send: Callable, status: int, code: str, message: str,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(status, code, message)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"x-content-type-options", b"nosniff"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


class MultipartTruncated(StarletteHTTPException):
    """Raised from the body stream when a multipart body ends without its closing boundary."""

    def __init__(self) -> None:
        super().__init__(400, "the multipart/form-data body is truncated: it ends without its closing "
                              "boundary; " + SEND_MULTIPART)


class MultipartShapeMiddleware:
    """ASGI middleware for ``POST /v1/translate``: a body that is not ``multipart/form-data`` with a
    boundary is answered 415 before it is read, and a multipart body that ends before its closing
    boundary (a truncated upload) is refused with 400 instead of being parsed as far as it goes."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != TRANSLATE_PATH:
            await self.app(scope, receive, send)
            return
        ctype = dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1")
        media, _, params = ctype.partition(";")
        if media.strip().lower() != "multipart/form-data":
            got = f"the request body is {media.strip()[:100]}" if media.strip() else "the request has no Content-Type"
            await _answer(send, 415, "unsupported_media_type", f"{got}: {SEND_MULTIPART}")
            return
        boundary = ""
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "boundary":
                boundary = value.strip().strip('"')
        if not boundary or len(boundary) > 200:
            await _answer(send, 400, "bad_request", f"the multipart/form-data Content-Type has no valid boundary; "
                                                    f"{SEND_MULTIPART}")
            return
        closing = b"--" + boundary.encode("latin-1") + b"--"
        tail = b""
        seen_close = False

        async def checked() -> dict:
            nonlocal tail, seen_close
            message = await receive()
            if message["type"] == "http.request":
                # The closing delimiter may straddle chunks: search the previous chunk's tail too.
                chunk = tail + message.get("body", b"")
                seen_close = seen_close or closing in chunk
                tail = chunk[-len(closing):]
                if not message.get("more_body", False) and not seen_close:
                    raise MultipartTruncated()
            return message

        await self.app(scope, checked, send)


# --------------------------------------------------------------------------- access: token and Host

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    """Whether a bind address is a loopback one (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    h = host.strip().strip("[]").lower()
    return h in ("localhost", "::1") or h.startswith("127.")


@dataclass
class Access:
    """Who may use the server: a bearer token, the Host names it answers, CORS origins, the docs pages."""

    #: The bearer token every API request must carry (``Authorization: Bearer TOKEN``); None = none.
    token: str | None = None
    #: Host header names (without port) the server answers; None = any (a library default: the CLI
    #: sets the loopback names when it binds to a loopback address, against DNS rebinding).
    allowed_hosts: tuple[str, ...] | None = None
    #: Origins allowed to call the API from another site's page (CORS); none by default.
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def for_bind(cls, host: str, token: str | None = None, extra_hosts: tuple[str, ...] = (),
                 cors_origins: tuple[str, ...] = ()) -> Access:
        """The access rules of a server bound to ``host``: on a loopback address only the loopback
        names (and ``extra_hosts``) are answered; elsewhere any Host unless ``extra_hosts`` lists some."""
        if is_loopback(host):
            hosts: tuple[str, ...] | None = (*LOOPBACK_HOSTS, host.strip("[]").lower(), *extra_hosts)
        else:
            hosts = tuple(extra_hosts) or None
        return cls(token=token or None, allowed_hosts=hosts, cors_origins=tuple(cors_origins))


#: Paths anyone may GET without the token: the editor page and its files (they hold no data; the
#: editor asks for the token when the API answers 401) and the liveness probe.
OPEN_PATHS = ("/", "/static/editor.js", "/static/editor.css", "/healthz")


def host_name(header: str) -> str:
    """The name of a Host header value, without its port (``[::1]:8000`` -> ``::1``)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class AccessMiddleware:
    """ASGI middleware: answer 421 to a Host not in the allow-list (DNS rebinding of a loopback
    server) and 401 to an API request without the bearer token. CORS preflights (OPTIONS) pass to
    the CORS middleware inside; the token is compared in constant time."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access
        self.allowed = {h.lower() for h in access.allowed_hosts} if access.allowed_hosts is not None else None
        self.expected = f"Bearer {access.token}".encode() if access.token else None

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if self.allowed is not None:
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                await _answer(send, 421, "misdirected_request",
                              f"this server does not answer to Host {host[:100]!r}; expected one of "
                              f"{', '.join(sorted(self.allowed))} (pairgan serve --allow-host NAME adds one)")
                return
        if self.expected is not None and scope.get("method") != "OPTIONS" and scope.get("path") not in OPEN_PATHS:
            got = headers.get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                why = "a wrong bearer token" if got else "no bearer token"
                await _answer(send, 401, "unauthorized",
                              f"{why}: send the server's token as the header Authorization: Bearer TOKEN",
                              [(b"www-authenticate", b'Bearer realm="pairgan"')])
                return
        await self.app(scope, receive, send)
