"""The bad-input suite of `pairgan serve` (issue 14, items 8-10): one table of start-up refusals
(``pairgan serve ...`` command lines, through tests/badinput.py), one table of requests (method,
path, headers, body -> status and error-message pattern, through FastAPI's TestClient), a real
uvicorn on 127.0.0.1 for the connection limits (a client stalling in its headers is dropped), and a
fuzz test: 200 random malformed requests give no 500 and leave /healthz at 200.

``new`` in a row says whether the case failed before issue 14 (a 500, a wrong status or a message
about something else; False: it already gave this answer, and is kept — for the token, Host and
CORS rows that includes the requests the new checks must let through).
"""

from __future__ import annotations

import io
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient

from benchmarks import serve_load
from pairgan.serve.app import create_app
from pairgan.serve.limits import Access, Limits
from pairgan.serve.models import load_models
from pairgan.serve.server import ServerOptions, make_server
from tests.badinput import Case, check_case
from tests.helpers import png_header_only

TOKEN = "s3cret-token"
LOOPBACK = "http://127.0.0.1:8000"


def _png(w: int = 48, h: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
BOUNDARY = "pairganboundary"


def multipart(fields: dict[str, str] | None = None, files: dict[str, bytes] | None = None,
              boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body written by hand (so a test can cut it anywhere)."""
    out = b""
    for name, value in (fields or {}).items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, data in (files or {}).items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"in.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MP = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def translate(model: str | None = "demo", files: dict[str, bytes] | None = None, **fields: str) -> dict[str, Any]:
    """Keyword arguments of a POST /v1/translate with ``files`` (default: a PNG as `image`)."""
    form = ({"model": model} if model is not None else {}) | fields
    return {"content": multipart(form, {"image": PNG} if files is None else files), "headers": MP}


# --------------------------------------------------------------------------- start-up refusals

CLI_CASES = [
    Case("serve-any-address-without-token", ["serve", "{run}", "--host", "0.0.0.0"], 2,
         r"--host 0\.0\.0\.0 is not a loopback address.*--token TOKEN.*--insecure"),
    Case("serve-lan-address-without-token", ["serve", "{run}", "--host", "192.168.1.5"], 2,
         r"192\.168\.1\.5 is not a loopback.*PAIRGAN_TOKEN"),
    Case("serve-ipv6-any-without-token", ["serve", "{run}", "--host", "::"], 2, r"--host :: is not a loopback"),
    Case("serve-blank-token-env", ["serve", "{run}", "--host", "0.0.0.0"], 2, r"not a loopback address",
         env={"PAIRGAN_TOKEN": "  "}),
    Case("serve-cors-wildcard", ["serve", "{run}", "--cors-origin", "*"], 2, r"--cors-origin '\*'.*no wildcard"),
    Case("serve-cors-not-an-origin", ["serve", "{run}", "--cors-origin", "evil.example"], 2,
         r"--cors-origin 'evil\.example': expected an origin"),
    Case("serve-header-timeout-zero", ["serve", "{run}", "--header-timeout", "0"], 2,
         r"--header-timeout 0\.0: expected a finite number >= 0\.1"),
    Case("serve-header-timeout-inf", ["serve", "{run}", "--header-timeout", "inf"], 2, r"--header-timeout inf"),
    Case("serve-keep-alive-zero", ["serve", "{run}", "--keep-alive", "0"], 2, r"--keep-alive 0: expected"),
    Case("serve-max-connections-zero", ["serve", "{run}", "--max-connections", "0"], 2, r"--max-connections 0"),
    Case("serve-max-header-kb-zero", ["serve", "{run}", "--max-header-kb", "0"], 2, r"--max-header-kb 0"),
    Case("serve-timeout-nan", ["serve", "{run}", "--timeout", "nan"], 2, r"--timeout nan: expected"),
    Case("serve-missing-model", ["serve", "{missing}"], 2, r"no-such-run: no such checkpoint or run folder"),
    # past the address check (the empty folder is what stops them): --insecure, or a token
    Case("serve-any-address-insecure", ["serve", "{run}", "--host", "0.0.0.0", "--insecure"], 2,
         r"run: not a checkpoint"),
    Case("serve-any-address-with-token", ["serve", "{run}", "--host", "0.0.0.0", "--token", "t"], 2,
         r"run: not a checkpoint"),
    Case("serve-any-address-with-token-env", ["serve", "{run}", "--host", "0.0.0.0"], 2, r"run: not a checkpoint",
         env={"PAIRGAN_TOKEN": "t"}),
]
#: Start-up cases that worked before issue 14.
CLI_ALREADY_WORKED = {"serve-missing-model",
                      "serve-any-address-with-token-env"}  # (before: no address check, the folder stopped it)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_serve_refuses_to_start(case: Case, tmp_path: Path) -> None:
    # Every refusal but the missing model comes before any model is loaded: an empty folder will do.
    (tmp_path / "run").mkdir()
    check_case(case, {"run": tmp_path / "run", "missing": tmp_path / "no-such-run"})


# --------------------------------------------------------------------------- request table


@dataclass(frozen=True)
class Req:
    """One request and the answer it must get."""

    id: str
    method: str
    path: str
    status: int
    #: A regular expression the JSON error's message must match (or, for 2xx, the body's text; "" = any).
    message: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Which app answers: loopback (Host allow-list), token (loopback + a token), cors (an allowed origin).
    app: str = "loopback"
    #: Fixed by issue 14 (False: it already worked).
    new: bool = True


AUTH = {"authorization": f"Bearer {TOKEN}"}
DEEP = "[" * 5000 + "]" * 5000
POSE18 = json.dumps([[10, 10]] * 18)

REQUESTS = [
    # item 8: hostile options, bounded in size, depth and numbers
    Req("edits-5000-deep", "POST", "/v1/translate", 422, r"edits: JSON nested 5000 deep, more than the limit of 4",
        translate("feat", edits=DEEP)),
    Req("edits-5000-deep-object", "POST", "/v1/translate", 422, r"edits: JSON nested 5000 deep",
        translate("feat", edits='{"a":' * 5000 + "1" + "}" * 5000)),
    Req("edits-1e400", "POST", "/v1/translate", 422, r"edits: 1e400 is not a finite number; expected JSON",
        translate("feat", edits='{"1": 1e400}')),
    Req("edits-nan", "POST", "/v1/translate", 422, r"edits: NaN is not a finite number",
        translate("feat", edits='{"1": NaN}')),
    Req("edits-23-digit-instance-id", "POST", "/v1/translate", 422,
        r"edits: instance id '12345678901234567890123'; expected", translate("feat", edits='{"12345678901234567890123": 1}')),
    Req("edits-23-digit-cluster", "POST", "/v1/translate", 422, r"edits: 12345678901234567890123 is larger than",
        translate("feat", edits='{"1": 12345678901234567890123}')),
    Req("edits-cluster-over-limit", "POST", "/v1/translate", 422, r"edits: cluster 10001 of instance 1",
        translate("feat", edits='{"1": 10001}')),
    Req("edits-fractional-cluster", "POST", "/v1/translate", 422, r"edits: cluster 1\.5 of instance 1",
        translate("feat", edits='{"1": 1.5}')),
    Req("edits-negative-id", "POST", "/v1/translate", 422, r"edits: instance id '-3'",
        translate("feat", edits='{"-3": 1}')),
    Req("edits-at-with-booleans", "POST", "/v1/translate", 422, r"edits: expected JSON",
        translate("feat", edits='[{"x": true, "y": 1, "cluster": 1}]')),
    Req("edits-70k-characters", "POST", "/v1/translate", 422, r"edits: 70000 characters, more than the limit of 65536",
        translate("feat", edits=" " * 70000)),
    Req("edits-not-json", "POST", "/v1/translate", 422, r"edits: not JSON \(Expecting property name enclosed in double quotes at character 1\)",
        translate("feat", edits="{oops")),
    Req("edits-on-a-model-without-features", "POST", "/v1/translate", 422, r"no instance feature encoder",
        translate("demo", edits="{}"), new=False),
    Req("pose-5000-deep", "POST", "/v1/translate", 422, r"pose: JSON nested 5000 deep", translate("pose", pose=DEEP)),
    Req("pose-1e400", "POST", "/v1/translate", 422, r"pose: 1e400 is not a finite number",
        translate("pose", pose=json.dumps([[1, 1]] * 17)[:-1] + ", [1e400, 1]]")),
    Req("pose-23-digit", "POST", "/v1/translate", 422, r"pose: 12345678901234567890123 is larger than",
        translate("pose", pose="[[12345678901234567890123, 1]]")),
    Req("pose-wrong-count", "POST", "/v1/translate", 422, r"pose: expected JSON \[\[y, x\], \.\.\.\] with 18 keypoints",
        translate("pose", pose="[[1, 2]]"), new=False),
    Req("pose-strings", "POST", "/v1/translate", 422, r"pose: expected JSON",
        translate("pose", pose=json.dumps([["a", "b"]] * 18)), new=False),
    Req("pose-missing", "POST", "/v1/translate", 422, r"pose: model 'pose' needs the target pose",
        translate("pose"), new=False),
    Req("pose-good", "POST", "/v1/translate", 200, "", translate("pose", pose=POSE18), new=False),
    Req("seed-1000-digits", "POST", "/v1/translate", 422, r"seed: 1000 characters, more than the limit of 64",
        translate(seed="9" * 1000)),
    Req("seed-over-int32", "POST", "/v1/translate", 422, r"seed 99999999999: expected an integer 0\.\.2147483647",
        translate(seed="99999999999"), new=False),
    Req("seed-1e400", "POST", "/v1/translate", 422, r"seed '1e400': expected an integer", translate(seed="1e400"),
        new=False),
    Req("variant-10k-characters", "POST", "/v1/translate", 422, r"variant: 10000 characters",
        translate(variant="1" * 10000)),
    Req("variant-on-one-output-model", "POST", "/v1/translate", 422, r"variants are offered by CRN models",
        translate(variant="1"), new=False),
    Req("features-10k-characters", "POST", "/v1/translate", 422, r"features: 10000 characters",
        translate("feat", features="cluster:" + "9" * 9992)),
    Req("features-cluster-1e400", "POST", "/v1/translate", 422, r"features cluster '1e400': expected an integer",
        translate("feat", features="cluster:1e400"), new=False),
    Req("features-encode-file", "POST", "/v1/translate", 422, r"the API reads no files",
        translate("feat", features="encode:/etc/passwd"), new=False),
    Req("model-10k-characters", "POST", "/v1/translate", 422, r"model: 10000 characters", translate("x" * 10000)),
    Req("model-unknown", "POST", "/v1/translate", 404, r"no model 'nope'; expected one of demo, feat, pose",
        translate("nope"), new=False),
    Req("model-not-named-on-multi-model-server", "POST", "/v1/translate", 422, r"model: which one\?",
        translate(None), new=False),
    # item 9: malformed bodies
    Req("json-body", "POST", "/v1/translate", 415,
        r"^the request body is application/json: send multipart/form-data with an `image` field$",
        {"content": b'{"model": "demo"}', "headers": {"content-type": "application/json"}}),
    Req("empty-body-no-content-type", "POST", "/v1/translate", 415,
        r"the request has no Content-Type: send multipart/form-data with an `image` field", {"content": b""}),
    Req("urlencoded-form", "POST", "/v1/translate", 415, r"body is application/x-www-form-urlencoded: send multipart/form-data with an `image` field",
        {"data": {"model": "demo", "image": "x"}}),
    Req("text-plain", "POST", "/v1/translate", 415, r"the request body is text/plain", {"content": PNG,
                                                                           "headers": {"content-type": "text/plain"}}),
    Req("multipart-without-boundary", "POST", "/v1/translate", 400, r"has no valid boundary",
        {"content": multipart({"model": "demo"}, {"image": PNG}), "headers": {"content-type": "multipart/form-data"}}),
    Req("multipart-empty-body", "POST", "/v1/translate", 400, r"truncated: it ends without its closing boundary",
        {"content": b"", "headers": MP}),
    Req("multipart-truncated-in-the-image", "POST", "/v1/translate", 400, r"multipart/form-data body is truncated",
        {"content": multipart({"model": "demo"}, {"image": PNG})[:-200], "headers": MP}),
    Req("multipart-truncated-in-a-field", "POST", "/v1/translate", 400, r"truncated",
        {"content": multipart({"model": "demo", "seed": "1"}, {"image": PNG})[:60], "headers": MP}),
    Req("multipart-no-fields", "POST", "/v1/translate", 422,
        r"no input image: send multipart/form-data with an `image` field", {"content": f"--{BOUNDARY}--\r\n".encode(),
                                                                             "headers": MP}),
    Req("multipart-model-only", "POST", "/v1/translate", 422, r"no input image", translate("demo", files={})),
    Req("image-sent-as-text", "POST", "/v1/translate", 422, r"image: expected an uploaded file .*not a text field",
        {"content": multipart({"model": "demo", "image": "not a file"}), "headers": MP}),
    Req("image-and-label", "POST", "/v1/translate", 422, r"as `image` or as `label`, not both",
        translate(files={"image": PNG, "label": PNG}), new=False),
    Req("image-not-an-image", "POST", "/v1/translate", 415, r"not a readable PNG, JPEG, BMP or TIFF",
        translate(files={"image": b"GIF89a" + b"\0" * 40}), new=False),
    Req("image-empty", "POST", "/v1/translate", 422, r"the image upload is empty", translate(files={"image": b""}),
        new=False),
    Req("image-decompression-bomb", "POST", "/v1/translate", 413, r"the image is too large to decode .*the limit is 40000 pixels",
        translate(files={"image": png_header_only(50000, 50000)}), new=False),
    Req("body-over-the-limit", "POST", "/v1/translate", 413, r"larger than the limit of 300000 bytes",
        translate(files={"image": PNG + b"\0" * 400_000}), new=False),
    Req("good-translate", "POST", "/v1/translate", 200, "", translate(), new=False),
    # item 10: Host allow-list, token, docs, CORS
    Req("host-evil-on-loopback", "GET", "/v1/models", 421, r"does not answer to Host 'evil\.example'",
        {"headers": {"host": "evil.example"}}),
    Req("host-evil-with-port", "GET", "/healthz", 421, r"Host 'evil\.example'", {"headers": {"host": "evil.example:8000"}}),
    Req("host-evil-post", "POST", "/v1/translate", 421, r"--allow-host NAME", translate() | {
        "headers": MP | {"host": "evil.example"}}),
    Req("host-localhost-with-port", "GET", "/v1/models", 200, "demo", {"headers": {"host": "localhost:8000"}},
        new=False),
    Req("host-ipv6-loopback", "GET", "/healthz", 200, "ok", {"headers": {"host": "[::1]:8000"}}, new=False),
    Req("host-allowed-extra", "GET", "/healthz", 200, "ok", {"headers": {"host": "pairgan.lan"}}, new=False),
    Req("token-missing-models", "GET", "/v1/models", 401,
        r"no bearer token: send the server's token as the header Authorization: Bearer TOKEN", app="token"),
    Req("token-missing-translate", "POST", "/v1/translate", 401, r"no bearer token", translate(), app="token"),
    Req("token-missing-openapi", "GET", "/openapi.json", 401, r"no bearer token", app="token"),
    Req("token-wrong", "GET", "/v1/models", 401, r"a wrong bearer token",
        {"headers": {"authorization": "Bearer guess"}}, app="token"),
    Req("token-not-bearer", "GET", "/v1/models", 401, r"a wrong bearer token",
        {"headers": {"authorization": f"Basic {TOKEN}"}}, app="token"),
    Req("token-right", "GET", "/v1/models", 200, "demo", {"headers": AUTH}, app="token", new=False),
    Req("token-right-translate", "POST", "/v1/translate", 200, "", translate() | {"headers": MP | AUTH}, app="token", new=False),
    Req("token-editor-page-open", "GET", "/", 200, "canvas", app="token", new=False),
    Req("token-editor-script-open", "GET", "/static/editor.js", 200, "sessionStorage", app="token"),
    Req("token-healthz-open", "GET", "/healthz", 200, "ok", app="token", new=False),
    Req("docs-off", "GET", "/docs", 404, r"Not Found"),
    Req("redoc-off", "GET", "/redoc", 404, r"Not Found"),
    Req("openapi-served", "GET", "/openapi.json", 200, "/v1/translate", new=False),
    Req("no-cors-by-default", "OPTIONS", "/v1/translate", 405, "",
        {"headers": {"origin": "https://evil.example", "access-control-request-method": "POST"}}, new=False),
    Req("cors-preflight-allowed-origin", "OPTIONS", "/v1/translate", 200, "",
        {"headers": {"origin": "https://site.example", "access-control-request-method": "POST",
                     "access-control-request-headers": "authorization"}}, app="cors"),
    Req("cors-preflight-other-origin", "OPTIONS", "/v1/translate", 400, "Disallowed CORS origin",
        {"headers": {"origin": "https://evil.example", "access-control-request-method": "POST"}}, app="cors"),
    Req("method-not-allowed", "DELETE", "/v1/translate", 405, r"Method Not Allowed", new=False),
    Req("static-traversal", "GET", "/static/..%2Fapp.py", 404, r"Not Found", new=False),
    Req("static-unknown", "GET", "/static/app.py", 404, r"no static file 'app.py'", new=False),
]


def _served_with_schema(models: dict, name: str, schema: dict) -> Any:
    """The demo model under another name, offering other options (its method is still pix2pix:
    options that pass validation reach a method that refuses them with a 422, never a 500)."""
    served = type(models["demo"])(name, models["demo"].translator, models["demo"].backend,
                                  models["demo"].palette, models["demo"].classes, models["demo"].thing_ids)
    served.__dict__["schema"] = schema  # the cached property, set
    return served


@pytest.fixture(scope="module")
def models(tiny_run: Callable[..., Path], tiny_data: Callable[..., Path]) -> dict:
    run = tiny_run("pix2pix", steps=1, data=tiny_data("scenes", n=10, size=48) / "aligned",
                   extra=["data.input_kind=label"])
    loaded = load_models([f"demo={run}"], device="cpu")
    loaded["feat"] = _served_with_schema(loaded, "feat", {"kind": "image", "options": {
        "features": ["random", "cluster:K"], "edits": True, "clusters": None}})
    loaded["pose"] = _served_with_schema(loaded, "pose", {"kind": "image", "options": {
        "pose": {"keypoints": [f"k{i}" for i in range(18)], "limbs": [], "default": None}}})
    return loaded


LIMITS = Limits(max_upload_bytes=300_000, max_pixels=200 * 200, workers=1, queue_size=4, timeout_s=30)
ACCESS = {
    "loopback": Access.for_bind("127.0.0.1", extra_hosts=("pairgan.lan",)),
    "token": Access.for_bind("127.0.0.1", token=TOKEN),
    "cors": Access.for_bind("127.0.0.1", cors_origins=("https://site.example",)),
}


@pytest.fixture(scope="module")
def clients(models: dict):
    opened = {name: TestClient(create_app(models, LIMITS, access), base_url=LOOPBACK, raise_server_exceptions=False)
              for name, access in ACCESS.items()}
    for c in opened.values():
        c.__enter__()
    yield opened
    for c in opened.values():
        c.__exit__(None, None, None)


def check_answer(r: Any, status: int, message: str, what: str) -> None:
    import re

    shown = f"{what}: {r.status_code} {r.text[:400]}"
    assert r.status_code == status, shown
    if status >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        doc = r.json()
        if "error" in doc:
            assert doc["error"]["status"] == status, shown
            assert re.search(message, doc["error"]["message"]), shown
            return
    if message:
        assert re.search(message, r.text), shown


@pytest.mark.parametrize("req", REQUESTS, ids=[r.id for r in REQUESTS])
def test_serve_request(req: Req, clients: dict) -> None:
    r = clients[req.app].request(req.method, req.path, **req.kwargs)
    check_answer(r, req.status, req.message, req.id)
    if req.id == "no-cors-by-default":
        assert "access-control-allow-origin" not in r.headers
    if req.id == "cors-preflight-allowed-origin":
        assert r.headers["access-control-allow-origin"] == "https://site.example"
    if req.status == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    if req.status == 200 and req.method == "POST":
        assert r.content.startswith(b"\x89PNG")


def test_table_sizes() -> None:
    """The suite's counts, for the issue's closing note: cases in all, new behaviour vs kept."""
    new = sum(r.new for r in REQUESTS) + sum(c.id not in CLI_ALREADY_WORKED for c in CLI_CASES)
    total = len(REQUESTS) + len(CLI_CASES)
    assert total >= 60 and new >= 40, (total, new)
    assert len({r.id for r in REQUESTS} | {c.id for c in CLI_CASES}) == total


# --------------------------------------------------------------------------- fuzz


HOSTILE_VALUES = ["", " ", "-1", "1e400", "NaN", "Infinity", "9" * 30, "[" * 3000, "{" * 3000, "null", "true",
                  '{"1": 1e999}', '[{"x": -1}]', "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
                  "cluster:", "cluster:-1", "random", "all", "0", "%s%n", "é" * 100, "x" * 5000]


def _fuzz_request(rng: random.Random) -> dict[str, Any]:
    """One random, mostly malformed request to the API."""
    method = rng.choice(["GET", "POST", "POST", "POST", "PUT", "OPTIONS", "DELETE"])
    path = rng.choice(["/v1/translate"] * 6 + ["/v1/models", "/healthz", "/", "/docs", "/static/x", "/v1/translate/",
                                               "/openapi.json", "/%ff"])
    fields = {k: rng.choice(HOSTILE_VALUES) for k in rng.sample(["model", "seed", "variant", "features", "edits",
                                                                 "pose", "label"], rng.randint(0, 4))}
    if rng.random() < 0.6:
        fields["model"] = rng.choice(["demo", "feat", "pose"])
    image = rng.choice([PNG, PNG[: rng.randint(0, len(PNG))], b"", png_header_only(9999, 9999), bytes(rng.randbytes(300))])
    body = multipart(fields, {rng.choice(["image", "image", "label", "instance", "other"]): image})
    cut = rng.random()
    if cut < 0.25:
        body = body[: rng.randint(0, len(body))]
    elif cut < 0.45:
        pos = rng.randint(0, len(body) - 1)
        body = body[:pos] + bytes(rng.randbytes(rng.randint(1, 40))) + body[pos + 1:]
    headers = {"content-type": rng.choice([MP["content-type"]] * 6 + [
        "multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "b" * 300,
        "application/json", "text/plain", "", "multipart/form-data; boundary=other"])}
    if rng.random() < 0.1:
        headers["host"] = rng.choice(["evil.example", "", "127.0.0.1:1", "[::1", "localhost:x"])
    return {"method": method, "url": path, "content": body, "headers": headers}


def test_fuzz_200_malformed_requests_no_500(clients: dict) -> None:
    client = clients["loopback"]
    rng = random.Random(14)
    deadline = time.monotonic() + 120  # bounded in time as well as in count
    sent = 0
    for i in range(200):
        if time.monotonic() > deadline:
            break
        req = _fuzz_request(rng)
        r = client.request(**req)
        assert r.status_code < 500 or r.status_code in (503, 504), \
            f"request {i}: {req['method']} {req['url']} {req['headers']} -> {r.status_code} {r.text[:300]}"
        sent += 1
    assert sent >= 50
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["queue"]["in_flight"] == 0


# --------------------------------------------------------------------------- a real uvicorn: connections


@pytest.fixture(scope="module")
def real_server(models: dict):
    port = serve_load.free_port()
    app = create_app({"demo": models["demo"]}, LIMITS, Access.for_bind("127.0.0.1"))
    server = make_server(app, "127.0.0.1", port, ServerOptions(header_timeout=0.5, keep_alive_timeout=1,
                                                                max_header_bytes=4096, max_connections=8))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closes ``sock`` within ``seconds``, and what it sent before."""
    sock.settimeout(seconds)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, got
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        return True, got


def test_client_stalling_in_its_headers_is_dropped(real_server: int) -> None:
    with socket.create_connection(("127.0.0.1", real_server)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        closed, _ = _closed_within(s, 5)
        assert closed, "a client that stalls inside its headers is held open"
    with socket.create_connection(("127.0.0.1", real_server)) as s:  # a silent client too
        closed, _ = _closed_within(s, 5)
        assert closed


def test_stall_after_a_keep_alive_request_is_dropped(real_server: int) -> None:
    with socket.create_connection(("127.0.0.1", real_server)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(5)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        closed, _ = _closed_within(s, 5)
        assert closed and time.monotonic() - t0 < 4


def test_oversized_headers_and_rebinding_on_a_real_server(real_server: int) -> None:
    import httpx

    base = f"http://127.0.0.1:{real_server}"
    with socket.create_connection(("127.0.0.1", real_server)) as s:  # headers past --max-header-kb: 400 at once
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 8000)
        closed, got = _closed_within(s, 5)
        assert closed and got.startswith(b"HTTP/1.1 400"), got[:200]
    r = httpx.get(f"{base}/v1/models", headers={"host": "evil.example"})
    assert r.status_code == 421 and "evil.example" in r.json()["error"]["message"]
    assert httpx.get(f"{base}/healthz").status_code == 200
