"""The web editor end to end in a real browser: Debian's chromium driven by playwright's Python API
(never `playwright install`), against `pairgan serve` (a real uvicorn) on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from benchmarks import serve_load
from tests.helpers import train_tiny_with_clusters

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]

pytest.importorskip("uvicorn")
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium; .ci/run does it)", allow_module_level=True)

# Every test starts chromium against a `pairgan serve` subprocess (about 3 s to answer /healthz here).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path]):
    """`pairgan serve` of a 1-step tiny pix2pix on the synthetic scenes' colour-coded label images (so it
    has their palette); the run is shared with tests/e2e/test_serve.py."""
    run = tiny_run("pix2pix", steps=1, data=tiny_data("scenes", n=10, size=48) / "aligned",
                   extra=["data.input_kind=label"])
    port = serve_load.free_port()
    with open(tmp_path_factory.mktemp("browser") / "server.log", "wb") as log:
        proc = serve_load.start_server([f"demo={run}"], port, log=log)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            serve_load.stop_server(proc)


@pytest.fixture()
def page(tmp_path):
    with playwright_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            viewport={"width": 1200, "height": 760}, accept_downloads=True)
        try:
            pg = ctx.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield pg, errors
        finally:
            ctx.close()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def _stroke(pg, box, points):
    x0, y0 = box["x"], box["y"]
    pg.mouse.move(x0 + points[0][0] * box["width"], y0 + points[0][1] * box["height"])
    pg.mouse.down()
    for fx, fy in points[1:]:
        pg.mouse.move(x0 + fx * box["width"], y0 + fy * box["height"], steps=6)
    pg.mouse.up()


COUNT_COLOURS = """() => {
  const c = document.getElementById('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const s = new Set();
  for (let i = 0; i < d.length; i += 4) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  return s.size;
}"""

OUTPUT_STATS = """() => {
  const img = document.getElementById('output-image');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let n = 0, sum = 0, sq = 0, lo = 255, hi = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] + d[i + 1] + d[i + 2]) / 3; n++; sum += v; sq += v * v; lo = Math.min(lo, v); hi = Math.max(hi, v);
  }
  const mean = sum / n;
  return {w: c.width, h: c.height, mean, std: Math.sqrt(Math.max(0, sq / n - mean * mean)), lo, hi};
}"""


def test_paint_translate_and_download_in_chromium(server, page, tmp_path):
    pg, errors = page
    pg.goto(server + "/")
    pg.wait_for_selector("#palette .swatch")
    assert pg.locator("#model option").count() == 1
    assert pg.locator("#palette .swatch").count() == 9  # the model's class palette
    assert "sky" in pg.locator("#palette").inner_text()
    assert pg.evaluate(COUNT_COLOURS) == 1  # a blank canvas of class 0
    pg.fill("#canvas-w", "96")
    pg.fill("#canvas-h", "96")
    pg.click("#clear")

    box = pg.locator("#canvas").bounding_box()
    pg.locator("#palette .swatch").nth(1).click()  # building
    pg.fill("#brush-size", "6")
    pg.locator("#brush-size").dispatch_event("input")
    _stroke(pg, box, [(0.1, 0.2), (0.5, 0.25), (0.9, 0.2)])
    pg.locator("#palette .swatch").nth(4).click()  # road
    _stroke(pg, box, [(0.05, 0.85), (0.95, 0.85)])
    assert pg.evaluate(COUNT_COLOURS) == 3  # exactly the palette colours: no anti-aliased blends
    pg.locator("#palette .swatch").nth(6).click()  # car
    pg.click("[data-tool=fill]")
    pg.mouse.click(box["x"] + 0.5 * box["width"], box["y"] + 0.55 * box["height"])  # fill the sky with cars
    assert pg.evaluate(COUNT_COLOURS) == 3
    pg.click("#undo")  # the fill is undone: the sky is back
    colours_after_undo = pg.evaluate(COUNT_COLOURS)
    assert colours_after_undo == 3
    pg.click("[data-tool=brush]")
    _stroke(pg, box, [(0.3, 0.6), (0.4, 0.65)])
    assert pg.evaluate(COUNT_COLOURS) == 4

    pg.click("#translate")
    pg.wait_for_function("() => { const i = document.getElementById('output-image'); return i && i.complete && i.naturalWidth > 0; }",
                         timeout=60_000)
    stats = pg.evaluate(OUTPUT_STATS)
    w = pg.evaluate("() => document.getElementById('canvas').width")
    h = pg.evaluate("() => document.getElementById('canvas').height")
    assert stats["w"] == w and stats["h"] == h  # side by side, the input's size
    assert stats["std"] > 1.0 and stats["hi"] - stats["lo"] > 10, stats  # not blank
    assert "done in" in pg.inner_text("#status")
    with pg.expect_download() as dl:
        pg.click("#download")
    saved = tmp_path / "download.png"
    dl.value.save_as(saved)
    assert Image.open(saved).size == (w, h)
    shot = tmp_path / "editor.png"
    pg.screenshot(path=str(shot))
    assert shot.stat().st_size > 5000
    assert not errors, errors


def test_server_errors_are_shown_in_the_page(server, page):
    pg, errors = page
    pg.goto(server + "/")
    pg.wait_for_selector("#palette .swatch")
    pg.fill("#canvas-w", "300")
    pg.fill("#canvas-h", "300")
    pg.click("#clear")
    pg.fill("#seed", "0")
    pg.evaluate("() => { window.pairganEditor.state.model.name = 'missing'; }")
    pg.click("#translate")
    pg.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=30_000)
    assert "404" in pg.inner_text("#status") and "no model" in pg.inner_text("#status")


@pytest.fixture(scope="module")
def method_server(one_thread, tmp_path_factory, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path]):
    """`pairgan serve` of pix2pixHD with feature clusters (its own run: the clusters are written into it),
    GGB and CRN tiny runs, and the poses data the GGB test uploads from."""
    root = tmp_path_factory.mktemp("browser-methods")
    hd = train_tiny_with_clusters(root / "hd", tiny_data("scenes"))
    ggb = tiny_run("ggb", steps=1, data="poses", log_every=None)
    crn = tiny_run("crn-demo", data="scenes", steps=2, log_every=None, extra=["model.widths=[8,8,8]"])
    port = serve_load.free_port()
    with open(root / "server.log", "wb") as log:
        proc = serve_load.start_server([f"hd={hd}", f"ggb={ggb}", f"crn={crn}"], port, log=log, threads=1)
        try:
            yield f"http://127.0.0.1:{port}", tiny_data("poses")
        finally:
            serve_load.stop_server(proc)


WAIT_OUTPUT = "() => { const i = document.getElementById('output-image'); return i && i.complete && i.naturalWidth > 0; }"


def test_restyle_an_object_and_drag_a_pose_joint(method_server, page, tmp_path):
    base, poses = method_server
    pg, errors = page
    pg.goto(base + "/")
    pg.wait_for_selector("#palette .swatch")
    # pix2pixHD: paint a car, then click it with Restyle to cycle its feature cluster.
    pg.select_option("#model", "hd")
    assert pg.is_visible("#tool-restyle") and pg.is_visible("#features-row")
    pg.fill("#canvas-w", "64")
    pg.fill("#canvas-h", "64")
    pg.click("#clear")
    box = pg.locator("#canvas").bounding_box()
    pg.locator("#palette .swatch").nth(6).click()  # car
    pg.fill("#brush-size", "12")
    pg.locator("#brush-size").dispatch_event("input")
    _stroke(pg, box, [(0.3, 0.6), (0.6, 0.6)])
    pg.click("#translate")
    pg.wait_for_function(WAIT_OUTPUT, timeout=60_000)
    first = pg.get_attribute("#output-image", "src")
    pg.click("[data-tool=restyle]")
    for _ in range(2):
        pg.mouse.click(box["x"] + 0.45 * box["width"], box["y"] + 0.6 * box["height"])
    edits = pg.evaluate("() => window.pairganEditor.state.edits")
    assert len(edits) == 1 and edits[0]["cluster"] >= 1  # one object, its cluster cycled
    assert pg.locator("#overlay circle.edit").count() == 1
    pg.click("#translate")
    pg.wait_for_function(f"() => {{ const i = document.getElementById('output-image'); return i && i.src !== {first!r} && i.complete; }}",
                         timeout=60_000)
    assert "done in" in pg.inner_text("#status")
    # GGB: upload a person image and drag a joint of the target-pose skeleton.
    pg.select_option("#model", "ggb")
    assert not pg.is_visible("#palette") and pg.locator("#overlay circle.joint").count() == 18
    person = sorted((poses / "images").glob("*.png"))[0]
    pg.set_input_files("#upload", str(person))
    pg.wait_for_function("() => document.getElementById('status').textContent.startsWith('loaded')")
    before = pg.evaluate("() => window.pairganEditor.state.pose[4]")
    joint = pg.locator("#overlay circle.joint").nth(4).bounding_box()
    cx, cy = joint["x"] + joint["width"] / 2, joint["y"] + joint["height"] / 2
    pg.mouse.move(cx, cy)
    pg.mouse.down()
    pg.mouse.move(cx + 40, cy - 30, steps=8)
    pg.mouse.up()
    after = pg.evaluate("() => window.pairganEditor.state.pose[4]")
    assert after[1] > before[1] + 2 and after[0] < before[0] - 2  # moved right and up, in image pixels
    pg.click("#translate")
    pg.wait_for_function(WAIT_OUTPUT, timeout=60_000)
    assert "done in" in pg.inner_text("#status"), pg.inner_text("#status")
    pg.screenshot(path=str(tmp_path / "pose.png"))
    # CRN: the k variants side by side.
    pg.select_option("#model", "crn")
    assert pg.is_visible("#variant-row") and pg.is_visible("#palette")
    box = pg.locator("#canvas").bounding_box()
    pg.locator("#palette .swatch").nth(4).click()  # road
    _stroke(pg, box, [(0.1, 0.8), (0.9, 0.8)])
    pg.click("#translate")
    pg.wait_for_function("() => document.querySelectorAll('#output canvas.variant').length === 3", timeout=60_000)
    assert pg.locator("#output figcaption").all_inner_texts() == ["variant 0", "variant 1", "variant 2"]
    pg.screenshot(path=str(tmp_path / "crn.png"))
    assert not errors, errors


def test_editor_asks_for_the_token_once_per_tab(tmp_path, tiny_run: Callable[..., Path], tiny_data: Callable[..., Path],
                                               page):
    """A server started with --token: the editor asks for it (again after a wrong one), keeps it in
    sessionStorage, translates with it, and does not ask again after a reload."""
    run = tiny_run("pix2pix", steps=1, data=tiny_data("scenes", n=10, size=48) / "aligned",
                   extra=["data.input_kind=label"])
    port = serve_load.free_port()
    with open(tmp_path / "server.log", "wb") as log:
        proc = serve_load.start_server([f"demo={run}"], port, log=log, extra=["--token", "tok-123"])
        try:
            pg, _ = page
            answers = ["wrong", "tok-123"]
            asked: list[str] = []

            def on_dialog(d) -> None:
                asked.append(d.message)
                d.accept(answers[len(asked) - 1] if len(asked) <= len(answers) else "")

            pg.on("dialog", on_dialog)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.wait_for_selector("#palette .swatch")
            assert len(asked) == 2 and "token" in asked[0] and "refused" in asked[1]
            assert pg.evaluate("() => sessionStorage.getItem('pairgan-token')") == "tok-123"
            pg.click("#translate")
            pg.wait_for_function("() => { const i = document.getElementById('output-image'); "
                                 "return i && i.complete && i.naturalWidth > 0; }", timeout=60_000)
            pg.reload()
            pg.wait_for_selector("#palette .swatch")
            assert len(asked) == 2  # kept for the tab
        finally:
            serve_load.stop_server(proc)
