"""Hub models (``hf://OWNER/NAME[@REVISION]``) through huggingface_hub against a local stand-in of the
Hub (``tests.helpers.LocalHub``): huggingface_hub itself resolves the revision, downloads and lays out
its cache; then the cached copy loads with the Hub unreachable and ``HF_HUB_OFFLINE=1``. No test
talks to huggingface.co."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub")
from huggingface_hub import constants as hf_constants  # noqa: E402

import pairgan  # noqa: E402
from pairgan.data.io import read_image, write_image  # noqa: E402
from pairgan.errors import CheckpointError, ConfigError  # noqa: E402
from pairgan.hub import HubRef, parse_hub_ref, snapshot  # noqa: E402
from pairgan.infer import Translator  # noqa: E402
from pairgan.package import package_model  # noqa: E402
from pairgan.serve.models import load_models  # noqa: E402
from tests.helpers import REPO, LocalHub  # noqa: E402

PICKLE = b"\x80\x04\x95 not to be unpickled"


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, tiny_run) -> dict[str, Path]:
    """Two packaged tiny pix2pix models (2 and 3 steps: different weights) and an input image."""
    root = tmp_path_factory.mktemp("hub-packages")
    made = {name: package_model(tiny_run("pix2pix", steps=steps), root / name, license="mit").folder
            for name, steps in (("main", 2), ("v1", 3))}
    image = root / "inputs" / "x.png"
    image.parent.mkdir()
    write_image(image, np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    return made | {"image": image}


@pytest.fixture
def hub(packages: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The local Hub serving ``me/tiny`` (main: the 2-step package plus a training pickle that must
    never be downloaded; tag v1: the 3-step one) and huggingface_hub pointed at it, with this test's
    own empty cache (the variables it reads at import, set as HF_ENDPOINT / HF_HUB_CACHE would)."""
    server = LocalHub()
    server.add_folder("me/tiny", packages["main"], extra={"state.pt": PICKLE, "G.bin": PICKLE, "nested/x.pt": PICKLE})
    server.add_folder("me/tiny", packages["v1"], revision="v1")
    server.add("me/empty", {"README.md": b"# not a model\n"})
    url = server.start()
    monkeypatch.setattr(hf_constants, "ENDPOINT", url)
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("PAIRGAN_CACHE", str(tmp_path / "pairgan-cache"))
    yield server
    server.stop()


def _translate(model: str | Path, image: Path, backend: str = "torch", mode: str | None = None) -> np.ndarray:
    tr = Translator.from_checkpoint(model, device="cpu", backend=backend, mode=mode)
    return np.asarray(tr.translate(read_image(image)))


def test_parse_hub_refs() -> None:
    assert parse_hub_ref("hf://me/tiny") == HubRef("me/tiny", None)
    assert parse_hub_ref("hf://me/tiny@v1.0") == HubRef("me/tiny", "v1.0")
    assert parse_hub_ref(Path("hf://me/tiny@main")) == HubRef("me/tiny", "main")  # Path() drops a slash
    assert str(HubRef("me/tiny", "v1")) == "hf://me/tiny@v1"
    for bad in ("hf://tiny", "hf://me/ti ny", "hf://me/tiny@", "hf://me/--x", "hf://a/b/c"):
        with pytest.raises(ConfigError, match="expected"):
            parse_hub_ref(bad)


def test_load_online_then_offline_with_revisions_and_never_a_pickle(hub: LocalHub, packages: dict[str, Path],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    image = packages["image"]
    local_main, local_v1 = _translate(packages["main"], image), _translate(packages["v1"], image)
    assert not np.array_equal(local_main, local_v1)  # the revisions hold different weights

    folder = snapshot("hf://me/tiny")
    assert folder.is_relative_to(Path(hf_constants.HF_HUB_CACHE))  # the Hub library's own cache layout
    assert (folder.parent.parent / "refs" / "main").read_text() == hub.repos["me/tiny"]["refs"]["main"]
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["G.safetensors", "config.yaml", "extra_state.json", "input_profile.json", "package.json"]
    asked = [p for _, p in hub.requests]
    assert not any(p.endswith((".pt", ".bin", "README.md")) for p in asked if "/resolve/" in p)

    assert np.array_equal(_translate("hf://me/tiny", image), local_main)
    assert np.array_equal(_translate("hf://me/tiny@v1", image), local_v1)
    commit = hub.repos["me/tiny"]["refs"]["v1"]
    assert np.array_equal(_translate(f"hf://me/tiny@{commit}", image), local_v1)

    # The Hub gone and offline: the cached copies load; what was never cached is one clear line.
    hub.stop()
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert np.array_equal(_translate("hf://me/tiny", image), local_main)
    assert np.array_equal(np.asarray(pairgan.load("hf://me/tiny@v1", device="cpu", backend="torch")
                                     .translate(read_image(image))), local_v1)
    with pytest.raises(CheckpointError, match=r"hf://me/other: not in the Hugging Face cache .* HF_HUB_OFFLINE") as exc:
        snapshot("hf://me/other")
    assert "\n" not in str(exc.value)


def test_hub_errors_are_one_line(hub: LocalHub, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CheckpointError, match=r"hf://me/nothing: no model repository me/nothing on http://127"):
        snapshot("hf://me/nothing")
    with pytest.raises(CheckpointError, match=r"hf://me/tiny@v9: revision 'v9' not found in me/tiny"):
        snapshot("hf://me/tiny@v9")
    with pytest.raises(CheckpointError, match=r"hf://me/empty: not a pairgan model \(expected config.yaml"):
        pairgan.load("hf://me/empty", device="cpu")
    hub.stop()  # unreachable, not offline, nothing cached
    with pytest.raises(CheckpointError, match=r"hf://me/tiny: the Hub could not be reached and the model is not in"):
        snapshot("hf://me/tiny")


def test_compiled_graphs_stay_out_of_the_hub_cache(hub: LocalHub, packages: dict[str, Path], tmp_path: Path) -> None:
    tr = Translator.from_checkpoint("hf://me/tiny", device="cpu", backend="auto", mode="eval")
    out = np.asarray(tr.translate(read_image(packages["image"])))
    eager = _translate(packages["main"], packages["image"], mode="eval")
    assert np.abs(out.astype(int) - eager.astype(int)).max() <= 1
    assert tr.backend in ("onnxruntime", "torchscript"), tr.describe_backend()
    assert not list(Path(hf_constants.HF_HUB_CACHE).rglob("compiled"))
    assert list((tmp_path / "pairgan-cache" / "compiled").iterdir())


def test_serve_loads_hub_models(hub: LocalHub) -> None:
    models = load_models(["hf://me/tiny", "old=hf://me/tiny@v1"], device="cpu", backend="torch")
    assert sorted(models) == ["old", "tiny"]
    assert models["tiny"].info()["name"] == "tiny"


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ConfigError, match=r"pip install 'pairgan\[hub\]'"):
        pairgan.load("hf://me/tiny")


@pytest.mark.slow
def test_cli_honours_hf_home_endpoint_and_offline(packages: dict[str, Path], tmp_path: Path) -> None:
    """The command in a fresh process takes HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE from the
    environment, as every Hub library does."""
    server = LocalHub()
    server.add_folder("me/tiny", packages["main"], extra={"state.pt": PICKLE})
    url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env |= {"HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": url, "HF_HUB_DISABLE_TELEMETRY": "1",
            "PAIRGAN_CACHE": str(tmp_path / "pairgan-cache"), "PYTHONPATH": str(REPO / "src")}

    def translate(out: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pairgan", "translate", "hf://me/tiny", str(packages["image"]),
                               "--out", str(tmp_path / out), "--backend", "torch"],
                              env=env | extra_env, capture_output=True, text=True, timeout=300)

    online = translate("online", {})
    assert online.returncode == 0, online.stderr
    assert list((tmp_path / "hf-home" / "hub").glob("models--me--tiny/snapshots/*/G.safetensors"))
    assert not list((tmp_path / "hf-home").rglob("state.pt"))
    server.stop()
    offline = translate("offline", {"HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    Translator.from_checkpoint(packages["main"], device="cpu", backend="torch").translate_files(
        [packages["image"]], tmp_path / "local")
    expected = read_image(tmp_path / "local" / "x.png")
    for out in ("online", "offline"):
        assert np.array_equal(read_image(tmp_path / out / "x.png"), expected)
    missing = subprocess.run([sys.executable, "-m", "pairgan", "translate", "hf://me/other", str(packages["image"]),
                              "--out", str(tmp_path / "none")], env=env | {"HF_HUB_OFFLINE": "1"},
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: hf://me/other: not in the Hugging Face cache")
    assert "Traceback" not in missing.stderr
