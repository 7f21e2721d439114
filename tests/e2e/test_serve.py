"""`pairgan serve`: every endpoint and error path through FastAPI's TestClient, and a load test
against a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import pairgan.data.io as io_mod  # noqa: E402
from benchmarks import serve_load  # noqa: E402
from pairgan.export import export_checkpoint  # noqa: E402
from pairgan.infer import Translator  # noqa: E402
from pairgan.serve.app import create_app  # noqa: E402
from pairgan.serve.limits import Limits  # noqa: E402
from pairgan.serve.models import load_models, warm_up  # noqa: E402
from tests.helpers import png_header_only, train_tiny_with_clusters  # noqa: E402


def png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt)
    return buf.getvalue()


def scene_image(palette: list[list[int]], h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pal = np.asarray(palette, np.uint8)
    arr = np.empty((h, w, 3), np.uint8)
    arr[:] = pal[0]
    arr[h // 2:] = pal[4]
    for _ in range(5):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        arr[y:y + 8, x:x + 10] = pal[rng.integers(1, len(pal))]
    return arr


@pytest.fixture(scope="module")
def run(tiny_run: Callable[..., Path], tiny_data: Callable[..., Path]) -> Path:
    """A 1-step tiny pix2pix on the synthetic scenes' colour-coded label images (so it has their palette);
    shared with tests/e2e/test_browser.py."""
    return tiny_run("pix2pix", steps=1, data=tiny_data("scenes", n=10, size=48) / "aligned",
                    extra=["data.input_kind=label"])


@pytest.fixture(scope="module")
def ts_file(run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "demo.pt"
    export_checkpoint(run, out, fmt="torchscript", dynamic_size=True)
    return out


LIMITS = Limits(max_upload_bytes=300_000, max_pixels=200 * 200, workers=1, queue_size=4, timeout_s=30)


@pytest.fixture(scope="module")
def client(run: Path, ts_file: Path):
    app = create_app(load_models([f"demo={run}", f"ts={ts_file}"], device="cpu"), LIMITS)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def palette(client) -> list[list[int]]:
    return client.get("/v1/models").json()["models"][0]["palette"]


def post(client, data: bytes | None = None, name: str = "in.png", ctype: str = "image/png", **fields):
    files = {"image": (name, data, ctype)} if data is not None else None
    return client.post("/v1/translate", files=files, data={"model": "demo", **fields})


def error_of(r) -> dict:
    body = r.json()
    assert set(body) == {"error"} and {"status", "code", "message"} <= set(body["error"])
    assert body["error"]["status"] == r.status_code
    return body["error"]


# --------------------------------------------------------------------------- endpoints


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    doc = r.json()
    assert doc["status"] == "ok" and doc["models"] == ["demo", "ts"]
    assert doc["queue"]["capacity"] == 4 and doc["limits"]["max_pixels"] == 200 * 200


def test_models_lists_inputs_palette_and_options(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    demo, ts = models["demo"], models["ts"]
    assert demo["method"] == "pix2pix" and demo["backend"] == "torch" and demo["mode"] == "paper"
    assert demo["input"]["kind"] == "image" and demo["input"]["channels"] == 3
    assert demo["input"]["paint"] == "palette" and demo["input"]["size_multiple"] == 32
    assert len(demo["palette"]) == 9 and demo["classes"][:2] == ["sky", "building"]  # the scenes' classes.json
    assert demo["options"]["variant"] is None and demo["options"]["features"] is None
    assert ts["backend"] == "torchscript" and ts["mode"] == "eval" and ts["palette"] == demo["palette"]


def test_editor_page_static_files_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas id=\"canvas\"" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    js = client.get("/static/editor.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/editor.css").status_code == 200
    for bad in ("/static/app.py", "/static/..%2Fapp.py", "/static/index.html"):
        r = client.get(bad)
        assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/translate"]["post"]
    schema_ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    fields = spec["components"]["schemas"][schema_ref]["properties"]
    assert {"image", "label", "instance", "model", "seed", "variant", "features", "edits", "pose"} <= set(fields)
    assert "/v1/models" in spec["paths"] and "/healthz" in spec["paths"]
    assert client.get("/docs").status_code == 404  # Swagger UI loads from a public CDN: off (issue 14)


def test_translate_returns_png_equal_to_the_library(client, run, palette):
    arr = scene_image(palette)
    r = post(client, png(arr))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-pairgan-model"] == "demo" and float(r.headers["x-pairgan-seconds"]) > 0
    out = np.asarray(Image.open(io.BytesIO(r.content)))
    assert out.shape == (40, 56, 3)
    # the server runs the model at the training scale and answers at the upload's size: translate's `keep`
    ref = np.asarray(Translator.from_checkpoint(run, device="cpu").translate(Image.fromarray(arr), seed=0, scale="keep"))
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    again = post(client, png(arr), seed="0")
    assert again.content == r.content  # the same input and seed give the same output


def test_exported_model_and_content_not_extension(client, run, palette):
    arr = scene_image(palette, 64, 64, seed=3)
    ts = client.post("/v1/translate", files={"image": ("x.png", png(arr), "image/png")}, data={"model": "ts"})
    assert ts.status_code == 200
    ref = Translator.from_checkpoint(run, device="cpu", mode="eval").translate(Image.fromarray(arr), scale="keep")
    assert np.abs(np.asarray(Image.open(io.BytesIO(ts.content))).astype(int) - np.asarray(ref).astype(int)).max() <= 1
    # A JPEG named .txt with a text content type: the content decides.
    r = post(client, png(arr, fmt="JPEG"), name="notes.txt", ctype="text/plain")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (64, 64)
    grey = post(client, png(arr[:, :, 0]))  # 1 channel is replicated to the 3 the model takes
    assert grey.status_code == 200
    label = client.post("/v1/translate", files={"label": ("l.png", png(arr), "image/png")}, data={"model": "demo"})
    assert label.status_code == 200  # `label` is an alias of `image`


# --------------------------------------------------------------------------- errors


def test_oversized_body_refused_from_content_length_and_while_streaming(client):
    r = post(client, b"\0" * 400_000)
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"

    def chunks():
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 10_000
        yield b"\r\n--xyz--\r\n"

    r = client.post("/v1/translate", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"


def test_decompression_bombs_refused_before_decoding(client, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(io_mod, "read_image", boom)
    before = client.get("/healthz").json()["queue"]["served"]
    small_file = png(np.zeros((300, 300), np.uint8))  # 90,000 pixels > 40,000, a few hundred bytes
    assert len(small_file) < 2000
    r = post(client, small_file)
    assert r.status_code == 413 and error_of(r)["code"] == "too_many_pixels" and "300x300" in r.json()["error"]["message"]
    r = post(client, png_header_only(100_000, 100_000))  # beyond Pillow's own bomb limit too
    assert r.status_code == 413 and error_of(r)["code"] == "too_many_pixels"
    r = post(client, png_header_only(1000, 1000))
    assert r.status_code == 413
    assert client.get("/healthz").json()["queue"]["served"] == before  # nothing reached a worker


def test_not_an_image_unsupported_truncated_and_wrong_channels(client, palette):
    r = post(client, b"this is not an image at all")
    assert r.status_code == 415 and error_of(r)["code"] == "not_an_image"
    r = post(client, b"")
    assert r.status_code == 422 and error_of(r)["code"] == "empty_upload"
    gif = io.BytesIO()
    Image.new("P", (16, 16)).save(gif, format="GIF")
    r = post(client, gif.getvalue(), name="a.png")
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_format"
    full = png(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    r = post(client, full[: len(full) // 2])
    assert r.status_code == 422 and error_of(r)["code"] == "bad_image"
    assert r.json()["error"]["message"].startswith("the image: ")  # no server path in messages
    la = png(np.zeros((32, 32, 2), np.uint8), mode="LA")
    r = post(client, la)
    assert r.status_code == 422 and error_of(r)["code"] == "wrong_channels"
    assert "2 channels, expected 3" in r.json()["error"]["message"]
    assert "/tmp" not in r.json()["error"]["message"] and "pairgan-serve" not in r.json()["error"]["message"]


def test_unknown_model_and_bad_options(client, palette):
    img = png(scene_image(palette))
    r = client.post("/v1/translate", files={"image": ("a.png", img, "image/png")}, data={"model": "nope"})
    assert r.status_code == 404 and error_of(r)["code"] == "unknown_model" and "demo, ts" in r.json()["error"]["message"]
    r = client.post("/v1/translate", files={"image": ("a.png", img, "image/png")})  # two models: which?
    assert r.status_code == 422 and error_of(r)["code"] == "bad_option"
    for fields, needle in [({"seed": "-1"}, "seed"), ({"seed": "abc"}, "seed"), ({"variant": "1"}, "CRN"),
                           ({"features": "cluster:2"}, "encoder"), ({"edits": "{}"}, "encoder"),
                           ({"pose": "[[1, 2]]"}, "takes no pose")]:
        r = post(client, img, **fields)
        assert r.status_code == 422 and error_of(r)["code"] == "bad_option", fields
        assert needle in r.json()["error"]["message"]
    r = client.post("/v1/translate", files={"image": ("a.png", img, "image/png"), "label": ("b.png", img, "image/png")},
                    data={"model": "demo"})
    assert r.status_code == 422 and "not both" in error_of(r)["message"]
    r = client.post("/v1/translate", data={"model": "demo"})  # not even multipart (issue 14: it was 422)
    assert r.status_code == 415 and "send multipart/form-data with an `image` field" in error_of(r)["message"]
    r = client.post("/v1/translate", files={"instance": ("i.png", img, "image/png")}, data={"model": "demo"})
    assert r.status_code == 422 and "no input" in error_of(r)["message"]
    r = client.post("/v1/translate", files={"image": ("a.png", img, "image/png"),
                                            "instance": ("i.png", img, "image/png")}, data={"model": "demo"})
    assert r.status_code == 422 and "no instance map" in error_of(r)["message"]
    r = client.get("/v1/translate")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"


def test_queue_full_503_and_timeout_504(run: Path, palette):
    models = load_models([f"slow={run}"], device="cpu")
    served = models["slow"]
    release = threading.Event()
    real = served.translator.translate_batch

    def slow(batch, seed=0):
        release.wait(10)
        return real(batch, seed)

    served.translator.translate_batch = slow
    app = create_app(models, Limits(queue_size=1, workers=1, timeout_s=0.5))
    img = png(scene_image(palette))
    with TestClient(app) as c:
        q = app.state.queue
        first: dict = {}
        t = threading.Thread(target=lambda: first.setdefault("r", c.post(
            "/v1/translate", files={"image": ("a.png", img, "image/png")})))
        t.start()
        deadline = time.monotonic() + 10
        while q.stats()["in_flight"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        busy = c.post("/v1/translate", files={"image": ("a.png", img, "image/png")})
        assert busy.status_code == 503 and error_of(busy)["code"] == "busy" and busy.headers["retry-after"] == "1"
        t.join(15)
        r = first["r"]
        assert r.status_code == 504 and error_of(r)["code"] == "timeout"  # waited 0.5 s for the blocked job
        assert q.stats()["in_flight"] == 1  # a running job keeps its slot until it really ends
        release.set()
        deadline = time.monotonic() + 10
        while q.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = q.stats()
        assert stats["in_flight"] == 0 and stats["rejected"] == 1 and stats["timeouts"] == 1
        ok = c.post("/v1/translate", files={"image": ("a.png", img, "image/png")})
        assert ok.status_code == 200


# --------------------------------------------------------------------------- a real server


@pytest.mark.slow
def test_load_real_uvicorn_200_requests_at_concurrency_8(run: Path):
    pytest.importorskip("uvicorn")
    result = serve_load.run_load([str(run)], requests=200, concurrency=8, size=64)
    assert result["errors"] == 0, result["error_samples"]
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    rss = result["rss_mib"]
    assert rss["peak"] - rss["after_warmup"] < 200, rss  # memory stays bounded under load
    assert result["queue"]["served"] >= 204 and result["queue"]["rejected"] == 0
    print(json.dumps(result["latency_ms"]), result["throughput_rps"], rss)


# --------------------------------------------------------------------------- label maps, features, poses


@pytest.fixture(scope="module")
def method_client(one_thread, tmp_path_factory, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path]):
    """A server of three tiny runs: pix2pixHD (label maps + instances + feature clusters; its own run, as
    the clusters are written into it), GGB (a person and a pose) and CRN (k = 3), and the poses data."""
    hd = train_tiny_with_clusters(tmp_path_factory.mktemp("methods") / "hd", tiny_data("scenes"))
    ggb = tiny_run("ggb", steps=1, data="poses", log_every=None)
    crn = tiny_run("crn-demo", data="scenes", steps=2, log_every=None, extra=["model.widths=[8,8,8]"])
    app = create_app(load_models([f"hd={hd}", f"ggb={ggb}", f"crn={crn}"], device="cpu"), LIMITS)
    with TestClient(app) as c:
        yield c, tiny_data("poses")


def test_label_model_painted_map_features_and_edits(method_client):
    c, _ = method_client
    info = {m["name"]: m for m in c.get("/v1/models").json()["models"]}["hd"]
    assert info["input"]["kind"] == "label" and info["input"]["instance"] and info["input"]["label_nc"] == 9
    assert info["options"]["features"] and info["options"]["edits"] and info["options"]["clusters"]
    assert 6 in info["thing_ids"]
    pal = np.asarray(info["palette"], np.uint8)
    ids = np.zeros((32, 32), np.int64)
    ids[16:] = 4  # road
    ids[20:26, 2:10] = 6  # two cars
    ids[20:26, 18:28] = 6
    painted = png(pal[ids])

    def ask(**fields):
        r = c.post("/v1/translate", files={"image": ("m.png", painted, "image/png")}, data={"model": "hd", **fields})
        assert r.status_code == 200, r.text
        return np.asarray(Image.open(io.BytesIO(r.content))).astype(int)

    base = ask()
    assert base.shape == (32, 32, 3) and (ask() == base).all()  # seeded random features
    assert not (ask(features="cluster:1") == base).all()
    edited = ask(edits=json.dumps([{"x": 5, "y": 22, "cluster": 3}]))  # restyle the left car only
    changed = np.abs(edited - base).max(-1) > 0
    assert changed[20:26, 2:10].any()
    far = np.ones_like(changed)
    far[14:32, 0:14] = False  # the left car and the pixels G's receptive field mixes it into
    assert changed[far].mean() < changed[20:26, 2:10].mean()
    by_id = ask(edits=json.dumps({"6000": 3}))  # the same car by its derived instance id
    assert (by_id == edited).all()
    ids_png = png(ids.astype(np.uint8))  # 1-channel class ids work too
    r = c.post("/v1/translate", files={"image": ("i.png", ids_png, "image/png")}, data={"model": "hd"})
    assert r.status_code == 200
    inst_ids = ids.copy()
    inst_ids[20:26, 2:10], inst_ids[20:26, 18:28] = 6000, 6001
    inst = png(inst_ids.astype(np.uint16))  # a 16-bit instance map, as Cityscapes stores them
    r = c.post("/v1/translate", files={"image": ("i.png", ids_png, "image/png"), "instance": ("n.png", inst, "image/png")},
               data={"model": "hd"})
    assert r.status_code == 200
    for fields, needle in [({"features": "encode:/etc/passwd"}, "reads no files"),
                           ({"edits": "[{\"x\": 99, \"y\": 1, \"cluster\": 1}]"}, "outside"),
                           ({"edits": "[1, 2]"}, "edits"), ({"edits": "{\"7000\": 1}"}, "no instance 7000"),
                           ({"variant": "all"}, "CRN"),
                           # issue 14: these were 500s (RecursionError, OverflowError) on a real pix2pixHD
                           ({"edits": "[" * 5000 + "]" * 5000}, "nested 5000 deep"),
                           ({"edits": "{\"6000\": 1e400}"}, "not a finite number"),
                           ({"edits": "{\"12345678901234567890123\": 1}"}, "instance id '12345678901234567890123'"),
                           ({"edits": "[{\"x\": 5, \"y\": 22, \"cluster\": 12345678901234567890123}]"}, "larger than")]:
        r = c.post("/v1/translate", files={"image": ("m.png", painted, "image/png")}, data={"model": "hd", **fields})
        assert r.status_code == 422 and needle in r.json()["error"]["message"], (fields, r.text)
    bad = pal[ids].copy()
    bad[0, 0] = [1, 2, 3]  # not a palette colour
    r = c.post("/v1/translate", files={"image": ("m.png", png(bad), "image/png")}, data={"model": "hd"})
    assert r.status_code == 422 and "not in the palette" in r.json()["error"]["message"]
    small_inst = png(np.zeros((8, 8), np.uint8))
    r = c.post("/v1/translate", files={"image": ("m.png", painted, "image/png"), "instance": ("n.png", small_inst, "image/png")},
               data={"model": "hd"})
    assert r.status_code == 422 and "same size" in r.json()["error"]["message"]


def test_pose_model_translates_a_person_into_a_pose(method_client):
    c, poses = method_client
    info = {m["name"]: m for m in c.get("/v1/models").json()["models"]}["ggb"]
    assert info["input"]["kind"] == "pose"
    pose = info["options"]["pose"]
    assert len(pose["keypoints"]) == 18 and pose["limbs"] and len(pose["default"]) == 18
    person = sorted((poses / "images").glob("*.png"))[0].read_bytes()
    w, h = Image.open(io.BytesIO(person)).size
    kp = [None if y < 0 else [y * h, x * w] for y, x in pose["default"]]
    r = c.post("/v1/translate", files={"image": ("p.png", person, "image/png")},
               data={"model": "ggb", "pose": json.dumps(kp)})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (32, 32)
    moved = [None if p is None else [p[0], min(w - 1, p[1] + 4)] for p in kp]
    r2 = c.post("/v1/translate", files={"image": ("p.png", person, "image/png")},
                data={"model": "ggb", "pose": json.dumps(moved)})
    assert r2.status_code == 200 and r2.content != r.content  # the pose drives the output
    for pose_text in (None, "[[1, 2]]", "not json", json.dumps([[1e400, 1]] * 18)):
        data = {"model": "ggb"} | ({"pose": pose_text} if pose_text is not None else {})
        r = c.post("/v1/translate", files={"image": ("p.png", person, "image/png")}, data=data)
        assert r.status_code == 422 and "pose" in r.json()["error"]["message"]


def test_crn_variants(method_client):
    c, _ = method_client
    info = {m["name"]: m for m in c.get("/v1/models").json()["models"]}["crn"]
    assert info["input"]["kind"] == "label" and info["options"]["variant"] == {"k": 3, "values": [0, 1, 2, "all"]}
    pal = np.asarray(info["palette"], np.uint8)
    ids = np.zeros((32, 40), np.int64)
    ids[16:] = 4
    img = png(pal[ids])

    def ask(**fields):
        return c.post("/v1/translate", files={"image": ("m.png", img, "image/png")}, data={"model": "crn", **fields})

    every = ask(variant="all")
    assert every.status_code == 200 and every.headers["x-pairgan-variants"] == "3"
    strip = np.asarray(Image.open(io.BytesIO(every.content)))
    assert strip.shape == (32, 120, 3)  # the k images side by side
    one = ask(variant="2")
    assert one.status_code == 200
    assert np.abs(np.asarray(Image.open(io.BytesIO(one.content))).astype(int) - strip[:, 80:].astype(int)).max() <= 1
    assert ask().status_code == 200  # default: variant 0
    for bad in ("3", "-1", "x"):
        r = ask(variant=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_option"


# --------------------------------------------------------------------------- warm-up


def test_warm_up_compiles_what_a_training_size_upload_needs(run: Path, tiny_run: Callable[..., Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    """`pairgan serve` compiles each model's graph before serving: the first request of the training
    size then finds it (no new graph), whatever the method reads (a colour label image; label ids)."""
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "cache"))
    crn = tiny_run("crn-demo", data="scenes", steps=2, log_every=None, extra=["model.widths=[8,8,8]"])
    models = load_models([f"demo={run}", f"crn={crn}", f"paper={run}"], device="cpu", mode=None)
    models.update(load_models([f"eval={run}"], device="cpu", mode="eval"))
    assert warm_up(models["paper"]) is None  # pix2pix's paper mode runs eagerly: nothing to compile
    for name in ("eval", "crn"):
        line = warm_up(models[name])
        assert line is not None and line.startswith(f"{name}: compiled graph for 32x32 inputs ready")
        assert len(models[name].translator.graphs) == 1
    app = create_app(models, LIMITS)
    with TestClient(app) as c:
        for name in ("eval", "crn"):
            pal = np.asarray(models[name].palette, np.uint8)
            ids = np.zeros((32, 32), np.int64)
            ids[16:] = 4
            r = c.post("/v1/translate", files={"image": ("m.png", png(pal[ids]), "image/png")}, data={"model": name})
            assert r.status_code == 200, r.text
            assert len(models[name].translator.graphs) == 1, name  # the warm-up's graph served it
